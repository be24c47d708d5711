"""The built-in head's texture layout: its longitude/latitude grid unrolled onto the unit square.

Why the grid itself: the mesh is a crown pole plus rows x columns of a longitude/latitude grid
whose vertices are densest across the face, so laying the grid's indices out evenly on (u, v)
gives the face most of the texels (about two thirds of each axis) with one chart and no cut
except the back of the head, where u wraps around (textures repeat in u). Each grid quad maps to
an axis-aligned cell of the square and each triangle affinely to half of it, so a texture sampled
through these coordinates and a per-vertex field interpolated over the mesh agree exactly.

Conventions: column j sits at u = (j + 0.5) / cols, row r at v = (r + 1) / (rows + 1), the crown
pole at v = 0 (its u is that of whichever crown triangle is drawn); below the last row the texture
repeats the last row. Texel (y, x) of a size x size map has its centre at ((x + 0.5) / size,
(y + 0.5) / size).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class UVLayout:
    """Where every vertex of a pole + grid mesh lies on the texture square."""

    rows: int
    cols: int
    #: (V, 2) float32 (u, v) of each vertex; the pole (vertex 0) has u = -1 (undefined)
    uv: np.ndarray
    #: (F,) float32 area of each triangle on the unit square
    face_area: np.ndarray

    @property
    def pole(self) -> int:
        return 0

    def vertex(self, r: int, j: int) -> int:
        return 1 + r * self.cols + (j % self.cols)

    def texel_map(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(size*size, 3) int32 vertex ids and float32 weights of each texel centre: the texture a
        per-vertex field bakes to is sum_k weight_k * field[id_k] (row-major texels)."""
        return _texel_map(self.rows, self.cols, int(size))

    def mirror_u(self, size: int) -> np.ndarray:
        """(size,) column index of each column's mirror image across the face's midline."""
        return np.arange(size)[::-1].copy()


def grid_layout(rows: int, cols: int, faces: np.ndarray) -> UVLayout:
    """The layout of a mesh built as pole + `rows` x `cols` grid (vertex 1 + r * cols + j)."""
    V = 1 + rows * cols
    uv = np.zeros((V, 2), np.float32)
    uv[0] = (-1.0, 0.0)
    r, j = np.divmod(np.arange(rows * cols), cols)
    uv[1:, 0] = (j + 0.5) / cols
    uv[1:, 1] = (r + 1) / (rows + 1)
    cell = 1.0 / cols / (rows + 1)
    crown = (faces == 0).any(axis=1)
    area = np.where(crown, cell, 0.5 * cell).astype(np.float32)
    return UVLayout(rows=rows, cols=cols, uv=uv, face_area=area)


@lru_cache(maxsize=8)
def _texel_map(rows: int, cols: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.divmod(np.arange(size * size), size)
    cu = (x + 0.5) / size * cols - 0.5
    j0f = np.floor(cu)
    fu = cu - j0f
    j0 = j0f.astype(np.int64) % cols
    j1 = (j0 + 1) % cols
    cv = (y + 0.5) / size * (rows + 1) - 1.0

    def vid(r: np.ndarray | int, j: np.ndarray) -> np.ndarray:
        return 1 + r * cols + j

    ids = np.zeros((size * size, 3), np.int64)
    w = np.zeros((size * size, 3), np.float64)
    crown = cv < 0
    t = cv + 1.0
    ids[crown] = np.stack([np.zeros(crown.sum(), np.int64), vid(0, j0[crown]), vid(0, j1[crown])], 1)
    w[crown] = np.stack([1 - t[crown], t[crown] * (1 - fu[crown]), t[crown] * fu[crown]], 1)
    body = ~crown
    r0 = np.floor(cv).astype(np.int64)
    fv = cv - r0
    last = r0 >= rows - 1
    r0 = np.where(last, rows - 2, r0)
    fv = np.where(last, 1.0, fv)
    upper = body & (fu >= fv)  # triangle (v00, v01, v11)
    lower = body & (fu < fv)  # triangle (v00, v11, v10)
    v00, v01, v10, v11 = vid(r0, j0), vid(r0, j1), vid(r0 + 1, j0), vid(r0 + 1, j1)
    ids[upper] = np.stack([v00[upper], v01[upper], v11[upper]], 1)
    w[upper] = np.stack([1 - fu[upper], fu[upper] - fv[upper], fv[upper]], 1)
    ids[lower] = np.stack([v00[lower], v11[lower], v10[lower]], 1)
    w[lower] = np.stack([1 - fv[lower], fu[lower], fv[lower] - fu[lower]], 1)
    return ids.astype(np.int32), w.astype(np.float32)
