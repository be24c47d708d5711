"""Named regions of an aligned 112x112 face crop, shared by the benchmarks that ask where in a
face the identity a recogniser reads lies (`bench spread --region`, `bench photo --region`)."""

from __future__ import annotations

import numpy as np

# Regions of an aligned crop (ArcFace template: eyes at y = 0.46, nose tip 0.64, mouth 0.82), as
# fractions of its side. "inner-face" is an ellipse, centre (0.5, 0.536), semi-axes 0.34 x 0.43
# (38 x 48 px at 112): eyes, brows, nose, mouth and cheeks without hair, ears or background. The
# boxes (x0, x1, y0, y1) show one feature group alone. Masking everything else to grey asks how
# much of the spread a region carries, and whether the parts add up to the whole.
REGION_ELLIPSES = {"inner-face": (0.5, 0.536, 0.34, 0.43)}
REGION_BOXES = {
    "eyes": (0.16, 0.84, 0.27, 0.57),  # eyes and brows
    "nose": (0.36, 0.64, 0.45, 0.73),
    "mouth": (0.27, 0.73, 0.71, 1.0),  # mouth and chin
}
REGIONS = tuple(REGION_ELLIPSES) + tuple(REGION_BOXES)
MASK_GREY = 128


def check_region(region: str) -> None:
    """ValueError naming the choices unless `region` is one of REGIONS."""
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")


def in_region(u: np.ndarray, v: np.ndarray, region: str) -> np.ndarray:
    """Whether crop positions (u, v), as fractions of the side from the top-left, lie in `region`."""
    check_region(region)
    if region in REGION_ELLIPSES:
        cx, cy, ax, ay = REGION_ELLIPSES[region]
        return ((u - cx) / ax) ** 2 + ((v - cy) / ay) ** 2 <= 1
    x0, x1, y0, y1 = REGION_BOXES[region]
    return (u >= x0) & (u < x1) & (v >= y0) & (v < y1)


def mask_to_region(image: np.ndarray, region: str) -> np.ndarray:
    """The crop with everything outside `region` (one of REGIONS) set to mid grey."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    masked = image.copy()
    masked[~in_region((xx + 0.5) / w, (yy + 0.5) / h, region)] = MASK_GREY
    return masked
