"""Measure a face model's alignment calibration: where dlib's pipeline finds its 5 landmarks.

Why: see `synface.render.alignment_calibration`. The offsets are found by measurement on the
model's own renders under the default attribute prior (its pose spread): each render goes through
the real-photo pipeline's detector and 68-point predictor (`synface.data.crop_framing`), the
detected ArcFace points are carried into the frame of the uncalibrated alignment, and a linear
function of the pose is fitted to their offsets from the landmark vertices by least squares. The
renderer's framing changes what the detector sees, so the fit is repeated on renders made with
the calibration just fitted (`REGRESSION_ROUNDS`).

That places each landmark where the detector finds it on average, but the re-detection's mean
scale is not 1 then: the detector's points scatter from render to render (far more than on
photos), and the mean scale of fits to scattered points exceeds the scale of the fit to their
mean. The bar is the mean of what the pipeline would apply, so later rounds zoom and shift the
calibrated points about the template's eye midpoint by what the last round measured, until its
mean scale is within `SCALE_TOLERANCE` of 1 and its mean eye-midpoint shift under
`SHIFT_TOLERANCE_PX`.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from synface.data.align import TEMPLATE, five_from_68
from synface.data.crop_framing import crop_points68, framing_of
from synface.render.alignment_calibration import (
    FEATURES, AlignmentCalibration, feature_columns, template_eye_spacing, template_pixels,
)
from synface.render.camera import fit_similarity

#: the bar a calibration is fitted to (mean re-detection scale, mean eye-midpoint shift at 112 px)
SCALE_TOLERANCE = 0.005
SHIFT_TOLERANCE_PX = 0.25
#: rounds whose offsets are refitted; later rounds only zoom and shift
REGRESSION_ROUNDS = 2
#: ridge penalty on the pose terms (not the constant): negligible against a few hundred renders'
#: sums of squares, it keeps a fit on few renders, with hardly any strongly turned face, from
#: extrapolating its quadratic terms to implausible offsets
RIDGE = 0.5
#: a detection further than this many robust standard deviations from the first fit is a failed
#: detection, not a landmark: it would only pull the fit
OUTLIER_SIGMAS = 4.0
#: renders per call to the renderer (it is batch-exact, so this changes no pixel)
CHUNK = 100

Progress = Callable[[int, int], None]


@dataclass
class RoundSummary:
    """One round's measurement of the calibration it rendered with."""

    calibration: str
    detected: int
    renders: int
    mean_scale: float
    mean_eye_shift_x: float
    mean_eye_shift_y: float

    @property
    def mean_eye_shift(self) -> float:
        return float(np.hypot(self.mean_eye_shift_x, self.mean_eye_shift_y))

    def meets_bar(self) -> bool:
        return abs(self.mean_scale - 1.0) <= SCALE_TOLERANCE and self.mean_eye_shift <= SHIFT_TOLERANCE_PX


@dataclass
class AlignmentFit:
    """The calibration chosen and every round's measurement (the last one measured it, when met)."""

    calibration: AlignmentCalibration
    rounds: list[RoundSummary] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        last = self.rounds[-1] if self.rounds else None
        return last is not None and last.meets_bar() and last.calibration == self.calibration.version


def pose_features(pose: np.ndarray) -> np.ndarray:
    """(N, len(FEATURES)) design matrix of (N, 3) poses: the renderer's own feature columns."""
    return torch.stack(feature_columns(torch.as_tensor(pose, dtype=torch.float64)), 1).numpy()


def calibration_version(coefficients: np.ndarray, prefix: str = "dlib68") -> str:
    """A name for a fitted calibration that its numbers determine."""
    rounded = np.round(np.asarray(coefficients, dtype=np.float64), 6)
    return f"{prefix}-{hashlib.sha256(rounded.tobytes()).hexdigest()[:10]}"


def _with_calibration(generator, calibration: AlignmentCalibration):
    """A shallow copy of `generator` that renders with `calibration` (the original is untouched:
    a shared generator may be serving others)."""
    work = copy.copy(generator)
    work.pipeline = copy.copy(generator.pipeline)
    work.pipeline.alignment_calibration = calibration
    return work


def measure_offsets(generator, coeffs, progress: Progress | None = None,
                    done: int = 0, total: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Render `coeffs` with the jitter set to zero (so the crop's frame is the alignment's) and
    re-detect them.

    Returns (rows of the renders with a face, (n, 5, 2) offsets of the detected points from the
    vertices in the uncalibrated alignment's frame, in template inter-ocular distances, the
    CropFraming of each detected render)."""
    coeffs = coeffs.replace(jitter=torch.zeros_like(coeffs.jitter))
    size = generator.image_size
    template = template_pixels(size, dtype=torch.float64)
    iod = template_eye_spacing(size)
    rows, offsets, framings = [], [], []
    for start in range(0, len(coeffs), CHUNK):
        result = generator.render(coeffs[start:start + CHUNK])
        images = result.images.cpu().numpy()
        vertices = result.landmarks.cpu().double()  # (b, 5, 2) the landmark vertices in the crop
        # the uncalibrated alignment, seen from the crop: the similarity taking the vertices onto
        # the template (the calibrated one is this composed with the calibration's own fit)
        A, t = fit_similarity(vertices, template.unsqueeze(0).expand(len(vertices), -1, -1))
        for i, image in enumerate(images):
            points68 = crop_points68(image)
            if points68 is not None:
                detected = torch.from_numpy(five_from_68(points68) + 0.5)  # pixel centres, as the renderer's
                offset = (detected - vertices[i]) @ A[i].T / iod
                rows.append(start + i)
                offsets.append(offset.numpy())
                framings.append(framing_of(five_from_68(points68), size))
            if progress:
                progress(done + start + i + 1, total)
    return np.asarray(rows, dtype=np.int64), np.asarray(offsets).reshape(-1, 5, 2), framings


def _ridge(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    penalty = np.eye(design.shape[1]) * RIDGE
    penalty[0, 0] = 0.0
    return np.linalg.solve(design.T @ design + penalty, design.T @ y)


def fit_offsets(pose: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(5, 2, len(FEATURES)) coefficients of (n, 5, 2) offsets on the pose features (least squares,
    RIDGE on the pose terms); per landmark and axis, a second fit leaves out the samples far from
    the first."""
    design = pose_features(pose)
    coefficients = np.zeros((5, 2, len(FEATURES)))
    for k in range(5):
        for axis in range(2):
            y = offsets[:, k, axis]
            residual = y - design @ _ridge(design, y)
            spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))
            keep = np.abs(residual) <= OUTLIER_SIGMAS * max(spread, 1e-6)
            coefficients[k, axis] = _ridge(design[keep], y[keep])
    return coefficients


def zoom_and_shift(zoom: float, shift: np.ndarray) -> np.ndarray:
    """(5, 2) constant offsets (inter-ocular distances) that make the renderer draw the face
    `zoom` times larger about the template's eye midpoint and move it by -`shift` (112 pixels)."""
    eye_mid = (TEMPLATE[0] + TEMPLATE[1]) / 2
    return ((TEMPLATE - eye_mid) * (1.0 / zoom - 1.0) + shift) / template_eye_spacing(112)


def _summary(calibration: AlignmentCalibration, framings: list, renders: int) -> RoundSummary:
    return RoundSummary(calibration=calibration.version, detected=len(framings), renders=renders,
                        mean_scale=float(np.mean([f.scale for f in framings])),
                        mean_eye_shift_x=float(np.mean([f.eye_shift_x for f in framings])),
                        mean_eye_shift_y=float(np.mean([f.eye_shift_y for f in framings])))


def fit_alignment_calibration(generator, renders: int = 600, seed: int = 1000, max_rounds: int = 6,
                              start: AlignmentCalibration | None = None, prefix: str = "dlib68",
                              progress: Progress | None = None) -> AlignmentFit:
    """The calibration of `generator`'s model (module docstring). Renders `renders` faces per
    round under the default prior with the jitter set to zero; stops when a round's measurement
    meets the bar, else returns the calibration whose measurement came closest to it."""
    if max_rounds < REGRESSION_ROUNDS + 1:
        raise ValueError(f"max_rounds must be at least {REGRESSION_ROUNDS + 1}, got {max_rounds}")
    coeffs = generator.sample(renders, seed)
    pose = coeffs.pose.cpu().double().numpy()
    current = start or AlignmentCalibration.none()
    fit = AlignmentFit(current)
    regression = np.zeros((5, 2, len(FEATURES)))
    zoom, shift = 1.0, np.zeros(2)
    best: tuple[float, AlignmentCalibration] | None = None
    total = renders * max_rounds
    for round_index in range(max_rounds):
        rows, offsets, framings = measure_offsets(_with_calibration(generator, current), coeffs, progress,
                                                  round_index * renders, total)
        if len(rows) < renders // 2:
            raise RuntimeError(f"dlib found a face in only {len(rows)} of {renders} renders")
        summary = _summary(current, framings, renders)
        fit.rounds.append(summary)
        if round_index > 0:  # the first round measures the starting point, not a fitted calibration
            distance = abs(summary.mean_scale - 1.0) / SCALE_TOLERANCE + summary.mean_eye_shift / SHIFT_TOLERANCE_PX
            if best is None or distance < best[0]:
                best = (distance, current)
            if summary.meets_bar():
                best = (0.0, current)
                break
        if round_index < REGRESSION_ROUNDS:
            regression = fit_offsets(pose[rows], offsets)
        else:
            zoom *= summary.mean_scale
            shift = shift + np.array([summary.mean_eye_shift_x, summary.mean_eye_shift_y])
        coefficients = regression.copy()
        coefficients[..., 0] += zoom_and_shift(zoom, shift)
        current = AlignmentCalibration.from_array(coefficients, calibration_version(coefficients, prefix))
    fit.calibration = best[1]  # type: ignore[index]  # max_rounds >= 2: round 1 set it
    if progress:
        progress(total, total)
    return fit
