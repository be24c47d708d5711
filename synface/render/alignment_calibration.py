"""Where a photo's landmark detector finds a head's 5 alignment landmarks, as a function of pose.

Why: a render is aligned by its 5 landmark vertices (eye centres, nose tip, mouth corners), but
real crops are aligned by where dlib's 68-point predictor puts those landmarks on a photo, and the
two disagree by a few pixels, more as the head turns (a turned face's far eye is read at its
visible outline, not at the eyeball's centre). A recogniser trained on renders and tested on real
crops then sees faces framed differently. The calibration says, per landmark and axis, how far
from the projected vertex the detector finds the landmark, as a linear function of the pose, in
units of the template's inter-ocular distance and in the aligned crop's frame (x right, y down),
so it holds at any output size and under any roll. It is measured on a model's own renders
(`synface.fitting.alignment`); the renderer adds it to the projected vertices before fitting the
similarity onto the template.

Offsets are evaluated with elementwise operations only, in the dtype of the pose (float64 on the
fused CPU path), so an image gets the same alignment alone or in any batch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from synface.render.camera import ARCFACE_TEMPLATE

#: the pose terms of the linear model (yaw and pitch in radians): on each side of frontal a
#: quadratic in yaw (continuous at 0), plus a linear term in pitch
FEATURES = ("1", "yaw", "|yaw|", "yaw^2", "yaw*|yaw|", "pitch")
LANDMARKS = 5
AXES = 2
#: beyond these the offsets hold their value at the limit: the detector rarely finds faces turned
#: further, so no measurement supports an extrapolation
YAW_LIMIT = math.radians(45.0)
PITCH_LIMIT = math.radians(25.0)
#: an offset beyond this many inter-ocular distances is not a calibration but a broken file
MAX_OFFSET_IOD = 1.0
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def feature_columns(pose: torch.Tensor) -> list[torch.Tensor]:
    """FEATURES' columns (each (B,)) of (B, 3) poses (yaw, pitch, roll), in the pose's dtype."""
    yaw = pose[:, 0].clamp(-YAW_LIMIT, YAW_LIMIT)
    pitch = pose[:, 1].clamp(-PITCH_LIMIT, PITCH_LIMIT)
    return [torch.ones_like(yaw), yaw, yaw.abs(), yaw * yaw, yaw * yaw.abs(), pitch]


def template_pixels(size: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(5, 2) ArcFace template in a `size`-pixel render's continuous coordinates (pixel centres at
    j + 0.5). The template, like every detector's landmarks, is in pixel-index coordinates (a
    landmark on pixel (i, j) is at x = j): half a pixel separates the two."""
    return ARCFACE_TEMPLATE.to(device, dtype) * (size / 112.0) + 0.5


def template_eye_spacing(size: int) -> float:
    """The template's inter-ocular distance in a `size`-pixel render: the calibration's unit."""
    return float((ARCFACE_TEMPLATE[1] - ARCFACE_TEMPLATE[0]).norm()) * (size / 112.0)


class CalibrationError(ValueError):
    """A calibration record that cannot be used (wrong shape, non-finite or implausible values)."""


@dataclass(frozen=True)
class AlignmentCalibration:
    """Per-landmark, per-axis offsets from the projected landmark vertex to where the detector
    finds the landmark: offset[k, axis] = sum_f coefficients[k][axis][f] * feature_f(pose)."""

    version: str
    coefficients: tuple[tuple[tuple[float, ...], ...], ...]  # (LANDMARKS, AXES, len(FEATURES))

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not VERSION_PATTERN.match(self.version):
            raise CalibrationError(f"alignment calibration version {self.version!r}: expected 1-64 letters, digits, . _ + -")
        rows = self.coefficients
        shape_ok = (isinstance(rows, tuple) and len(rows) == LANDMARKS
                    and all(isinstance(r, tuple) and len(r) == AXES for r in rows)
                    and all(isinstance(a, tuple) and len(a) == len(FEATURES) for r in rows for a in r))
        if not shape_ok:
            raise CalibrationError(f"alignment calibration {self.version!r}: coefficients must be "
                                   f"{LANDMARKS} x {AXES} x {len(FEATURES)} numbers")
        values = [v for r in rows for a in r for v in a]
        if not all(isinstance(v, float) and math.isfinite(v) for v in values):
            raise CalibrationError(f"alignment calibration {self.version!r}: coefficients must be finite floats")
        worst = float(self.offsets(_POSE_GRID).abs().max())
        if worst > MAX_OFFSET_IOD:
            raise CalibrationError(f"alignment calibration {self.version!r}: offsets reach {worst:.2f} inter-ocular "
                                   f"distances (at most {MAX_OFFSET_IOD} is plausible)")

    @classmethod
    def none(cls) -> "AlignmentCalibration":
        """No offsets: the landmark vertices are where the detector finds them."""
        return cls.from_array(torch.zeros(LANDMARKS, AXES, len(FEATURES)), "none")

    @classmethod
    def from_array(cls, coefficients: Any, version: str) -> "AlignmentCalibration":
        """From a (LANDMARKS, AXES, len(FEATURES)) array-like (a fit's result)."""
        t = torch.as_tensor(coefficients, dtype=torch.float64)
        if tuple(t.shape) != (LANDMARKS, AXES, len(FEATURES)):
            raise CalibrationError(f"alignment calibration {version!r}: coefficients of shape {tuple(t.shape)}, "
                                   f"expected {(LANDMARKS, AXES, len(FEATURES))}")
        return cls(version, tuple(tuple(tuple(float(v) for v in axis) for axis in lm) for lm in t.tolist()))

    def array(self) -> torch.Tensor:
        """(LANDMARKS, AXES, len(FEATURES)) float64 coefficients."""
        return torch.tensor(self.coefficients, dtype=torch.float64)

    def is_none(self) -> bool:
        return all(v == 0.0 for r in self.coefficients for a in r for v in a)

    def offsets(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, LANDMARKS, 2) offsets in inter-ocular distances (aligned frame, y down) for (B, 3)
        poses (yaw, pitch, roll), in the pose's dtype and on its device."""
        c = self.array().to(device=pose.device, dtype=pose.dtype)
        columns = feature_columns(pose)
        # elementwise, in a fixed order: no reduction whose rounding could depend on the batch
        out = c[..., 0] * columns[0].view(-1, 1, 1)
        for f in range(1, len(FEATURES)):
            out = out + c[..., f] * columns[f].view(-1, 1, 1)
        return out

    # -- records (a model file's or a JSON file's; untrusted) ---------------------------------
    def to_dict(self) -> dict:
        return {"version": self.version, "features": list(FEATURES),
                "coefficients": [[list(a) for a in r] for r in self.coefficients]}

    @classmethod
    def from_dict(cls, record: Any) -> "AlignmentCalibration":
        """From `to_dict`'s record, checked field by field; a CalibrationError names what is wrong."""
        if not isinstance(record, dict):
            raise CalibrationError("alignment calibration: expected a JSON object")
        unknown = sorted(set(record) - {"version", "features", "coefficients"})
        if unknown:
            raise CalibrationError(f"alignment calibration: unknown fields {', '.join(map(str, unknown))}")
        if record.get("features") != list(FEATURES):
            raise CalibrationError(f"alignment calibration: features {record.get('features')!r}, "
                                   f"this version reads {list(FEATURES)}")
        coefficients: Any = record.get("coefficients")  # untrusted: a TypeError below if not nested lists
        try:
            rows = tuple(tuple(tuple(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                                     for v in axis) for axis in lm) for lm in coefficients)
        except TypeError:
            raise CalibrationError("alignment calibration: coefficients must be nested lists of numbers") from None
        return cls(record.get("version"), rows)  # type: ignore[arg-type]  # __post_init__ checks the version


#: the poses a calibration's plausibility is checked at: the whole clamped range (the offsets are
#: piecewise quadratic in yaw and linear in pitch, so a fine yaw grid and the pitch ends cover it)
_POSE_GRID = torch.stack(torch.meshgrid(torch.linspace(-YAW_LIMIT, YAW_LIMIT, 91, dtype=torch.float64),
                                        torch.tensor([-PITCH_LIMIT, PITCH_LIMIT], dtype=torch.float64),
                                        indexing="ij"), -1).reshape(-1, 2)
_POSE_GRID = torch.cat([_POSE_GRID, torch.zeros(len(_POSE_GRID), 1, dtype=torch.float64)], 1)
