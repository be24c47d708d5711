"""Fused CPU render path: pose, normals, SH shading, the face's texture, projection,
rasterisation, texture lookups, anti-aliasing and compositing of one image in numba functions
called once per image (one image per worker thread).

Why: on a 2-core CPU the torch path spends most of its time in elementwise passes over
(B, V, 3) and (B, H, W, C) tensors (memory traffic), not arithmetic. Fusing them keeps each
image's working set in cache. The torch path stays the reference and the CUDA path; tests check
that both give nearly the same pixels.

Per image: irradiance and the per-vertex part of the reflectance at every vertex; the image's
texture (that per-vertex field baked onto the texture square, plus a learned model's bank
composition; see texture_cpu) with its mip chain; a z-buffer of (triangle, barycentrics) per
sample; then per output pixel its covered samples grouped by triangle, each group shaded once at
its mean barycentrics (as multisample anti-aliasing does), one texture lookup at the groups' mean
texture coordinate and the footprint's level of detail (or one per group where they lie far apart
on the texture, as across an occluding edge), weighted by the groups' sample counts and
composited over the background.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numba
import numpy as np
import torch

from synface.base.thread_pools import named_pool
from synface.render.background import noise_fields
from synface.render.camera import CAMERA_DISTANCE, FOCAL_224
from synface.render.raster_numba import HALF, SUBPIXEL, SUBPIXEL_BITS, exclusive_bias
from synface.render.shading import SH_K
from synface.render.resolve_cpu import face_uv, resolve_pixels
from synface.render.texture_cpu import add_bank, bake_field, clamp_and_mip, compose_low, mip_offsets

#: no contraction to FMA, no reassociation, no approximate functions: those depend on the CPU the
#: kernel is compiled for (FMA units, vector width), and an image must have the same pixels on any
_FASTMATH = {"nsz"}


_K0, _K1, _K2 = SH_K  # the SH band constants, folded (a_l * c_l), as numba globals


@numba.njit(cache=True, fastmath=_FASTMATH)
def _face_normals(posed, faces, acc):
    """Area-weighted vertex normals (unnormalised) from any triangle mesh."""
    acc[:] = 0.0
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        ax = posed[i1, 0] - posed[i0, 0]
        ay = posed[i1, 1] - posed[i0, 1]
        az = posed[i1, 2] - posed[i0, 2]
        bx = posed[i2, 0] - posed[i0, 0]
        by = posed[i2, 1] - posed[i0, 1]
        bz = posed[i2, 2] - posed[i0, 2]
        cx = ay * bz - az * by
        cy = az * bx - ax * bz
        cz = ax * by - ay * bx
        for i in (i0, i1, i2):
            acc[i, 0] += cx
            acc[i, 1] += cy
            acc[i, 2] += cz


@numba.njit(cache=True, fastmath=_FASTMATH)
def _grid_normals(posed, rows, cols, acc):
    """Normals by central differences on a pole + rows x cols longitude/latitude grid (vertex 0 is
    the pole): the same directions as face averaging on such a mesh, at a fraction of the cost."""
    for r in range(rows):
        for j in range(cols):
            v = 1 + r * cols + j
            vl = 1 + r * cols + (j + 1) % cols
            vr = 1 + r * cols + (j - 1 + cols) % cols
            up = 0 if r == 0 else v - cols
            down = v + cols if r < rows - 1 else v
            if r == rows - 1:
                up = v - cols
            ax = posed[vl, 0] - posed[vr, 0]
            ay = posed[vl, 1] - posed[vr, 1]
            az = posed[vl, 2] - posed[vr, 2]
            bx = posed[down, 0] - posed[up, 0]
            by = posed[down, 1] - posed[up, 1]
            bz = posed[down, 2] - posed[up, 2]
            acc[v, 0] = by * az - bz * ay
            acc[v, 1] = bz * ax - bx * az
            acc[v, 2] = bx * ay - by * ax
    sx = 0.0
    sy = 0.0
    sz = 0.0
    for j in range(cols):
        sx += acc[1 + j, 0]
        sy += acc[1 + j, 1]
        sz += acc[1 + j, 2]
    acc[0, 0] = sx
    acc[0, 1] = sy
    acc[0, 2] = sz


@numba.njit(cache=True, fastmath=_FASTMATH)
def _shade_and_project(verts, faces, rot, skin, scale, coverage, paint, gamma, focal, cam_dist, A, t, ss, sv, irr,
                       field, posed, acc, grid_rows, grid_cols):
    """Posed normals, SH irradiance and the per-vertex reflectance field at every vertex, and the
    supersampled screen positions."""
    n = verts.shape[0]
    for v in range(n):
        x, y, z = verts[v, 0], verts[v, 1], verts[v, 2]
        posed[v, 0] = rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z
        posed[v, 1] = rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z
        posed[v, 2] = rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z
    if grid_rows > 0:
        _grid_normals(posed, grid_rows, grid_cols, acc)
    else:
        _face_normals(posed, faces, acc)
    for v in range(n):
        nx, ny, nz = acc[v, 0], acc[v, 1], acc[v, 2]
        norm = np.sqrt(nx * nx + ny * ny + nz * nz)
        if norm > 1e-12:
            nx, ny, nz = nx / norm, ny / norm, nz / norm
        else:
            nx, ny, nz = 0.0, 0.0, 1.0
        b1 = -_K1 * ny
        b2 = _K1 * nz
        b3 = -_K1 * nx
        b4 = _K2 * nx * ny
        b5 = -_K2 * ny * nz
        b6 = _K2 * 0.5 / np.sqrt(3.0) * (3 * nz * nz - 1)
        b7 = -_K2 * nx * nz
        b8 = _K2 * 0.5 * (nx * nx - ny * ny)
        cov = min(max(coverage[v], 0.0), 1.0)
        for c in range(3):
            g = gamma[c]
            irr[v, c] = (_K0 * g[0] + b1 * g[1] + b2 * g[2] + b3 * g[3] + b4 * g[4] + b5 * g[5]
                         + b6 * g[6] + b7 * g[7] + b8 * g[8])
            field[v, c] = skin[c] * scale[c, v] * (1.0 - cov) + paint[c, v]
        depth = cam_dist - posed[v, 2]
        px = focal * posed[v, 0] / depth
        py = -focal * posed[v, 1] / depth
        sv[v, 0] = (A[0, 0] * px + A[0, 1] * py + t[0]) * ss
        sv[v, 1] = (A[1, 0] * px + A[1, 1] * py + t[1]) * ss
        sv[v, 2] = depth


@numba.njit(cache=True, fastmath=_FASTMATH)
def _raster_ids(sv, faces, face_texels, ss, buf_depth, buf_face, buf_bary, face_lod):
    """Z-buffered rasterisation of front faces into (triangle, barycentrics) per sample, tuned for
    tiny triangles; `face_lod[f]` gets each drawn triangle's level of detail per output pixel
    (half log2 of its texels over its output pixels).

    Same fixed-point coverage and top-left rule as `raster_numba` (so no gaps or double cover on
    shared edges), but with a plain bounding-box scan and a sign-bit inside test: for triangles
    a few pixels wide that beats computing exact spans per row. A finite depth marks a covered
    sample (no separate mask to clear and write).
    """
    height, width = buf_depth.shape
    buf_depth[:] = np.inf
    n = sv.shape[0]
    X = np.empty(n, np.int64)
    Y = np.empty(n, np.int64)
    lim = 4.0 * (width + height)
    pixel_area = 2.0 * SUBPIXEL * SUBPIXEL * ss * ss  # e of a triangle one output pixel in area
    for v in range(n):
        X[v] = np.int64(np.floor(min(max(sv[v, 0], -lim), lim) * SUBPIXEL + 0.5))
        Y[v] = np.int64(np.floor(min(max(sv[v, 1], -lim), lim) * SUBPIXEL + 0.5))
    for f in range(faces.shape[0]):
        i0 = faces[f, 0]
        i1 = faces[f, 1]
        i2 = faces[f, 2]
        X0, Y0, X1, Y1, X2, Y2 = X[i0], Y[i0], X[i1], Y[i1], X[i2], Y[i2]
        e = (X1 - X0) * (Y2 - Y0) - (X2 - X0) * (Y1 - Y0)
        if e <= 0:
            continue
        j0 = max(-((HALF - min(X0, X1, X2)) >> SUBPIXEL_BITS), 0)
        j1 = min((max(X0, X1, X2) - HALF) >> SUBPIXEL_BITS, width - 1)
        if j0 > j1:
            continue
        r0 = max(-((HALF - min(Y0, Y1, Y2)) >> SUBPIXEL_BITS), 0)
        r1 = min((max(Y0, Y1, Y2) - HALF) >> SUBPIXEL_BITS, height - 1)
        if r0 > r1:
            continue
        face_lod[f] = np.float32(0.5 * np.log2(np.float64(face_texels[f]) * pixel_area / np.float64(e)))
        ex0 = exclusive_bias(X1, Y1, X2, Y2)
        ex1 = exclusive_bias(X2, Y2, X0, Y0)
        ex2 = exclusive_bias(X0, Y0, X1, Y1)
        sx0 = (Y1 - Y2) * SUBPIXEL
        sx1 = (Y2 - Y0) * SUBPIXEL
        sx2 = (Y0 - Y1) * SUBPIXEL
        sy0 = (X2 - X1) * SUBPIXEL
        sy1 = (X0 - X2) * SUBPIXEL
        sy2 = (X1 - X0) * SUBPIXEL
        px = j0 * SUBPIXEL + HALF
        py = r0 * SUBPIXEL + HALF
        row0 = (X2 - X1) * (py - Y1) - (Y2 - Y1) * (px - X1) - ex0
        row1 = (X0 - X2) * (py - Y2) - (Y0 - Y2) * (px - X2) - ex1
        row2 = (X1 - X0) * (py - Y0) - (Y1 - Y0) * (px - X0) - ex2
        inv_e = np.float32(1.0) / np.float32(e)
        z0, z1, z2 = sv[i0, 2], sv[i1, 2], sv[i2, 2]
        for r in range(r0, r1 + 1):
            w0, w1, w2 = row0, row1, row2
            entered = False
            for j in range(j0, j1 + 1):
                if (w0 | w1 | w2) < 0:
                    if entered:  # a triangle is convex: its pixels on a row are one run
                        break
                else:
                    entered = True
                    b0 = np.float32(w0 + ex0) * inv_e
                    b1 = np.float32(w1 + ex1) * inv_e
                    b2 = np.float32(w2 + ex2) * inv_e
                    z = b0 * z0 + b1 * z1 + b2 * z2
                    if z < buf_depth[r, j]:
                        buf_depth[r, j] = z
                        buf_face[r, j] = f
                        buf_bary[r, j, 0] = b0
                        buf_bary[r, j, 1] = b1
                        buf_bary[r, j, 2] = b2
                w0 += sx0
                w1 += sx1
                w2 += sx2
            row0 += sy0
            row1 += sy1
            row2 += sy2


@numba.njit(cache=True, nogil=True)
def _render_range(start, stop, verts, faces, raster_faces, rot, skin, scale, coverage, paint, gamma, focal, cam_dist,
                  A, t, ss, bg, noise, out, grid_rows, grid_cols, fu, fv, face_texels, texel_ids, texel_w,
                  sizes, offsets, low, wide, tones, up_idx, up_w, narrow, detail, idx, low_w, high_w, alpha, backdrop,
                  sv, irr, field, posed, acc, tex, low_img, buf_depth, buf_face, buf_bary, face_lod):
    """Images start..stop-1 with one worker's scratch buffers (reused: fresh per-image buffers
    cost more in page faults than the rasterisation itself). Releases the GIL."""
    n0 = sizes[0] * sizes[0]
    for b in range(start, stop):
        _shade_and_project(verts[b], faces, rot[b], skin[b], scale[b], coverage[b], paint[b], gamma[b], focal,
                           cam_dist, A[b], t[b], ss, sv, irr, field, posed, acc, grid_rows, grid_cols)
        level0 = tex[:n0]
        bake_field(field, texel_ids, texel_w, level0)
        if idx.shape[2] > 0:
            compose_low(low, wide, tones, idx[b], low_w[b], low_img)
            add_bank(level0, low_img, up_idx, up_w, narrow, detail, idx[b], high_w[b])
        clamp_and_mip(tex, sizes, offsets)
        _raster_ids(sv, raster_faces, face_texels, ss, buf_depth, buf_face, buf_bary, face_lod)
        resolve_pixels(buf_depth, buf_face, buf_bary, raster_faces, fu, fv, irr, tex, sizes, offsets, face_lod, bg[b],
                 noise, ss, alpha, backdrop[b] if backdrop.shape[1] > 0 else backdrop[0], out[b])


#: images per work item: small enough to balance two workers when one is slowed by another
#: process, large enough that handing out items costs nothing
CHUNK = 8


@dataclass
class TextureInputs:
    """How one batch's textures are made, for the fused kernel (numpy, float32 unless stated).

    The texture square's layout: `vu`, `vv` (V,) each vertex's coordinates (u < 0 at the pole
    `pole`), `face_area` (F,) each triangle's area on the square, `texel_ids`/`texel_w` (S*S, 3)
    the vertices and weights that bake a per-vertex field into an S x S map. A learned bank (all
    empty with K = 0 entries): `low` (P, L*L, 3), `wide` (R, L*L), `tones` (P, 3), `up_idx`/`up_w`
    (S*S, 4) the bilinear taps from L x L to S x S, `narrow` (R, S*S), `detail` (P, S*S, 3); per
    image `idx` (B, R, K) int64 people and `low_w`, `high_w` (B, R, K) their weights."""

    size: int
    vu: np.ndarray
    vv: np.ndarray
    pole: int
    face_area: np.ndarray
    texel_ids: np.ndarray
    texel_w: np.ndarray
    low: np.ndarray
    wide: np.ndarray
    tones: np.ndarray
    up_idx: np.ndarray
    up_w: np.ndarray
    narrow: np.ndarray
    detail: np.ndarray
    idx: np.ndarray
    low_w: np.ndarray
    high_w: np.ndarray


@dataclass
class FusedInputs:
    """One batch for the fused kernel (CPU tensors). verts are unposed model vertices (B,V,3);
    rot (B,3,3); albedo_parts as `MorphableModel.albedo_parts` (their combination is the
    per-vertex part of the reflectance, baked into each image's texture); gamma the (B,3,9) light
    with the ambient offset; A, t map perspective-projected points to output pixels; background
    (B,12); grid_shape (rows, cols) when the mesh is a pole + longitude/latitude grid (faster
    normals); texture: the texture square and any bank (`TextureInputs`); alpha and backdrop: a face
    drawn into a photo's context (see the fields)."""

    verts: torch.Tensor
    faces: torch.Tensor
    raster_faces: torch.Tensor
    rot: torch.Tensor
    albedo_parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    gamma: torch.Tensor
    A: torch.Tensor
    t: torch.Tensor
    background: torch.Tensor
    texture: TextureInputs
    grid_shape: tuple[int, int] | None = None
    #: (V,) how far each vertex's surface is drawn over the background (default: all of it)
    alpha: torch.Tensor | None = None
    #: (B, size, size, 3) float images in [0, 1] drawn behind the face instead of the procedural background
    backdrop: torch.Tensor | None = None


def render_cpu(inputs: FusedInputs, supersample: int, size: int, workers: int | None = None) -> torch.Tensor:
    """(B,size,size,3) uint8 images.

    Work is shared dynamically: `workers` threads (default: numba's thread count, i.e. the cores)
    take chunks of CHUNK images from a common counter, so a core slowed by another process does
    not leave the others waiting at the end, as a static split would. Plain threads around a
    GIL-free kernel also need no numba threading layer, so any thread may call this.
    """
    def np32(x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.detach().to(torch.float32).numpy())

    skin, scale, coverage, paint = inputs.albedo_parts
    tx = inputs.texture
    B, n = inputs.verts.shape[0], inputs.verts.shape[1]
    out = np.empty((B, size, size, 3), np.uint8)
    big = size * supersample
    sizes, offsets = mip_offsets(tx.size)
    fu, fv = face_uv(inputs.raster_faces.numpy(), tx.vu, tx.vv, int(tx.pole))
    face_texels = (tx.face_area.astype(np.float64) * tx.size * tx.size).astype(np.float32)
    args = (np32(inputs.verts), inputs.faces.numpy(), inputs.raster_faces.numpy(), np32(inputs.rot), np32(skin),
            np32(scale), np32(coverage), np32(paint), np32(inputs.gamma), FOCAL_224 / 224.0, CAMERA_DISTANCE,
            np32(inputs.A), np32(inputs.t), int(supersample), np32(inputs.background),
            np32(noise_fields(size, torch.device("cpu"))), out, *(inputs.grid_shape or (0, 0)),
            fu, fv, face_texels, tx.texel_ids, tx.texel_w, sizes, offsets, tx.low, tx.wide,
            tx.tones, tx.up_idx, tx.up_w, tx.narrow, tx.detail, tx.idx, tx.low_w, tx.high_w,
            np.ones(n, np.float32) if inputs.alpha is None else np32(inputs.alpha),
            np.zeros((1, 0, 0, 3), np.float32) if inputs.backdrop is None else np32(inputs.backdrop))
    counter = itertools.count()
    n_faces = inputs.raster_faces.shape[0]
    low_texels = tx.low.shape[1] if tx.low.ndim == 3 else 1

    def work() -> None:
        scratch = (np.empty((n, 3), np.float32), np.empty((n, 3), np.float32), np.empty((n, 3), np.float32),
                   np.empty((n, 3), np.float32), np.empty((n, 3), np.float32),
                   np.empty((int(offsets[-1]), 3), np.float32), np.empty((max(low_texels, 1), 3), np.float32),
                   np.empty((big, big), np.float32), np.empty((big, big), np.int32),
                   np.empty((big, big, 3), np.float32), np.zeros(n_faces, np.float32))
        while (start := next(counter) * CHUNK) < B:
            _render_range(start, min(start + CHUNK, B), *args, *scratch)

    count = max(1, min(workers or numba.get_num_threads(), (B + CHUNK - 1) // CHUNK))
    if count == 1:
        work()
    else:
        for future in [named_pool("render", count).submit(work) for _ in range(count)]:
            future.result()
    return torch.from_numpy(out)
