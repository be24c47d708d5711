"""The built-in head's alignment calibration: where dlib's alignment pipeline finds its 5 landmarks.

Measured on the built-in head's own renders (no photograph enters it) by
`python tools/calibrate_alignment.py`, which writes this file; see
`synface.render.alignment_calibration` for what the numbers mean and
`synface.fitting.alignment` for how they are measured. Fit: 1500 renders per round under
the default attribute prior, seed 1000, 5 rounds.
"""

from synface.render.alignment_calibration import AlignmentCalibration

#: (landmark, axis, feature) offsets in template inter-ocular distances; landmarks in ArcFace
#: order, axes x then y (down), features as alignment_calibration.FEATURES
BUILTIN_ALIGNMENT = AlignmentCalibration.from_array(
    [
        [
            [0.040838, -0.035770, 0.052376, -0.085992, 0.028920, 0.016408],
            [-0.027984, 0.001953, 0.023943, -0.065652, 0.016000, -0.061637],
        ],
        [
            [-0.037013, -0.034781, -0.037369, 0.059900, 0.007204, -0.005032],
            [-0.029675, -0.008545, 0.003141, -0.014682, 0.015074, -0.067204],
        ],
        [
            [-0.094364, -0.348813, -0.031081, 0.184084, 0.151461, -0.044851],
            [-0.081638, -0.037287, 0.023807, -0.313311, 0.091320, -0.237934],
        ],
        [
            [0.064159, 0.005350, 0.043959, -0.120098, 0.234374, -0.013224],
            [-0.015705, -0.119587, -0.222113, -0.514790, 0.172595, 0.102954],
        ],
        [
            [-0.064397, 0.007041, 0.050905, -0.037420, 0.200311, 0.011138],
            [-0.019721, -0.081774, -0.241455, -0.454909, 0.142738, 0.104429],
        ],
    ],
    'builtin-dlib68-08361c0584',
)
