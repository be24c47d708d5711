"""The built-in head's mesh: a longitude/latitude grid dense on the face, closed at the crown,
continued by a neck, and the reference coordinates every field of the model is written in."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from synface.face.geometry_fields import (
    EYE_X, EYE_Y, MOUTH_Y, N_HEAD_ROWS, N_LON, N_NECK_ROWS, NOSE_TIP_Y, gauss, hairline_lat, pair, smoothstep,
)


# ----------------------------------------------------------------------------------------------
# Mesh topology and base positions
# ----------------------------------------------------------------------------------------------
def _longitudes() -> np.ndarray:
    """Angles around the vertical axis, 0 at the front, denser at the front (about 6:1)."""
    s = np.linspace(-1.0, 1.0, N_LON, endpoint=False) + 1.0 / N_LON
    c = 0.6
    return math.pi * ((1 - c) * s + c * s**3)


def _latitudes() -> np.ndarray:
    """Polar angles from the crown (0) down to the jaw: sparse over the scalp, dense over the face,
    densest across the eyes and the mouth, where painted detail needs vertices."""
    top = np.linspace(0.05 * math.pi, 0.30 * math.pi, 20, endpoint=False)
    fine = np.linspace(0.30 * math.pi, 0.80 * math.pi, 2001)
    density = (1.0 + 1.3 * np.exp(-0.5 * ((fine / math.pi - 0.465) / 0.035) ** 2)
               + 0.7 * np.exp(-0.5 * ((fine / math.pi - 0.675) / 0.035) ** 2))
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2)])
    face = np.interp(np.linspace(0, cdf[-1], N_HEAD_ROWS - 20), cdf, fine)
    return np.concatenate([top, face])


def _superellipse(angle: np.ndarray, n: float = 3.2) -> tuple[np.ndarray, np.ndarray]:
    s, c = np.sin(angle), np.cos(angle)
    return np.sign(s) * np.abs(s) ** (2 / n), np.sign(c) * np.abs(c) ** (2 / n)


@lru_cache(maxsize=1)
def build_base_mesh() -> dict[str, np.ndarray]:
    """Vertices of the undeformed head, triangles, and per-vertex reference data."""
    theta = _longitudes()
    phi = _latitudes()
    a, b, c = 0.78, 1.12, 0.93
    sx, sz = _superellipse(theta)
    rows, lat = [], []
    for p in phi:
        y = b * math.cos(p)
        taper = 1.0 - 0.22 * float(smoothstep(-0.1, -0.95, np.array(y)))  # jaw narrows
        back = 1.0 - 0.12 * float(smoothstep(-0.2, -0.95, np.array(y)))
        r = math.sin(p)
        x = a * r * taper * sx
        z = np.where(sz > 0, c * r * sz * (1.0 - 0.08 * (1 - taper)), c * r * sz * back)
        rows.append(np.stack([x, np.full_like(x, y), z], axis=1))
        lat.append(np.full_like(x, p))
    head_last = rows[-1]
    # Neck: blend from the last head ring to a cylinder under and behind the chin.
    neck_x, neck_z, neck_cz = 0.36, 0.40, -0.14
    for k in range(1, N_NECK_ROWS + 1):
        t = k / N_NECK_ROWS
        y_ring = head_last[0, 1] - 0.08 - 1.0 * t
        cyl = np.stack([neck_x * sx, np.full_like(sx, y_ring), neck_cz + neck_z * sz], axis=1)
        w = float(smoothstep(0.0, 0.35, np.array(t)))
        ring = (1 - w) * head_last + w * cyl
        ring[:, 1] = (1 - w) * (head_last[:, 1] - 0.08 * t) + w * y_ring
        rows.append(ring)
        lat.append(np.full(N_LON, math.pi * 0.8 + t * 0.2))
    grid = np.stack(rows)  # (R, N_LON, 3)
    n_rows = grid.shape[0]
    verts = grid.reshape(-1, 3)
    crown = np.array([[0.0, b, 0.0]])
    verts = np.concatenate([crown, verts])
    lat_all = np.concatenate([[0.0], np.concatenate(lat)])
    lon_all = np.concatenate([[0.0], np.tile(theta, n_rows)])

    def vid(r: int, j: int) -> int:
        return 1 + r * N_LON + (j % N_LON)

    faces: list[tuple[int, int, int]] = []
    for j in range(N_LON):  # crown fan
        faces.append((0, vid(0, j + 1), vid(0, j)))
    for r in range(n_rows - 1):
        for j in range(N_LON):
            v00, v01, v10, v11 = vid(r, j), vid(r, j + 1), vid(r + 1, j), vid(r + 1, j + 1)
            faces.append((v00, v01, v11))
            faces.append((v00, v11, v10))
    triangles = _orient_outward(verts, np.array(faces, dtype=np.int64))
    return {"verts": verts.astype(np.float64), "faces": triangles, "lat": lat_all, "lon": lon_all}


def _orient_outward(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip triangles whose normal points toward the head's axis, so all wind outward."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    normal = np.cross(v1 - v0, v2 - v0)
    centre = (v0 + v1 + v2) / 3
    axis_point = np.stack([np.zeros(len(centre)), np.clip(centre[:, 1], -3, 0.9), np.where(centre[:, 1] < -0.95, -0.14, 0.0)], axis=1)
    outward = centre - axis_point
    flip = (normal * outward).sum(1) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces


# ----------------------------------------------------------------------------------------------
# Reference coordinates and masks
# ----------------------------------------------------------------------------------------------
def reference_frame(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    v = base["verts"]
    X, Y, Z = v[:, 0], v[:, 1], v[:, 2]
    front = smoothstep(0.05, 0.45, Z)  # weight of "face" fields
    side = smoothstep(0.55, 0.72, np.abs(X)) * smoothstep(-0.45, 0.1, Z) * (1 - smoothstep(0.05, 0.35, Z))
    return {"X": X, "Y": Y, "Z": Z, "front": front, "side": side, "lat": base["lat"], "lon": base["lon"]}


def nose_profile(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Nose height over the face: a ridge from the bridge growing to the tip, then a steep base."""
    rise = 0.05 + 0.27 * smoothstep(0.12, NOSE_TIP_Y, Y) ** 1.3
    cut = 1.0 - smoothstep(NOSE_TIP_Y - 0.005, NOSE_TIP_Y - 0.11, Y)
    top = 1.0 - smoothstep(0.16, 0.26, Y)  # the ridge fades out into the forehead
    width = 0.045 + 0.05 * smoothstep(0.05, NOSE_TIP_Y, Y)
    return rise * cut * top * np.exp(-0.5 * (X / width) ** 2)


def mean_displacement(ref: dict[str, np.ndarray]) -> np.ndarray:
    X, Y, F = ref["X"], ref["Y"], ref["front"]
    dz = np.zeros_like(X)
    dz += nose_profile(X, Y)
    dz += 0.07 * pair(X, Y, 0.085, NOSE_TIP_Y - 0.04, 0.035, 0.035)  # alae
    dz -= 0.10 * pair(X, Y, EYE_X, EYE_Y + 0.01, 0.12, 0.08)  # eye sockets
    dz += 0.065 * pair(X, Y, EYE_X, EYE_Y, 0.075, 0.045)  # eyeballs
    dz += 0.06 * pair(X, Y, 0.27, 0.28, 0.16, 0.045)  # brow ridge
    dz += 0.05 * pair(X, Y, 0.45, -0.08, 0.1, 0.1)  # cheekbones
    dz += 0.045 * gauss(X, Y, 0, MOUTH_Y + 0.03, 0.17, 0.03)  # upper lip
    dz += 0.055 * gauss(X, Y, 0, MOUTH_Y - 0.045, 0.15, 0.03)  # lower lip
    dz -= 0.035 * gauss(X, Y, 0, MOUTH_Y, 0.22, 0.012)  # mouth line
    dz -= 0.03 * gauss(X, Y, 0, -0.77, 0.13, 0.03)  # mentolabial fold
    dz += 0.09 * gauss(X, Y, 0, -0.88, 0.15, 0.07)  # chin
    dz -= 0.04 * pair(X, Y, 0.62, 0.32, 0.08, 0.12)  # temples
    dz -= 0.025 * pair(X, Y, 0.2, -0.42, 0.05, 0.1)  # nasolabial folds
    disp = np.zeros((len(X), 3))
    disp[:, 2] = dz * F
    disp += ear_field(ref, size=1.0, protrusion=1.0)
    disp += hair_volume_field(ref) * 0.08
    return disp


def ear_field(ref: dict[str, np.ndarray], size: float, protrusion: float) -> np.ndarray:
    """Ears: an outward-pushed oval with a rim and a hollow, on both sides."""
    X, Y, Z, side = ref["X"], ref["Y"], ref["Z"], ref["side"]
    cy, cz = 0.02, -0.06
    hh, hw = 0.21 * size, 0.12 * size
    e = np.sqrt(((Y - cy) / hh) ** 2 + ((Z - cz) / hw) ** 2)
    shell = 1.0 - smoothstep(0.75, 1.05, e)
    hollow = 1.0 - smoothstep(0.2, 0.6, e)
    out = (0.13 * shell - 0.05 * hollow) * protrusion
    disp = np.zeros((len(X), 3))
    disp[:, 0] = np.sign(X) * out * side
    return disp


def hair_volume_field(ref: dict[str, np.ndarray]) -> np.ndarray:
    lat, lon = ref["lat"], ref["lon"]
    mask = smoothstep(0.0, 0.05 * math.pi, hairline_lat(lon) - lat)
    normal = np.stack([ref["X"], ref["Y"], ref["Z"]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    return normal * mask[:, None]


def face_region(ref: dict[str, np.ndarray]) -> np.ndarray:
    """(V,) in [0, 1]: the face, from the default hairline to the jaw and out to the cheeks'
    silhouette, without ears, scalp or neck (soft edges): what replaces a photographed person's
    face when a new person is drawn into their photo."""
    lat, lon = ref["lat"], np.abs(ref["lon"])
    below_hairline = smoothstep(0.0, 0.04 * math.pi, lat - hairline_lat(lon))
    above_neck = 1.0 - smoothstep(0.76 * math.pi, 0.80 * math.pi, lat)
    front = 1.0 - smoothstep(math.radians(62.0), math.radians(78.0), lon)
    return (below_hairline * above_neck * front * (1.0 - ref["side"])).astype(np.float32)
