#!/usr/bin/env python
"""Measure the built-in head's alignment calibration and write it into the package.

Run from the repository root (a few minutes on 2 cores; needs dlib):

    python tools/calibrate_alignment.py                  # fit, print the rounds, rewrite the module
    python tools/calibrate_alignment.py --dry-run        # fit and print only

It renders built-in people under the default attribute prior, re-detects them with the real-photo
alignment pipeline and fits where that pipeline finds the 5 landmarks
(`synface.fitting.alignment.fit_alignment_calibration`), starting from no calibration, then
writes synface/face/builtin_alignment.py. The renders' pixels change with the calibration: bump
GENERATOR_MODEL_VERSION (synface/face/builtin.py) in the same commit, so no rendered dataset is
resumed under the new framing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "synface" / "face" / "builtin_alignment.py"

HEADER = '''"""The built-in head's alignment calibration: where dlib's alignment pipeline finds its 5 landmarks.

Measured on the built-in head's own renders (no photograph enters it) by
`python tools/calibrate_alignment.py`, which writes this file; see
`synface.render.alignment_calibration` for what the numbers mean and
`synface.fitting.alignment` for how they are measured. Fit: {renders} renders per round under
the default attribute prior, seed {seed}, {rounds} rounds.
"""

from synface.render.alignment_calibration import AlignmentCalibration

#: (landmark, axis, feature) offsets in template inter-ocular distances; landmarks in ArcFace
#: order, axes x then y (down), features as alignment_calibration.FEATURES
BUILTIN_ALIGNMENT = AlignmentCalibration.from_array(
    [
'''


def module_text(calibration, renders: int, seed: int, rounds: int) -> str:
    lines = [HEADER.format(renders=renders, seed=seed, rounds=rounds)]
    for landmark in calibration.coefficients:
        lines.append("        [\n")
        for axis in landmark:
            lines.append("            [" + ", ".join(f"{v:.6f}" for v in axis) + "],\n")
        lines.append("        ],\n")
    lines.append(f"    ],\n    {calibration.version!r},\n)\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renders", type=int, default=1500, help="renders per round")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the fitting renders (not a bench seed)")
    parser.add_argument("--rounds", type=int, default=8, help="at most this many rounds")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the module")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tqdm import tqdm

    from synface.face.builtin import BuiltinFaceModel
    from synface.fitting.alignment import fit_alignment_calibration
    from synface.generator import FaceGenerator
    from synface.render.alignment_calibration import AlignmentCalibration

    model = BuiltinFaceModel()
    generator = FaceGenerator(device="cpu", model=model)
    generator.pipeline.alignment_calibration = AlignmentCalibration.none()
    bar = tqdm(total=args.renders * args.rounds, desc="calibrate", unit="img", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    fit = fit_alignment_calibration(generator, renders=args.renders, seed=args.seed, max_rounds=args.rounds,
                                    prefix="builtin-dlib68", progress=progress)
    bar.close()
    for summary in fit.rounds:
        print(json.dumps({"calibration": summary.calibration, "detected": summary.detected,
                          "mean_scale": round(summary.mean_scale, 4),
                          "mean_eye_shift_x": round(summary.mean_eye_shift_x, 3),
                          "mean_eye_shift_y": round(summary.mean_eye_shift_y, 3)}))
    print(json.dumps({"chosen": fit.calibration.version, "converged": fit.converged}))
    if not args.dry_run:
        TARGET.write_text(module_text(fit.calibration, args.renders, args.seed, len(fit.rounds)))
        print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
