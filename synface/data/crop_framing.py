"""How the real-photo alignment pipeline would re-frame an already aligned crop.

Why: renders are aligned by the renderer, real crops by `synface.data.align` (dlib HOG detector,
68-point predictor, ArcFace 5 points, similarity). Running that same pipeline again on a 112x112
crop and reading the similarity it would apply says how the crop is framed in the pipeline's own
terms: a real crop comes back close to the identity, a render framed differently does not.
Detection follows `align.detect` for small images (a plain pass, then one upsampled pass), the
landmarks come from the crop itself, in pixel-index coordinates as the template's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synface.data.align import TEMPLATE, detect, estimate_similarity, five_from_68, landmarks68, pick_face

#: the template's eye centres' distance, eye midpoint and mouth midpoint (112x112 pixels)
TEMPLATE_EYE_SPACING = float(np.linalg.norm(TEMPLATE[1] - TEMPLATE[0]))
TEMPLATE_EYE_MID = (TEMPLATE[0] + TEMPLATE[1]) / 2
TEMPLATE_MOUTH_EYE = float(np.linalg.norm((TEMPLATE[3] + TEMPLATE[4]) / 2 - TEMPLATE_EYE_MID))


@dataclass(frozen=True)
class CropFraming:
    """The re-detection of one crop: the similarity the pipeline would apply and the landmark
    geometry it saw (`scale` > 1: the pipeline would zoom in, the face is smaller than a real
    crop's). The shift is read off the similarity, not off the detected eyes: a real face's 5
    points never match the template's proportions exactly (its least-squares fit leaves the eyes
    a pixel or so off the template's), and a real crop re-detected comes back with that same
    residual, so only the similarity says whether the crop is framed as the pipeline frames."""

    points5: np.ndarray  # (5,2) detected ArcFace points, pixel-index coordinates
    scale: float
    rotation_deg: float
    eye_shift_x: float  # where the fitted template's eye midpoint sits in the crop, minus where the
    eye_shift_y: float  # template puts it (112-pixel units; + = right / down)
    eye_spacing: float  # detected eye distance / the template's
    mouth_eye: float  # detected eye-midpoint to mouth-midpoint distance / the template's

    @property
    def eye_shift(self) -> float:
        return float(np.hypot(self.eye_shift_x, self.eye_shift_y))


def crop_points68(image: np.ndarray) -> np.ndarray | None:
    """(68,2) dlib points of the central face of an (H,W,3) uint8 crop, or None: no face."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H,W,3) RGB image, got shape {image.shape}")
    rects = detect(image)
    if not rects:
        return None
    h, w = image.shape[:2]
    return landmarks68(image, pick_face(rects, w, h))


def framing_of(points5: np.ndarray, size: int = 112) -> CropFraming:
    """The framing figures of 5 detected points in a `size`-pixel crop (template scaled to it)."""
    unit = size / 112.0
    points = np.asarray(points5, dtype=np.float64) / unit  # in 112-pixel terms
    matrix = estimate_similarity(points, TEMPLATE)  # crop pixel -> template pixel
    linear, offset = matrix[:, :2], matrix[:, 2]
    fitted_eye_mid = np.linalg.solve(linear, TEMPLATE_EYE_MID - offset)  # the template's eye midpoint, in the crop
    eye_mid = (points[0] + points[1]) / 2
    mouth_mid = (points[3] + points[4]) / 2
    return CropFraming(
        points5=np.asarray(points5, dtype=np.float64),
        scale=float(np.hypot(matrix[0, 0], matrix[1, 0])),
        rotation_deg=float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))),
        eye_shift_x=float(fitted_eye_mid[0] - TEMPLATE_EYE_MID[0]),
        eye_shift_y=float(fitted_eye_mid[1] - TEMPLATE_EYE_MID[1]),
        eye_spacing=float(np.linalg.norm(points[1] - points[0]) / TEMPLATE_EYE_SPACING),
        mouth_eye=float(np.linalg.norm(mouth_mid - eye_mid) / TEMPLATE_MOUTH_EYE),
    )


def crop_framing(image: np.ndarray) -> CropFraming | None:
    """The pipeline's re-detection of a square aligned crop, or None when it finds no face."""
    points = crop_points68(image)
    return None if points is None else framing_of(five_from_68(points), image.shape[0])
