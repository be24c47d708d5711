"""Shared reference geometry of the built-in head: landmark positions and smooth field helpers.

Kept apart so the mesh (builtin.py) and the reflectance masks (builtin_albedo.py) use one
definition of where the eyes, nose and mouth are.
"""

from __future__ import annotations

import math

import numpy as np

# Mean-face reference positions (model units; head half-width about 0.76).
EYE_X, EYE_Y = 0.31, 0.12
NOSE_TIP_Y = -0.24
MOUTH_X, MOUTH_Y = 0.257, -0.60
CHIN_Y = -0.93

# Grid resolution: longitudes and latitude rows of the head, plus neck rows (6,553 vertices).
# builtin-4 coarsened it from 112 x 92 (11,201 vertices): the same 8 renders look alike, dlib's
# rates moved within their noise (bench realism, seeds 0 and 1 pooled: detection 95.1 -> 94.6 %,
# verification 85.6 -> 85.5 %), and bench render's median rose from 875 to 1,047 images/s, since
# each drawn triangle has a fixed set-up cost.
N_LON = 84
N_HEAD_ROWS = 70
N_NECK_ROWS = 8


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def pair(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """A symmetric pair of bumps at (+-cx, cy)."""
    return gauss(np.abs(x), y, cx, cy, sx, sy)



def hairline_lat(lon: np.ndarray, height: np.ndarray | float = 0.0, recession: np.ndarray | float = 0.0) -> np.ndarray:
    """Polar angle of the hairline around the head (per identity: height, temple recession)."""
    deg = np.degrees(np.abs(lon))
    keys_deg = np.array([0, 30, 55, 72, 80, 92, 110, 140, 180])
    keys_lat = np.array([0.285, 0.30, 0.36, 0.50, 0.56, 0.43, 0.55, 0.70, 0.72]) * math.pi
    base = np.interp(deg, keys_deg, keys_lat)
    front = 1.0 - smoothstep(40, 80, deg)
    temple = np.exp(-0.5 * ((deg - 32) / 12) ** 2)
    return base - 0.03 * math.pi * height * front - 0.07 * math.pi * recession * temple


