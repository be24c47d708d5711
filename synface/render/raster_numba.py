"""CPU rasteriser: a numba kernel, one image per thread (prange over the batch).

Geometry is snapped to 8-bit sub-pixel fixed point and all coverage arithmetic is done on
int64, so edge functions are exact: the top-left rule then guarantees that a pixel centre on an
edge shared by two triangles is drawn by exactly one of them, with no gaps. Depth and
barycentrics are computed from the exact edge values in float32, in the same operation order as
the torch kernel (raster_torch.py), so both backends agree bit-for-bit up to FMA contraction.

Per triangle: clamped pixel bbox, then row by row the exact covered span is computed from the
edge functions (float estimate + integer correction) and walked with incremental edge values.
Measured cost on the lead's workload (224x224, 23.8k triangles, C=6, 2-core VM): ~1 ms per
image per core, split roughly evenly between per-vertex/per-triangle setup, row spans, depth
test and attribute writes.

Conventions (see rasterize.py): pixel (i, j) has its centre at x = j + 0.5, y = i + 0.5 (y down);
a triangle is front-facing iff e = (x1-x0)(y2-y0) - (x2-x0)(y1-y0) > 0; smaller z is nearer.
"""

from __future__ import annotations

import numba
import numpy as np

SUBPIXEL_BITS = 8
SUBPIXEL = 1 << SUBPIXEL_BITS  # fixed-point units per pixel
HALF = SUBPIXEL // 2  # pixel-centre offset in fixed point
GUARD_BAND = float(1 << 20)  # |x|, |y| above this (pixels): triangle skipped, keeps int64 exact

# No 'contract'/'reassoc': depth must be computed in the same order as the torch kernel so that
# depth ties resolve identically; no 'nnan'/'ninf': the depth buffer starts at +inf.
_FASTMATH = {"nsz"}  # strict otherwise: the same pixels on any CPU


@numba.njit(cache=True, fastmath=_FASTMATH)
def _snap(v: float) -> int:
    """Pixel coordinate -> int64 fixed point (round half up, exactly as the torch kernel)."""
    return np.int64(np.floor(np.float64(v) * SUBPIXEL + 0.5))


@numba.njit(cache=True, fastmath=_FASTMATH)
def _first_centre(lo: int) -> int:
    """Index of the first pixel whose centre is >= the fixed-point coordinate `lo`."""
    return -((HALF - lo) >> SUBPIXEL_BITS)  # arithmetic shift = floor division


@numba.njit(cache=True, fastmath=_FASTMATH)
def _last_centre(hi: int) -> int:
    """Index of the last pixel whose centre is <= the fixed-point coordinate `hi`."""
    return (hi - HALF) >> SUBPIXEL_BITS


@numba.njit(cache=True, fastmath=_FASTMATH)
def exclusive_bias(ax: int, ay: int, bx: int, by: int) -> int:
    """1 if pixel centres exactly on edge a->b are NOT owned by this triangle (top-left rule).

    For a triangle with e > 0 (interior on the left of each edge in y-down coordinates), an edge
    is 'top' when horizontal with dx > 0 and 'left' when dy < 0; those own their centres. The
    rule is antisymmetric in the edge direction, so the neighbour across the edge gets the other
    answer.
    """
    dx = bx - ax
    dy = by - ay
    if dy < 0 or (dy == 0 and dx > 0):
        return 0
    return 1


@numba.njit(cache=True, fastmath=_FASTMATH)
def _clip_span(w: int, step: int, lo: int, hi: int) -> tuple[int, int]:
    """Intersect the column offsets [lo, hi] with {t : w + step * t >= 0} (exact).

    The bound comes from a float64 division (w, step < 2**53, so the quotient is within one of
    the true one) corrected with exact integer tests: cheaper than int64 division.
    """
    if step > 0:
        if w < 0:
            t = np.int64(np.float64(-w) / np.float64(step))
            if w + step * t < 0:
                t += 1
            elif t > 0 and w + step * (t - 1) >= 0:
                t -= 1
            lo = max(lo, t)
    elif step < 0:
        if w < 0:
            return lo, lo - 1
        t = np.int64(np.float64(w) / np.float64(-step))
        if w + step * t < 0:
            t -= 1
        elif w + step * (t + 1) >= 0:
            t += 1
        hi = min(hi, t)
    elif w < 0:
        return lo, lo - 1
    return lo, hi


@numba.njit(cache=True, fastmath=_FASTMATH)
def _snap_vertices(sv):
    """Per-vertex fixed-point x, y and a usable flag (z > 0, inside the guard band).

    Done once per vertex rather than once per triangle corner: the per-triangle setup is what
    dominates for small triangles.
    """
    n = sv.shape[0]
    X = np.empty(n, np.int64)
    Y = np.empty(n, np.int64)
    ok = np.empty(n, np.bool_)
    for v in range(n):
        x = sv[v, 0]
        y = sv[v, 1]
        ok[v] = sv[v, 2] > 0 and abs(x) <= GUARD_BAND and abs(y) <= GUARD_BAND
        X[v] = _snap(x) if ok[v] else 0
        Y[v] = _snap(y) if ok[v] else 0
    return X, Y, ok


@numba.njit(cache=True, fastmath=_FASTMATH)
def _raster_image(sv, faces, va, cull, out_attr, out_mask, out_depth):
    """Rasterise one image: z-buffer, forward attribute writes (overdraw is ~1 after culling)."""
    height, width = out_mask.shape
    out_attr[:] = 0.0
    out_mask[:] = 0.0
    out_depth[:] = np.inf
    X, Y, ok = _snap_vertices(sv)
    xmax_fx = width * SUBPIXEL
    ymax_fx = height * SUBPIXEL
    for f in range(faces.shape[0]):
        i0 = faces[f, 0]
        i1 = faces[f, 1]
        i2 = faces[f, 2]
        if not (ok[i0] and ok[i1] and ok[i2]):
            continue
        X0 = X[i0]
        Y0 = Y[i0]
        X1 = X[i1]
        Y1 = Y[i1]
        X2 = X[i2]
        Y2 = Y[i2]
        e = (X1 - X0) * (Y2 - Y0) - (X2 - X0) * (Y1 - Y0)
        if e == 0 or (cull and e < 0):
            continue
        # Off-screen reject; equivalent to the empty clamped bbox below, just earlier.
        if max(X0, X1, X2) < 0 or min(X0, X1, X2) > xmax_fx:
            continue
        if max(Y0, Y1, Y2) < 0 or min(Y0, Y1, Y2) > ymax_fx:
            continue
        if e < 0:  # back face drawn without culling: swap v1/v2 to get e > 0
            X1, Y1, i1, X2, Y2, i2, e = X2, Y2, i2, X1, Y1, i1, -e
        _draw_triangle(X0, Y0, X1, Y1, X2, Y2, sv[i0, 2], sv[i1, 2], sv[i2, 2], e,
                       va, i0, i1, i2, out_attr, out_mask, out_depth)


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")  # a call per triangle costs
def _draw_triangle(X0, Y0, X1, Y1, X2, Y2, z0, z1, z2, e, va, i0, i1, i2,
                   out_attr, out_mask, out_depth):
    """Scan one triangle with e > 0 (fixed-point corners) row by row into the z-buffer.

    va[i0], va[i1], va[i2] are the corners' attributes (indices, not row slices: slicing
    costs reference counting per triangle).
    """
    height, width = out_mask.shape
    n_attr = va.shape[1]
    j0 = max(_first_centre(min(X0, X1, X2)), 0)
    j1 = min(_last_centre(max(X0, X1, X2)), width - 1)
    r0 = max(_first_centre(min(Y0, Y1, Y2)), 0)
    r1 = min(_last_centre(max(Y0, Y1, Y2)), height - 1)
    if j0 > j1 or r0 > r1:
        return
    # Edge k is opposite vertex k: w_k(p) = (b-a) x (p-a), with w_k(v_k) = e.
    ex0 = exclusive_bias(X1, Y1, X2, Y2)
    ex1 = exclusive_bias(X2, Y2, X0, Y0)
    ex2 = exclusive_bias(X0, Y0, X1, Y1)
    sx0 = (Y1 - Y2) * SUBPIXEL  # step of w_k per pixel along x
    sx1 = (Y2 - Y0) * SUBPIXEL
    sx2 = (Y0 - Y1) * SUBPIXEL
    inv_e = np.float32(1.0) / np.float32(e)
    px0 = j0 * SUBPIXEL + HALF
    for r in range(r0, r1 + 1):
        py = r * SUBPIXEL + HALF
        # biased edge values at column j0: inside iff all >= 0
        w0 = (X2 - X1) * (py - Y1) - (Y2 - Y1) * (px0 - X1) - ex0
        w1 = (X0 - X2) * (py - Y2) - (Y0 - Y2) * (px0 - X2) - ex1
        w2 = (X1 - X0) * (py - Y0) - (Y1 - Y0) * (px0 - X0) - ex2
        # Exact covered span of this row: no per-pixel inside test (whose outcome is a
        # coin flip for tiny triangles, i.e. a mispredicted branch per pixel).
        lo, hi = _clip_span(w0, sx0, 0, j1 - j0)
        lo, hi = _clip_span(w1, sx1, lo, hi)
        lo, hi = _clip_span(w2, sx2, lo, hi)
        if lo > hi:
            continue
        w0 += sx0 * lo + ex0
        w1 += sx1 * lo + ex1
        w2 += sx2 * lo + ex2
        for j in range(j0 + lo, j0 + hi + 1):
            b0 = np.float32(w0) * inv_e
            b1 = np.float32(w1) * inv_e
            b2 = np.float32(w2) * inv_e
            z = b0 * z0 + b1 * z1 + b2 * z2
            if z < out_depth[r, j]:  # strict: on an exact tie the first face wins
                out_depth[r, j] = z
                out_mask[r, j] = 1.0
                for c in range(n_attr):
                    out_attr[r, j, c] = b0 * va[i0, c] + b1 * va[i1, c] + b2 * va[i2, c]
            w0 += sx0
            w1 += sx1
            w2 += sx2


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _raster_batch(sv, faces, va, cull, out_attr, out_mask, out_depth):
    """One image per thread: images are independent, so no write conflicts."""
    for b in numba.prange(sv.shape[0]):
        _raster_image(sv[b], faces, va[b], cull, out_attr[b], out_mask[b], out_depth[b])


def raster_numba(screen_verts: np.ndarray, faces: np.ndarray, vert_attrs: np.ndarray,
                 height: int, width: int, cull_backfaces: bool,
                 out_attr: np.ndarray, out_mask: np.ndarray, out_depth: np.ndarray) -> None:
    """Rasterise into preallocated contiguous float32 outputs (B,H,W,C), (B,H,W), (B,H,W).

    Inputs must already be validated: contiguous float32 (B,V,3), int64 (F,3), float32 (B,V,C).
    """
    if out_attr.shape[1:3] != (height, width):
        raise ValueError(f"out_attr must be (B,{height},{width},C), got {out_attr.shape}")
    _raster_batch(screen_verts, faces, vert_attrs, bool(cull_backfaces),
                  out_attr, out_mask, out_depth)


def warmup() -> None:
    """Compile (or load from cache) the kernel on a tiny scene, e.g. from a background thread."""
    sv = np.array([[[1.0, 1.0, 1.0], [7.0, 1.0, 1.0], [1.0, 7.0, 1.0]]], dtype=np.float32)
    faces = np.array([[0, 1, 2]], dtype=np.int64)
    va = np.ones((1, 3, 1), dtype=np.float32)
    attr = np.empty((1, 8, 8, 1), dtype=np.float32)
    mask = np.empty((1, 8, 8), dtype=np.float32)
    depth = np.empty((1, 8, 8), dtype=np.float32)
    raster_numba(sv, faces, va, 8, 8, True, attr, mask, depth)
