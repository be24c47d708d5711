"""Texture maps on the CPU: baking a per-vertex field, composing a learned bank, mip chains and
filtered lookups, as numba functions the fused renderer calls once per image.

A texture is `size x size x 3` float32, row-major, u along x (wrapping: the head's chart closes
at the back), v along y (clamped). Its mip chain lives in one flat buffer: level l has side
`size >> l` and starts at `offsets[l]` (texels). Every sum runs in a fixed order in strict IEEE
float32, so an image's texture does not depend on its batch or the CPU (see fast_cpu._FASTMATH).

Bank composition (learned face models): a texture is a low band plus a detail band. The low band
(colour and tone, no feature shapes) is blended over wide region masks, every region moved to the
skin tone of the rest of the head; the detail band (edges of eyes, brows, lips, skin texture)
comes from one bank person per region over narrow masks. So two people's features never overlap
as a double image, and seams are wide in tone but sharp in detail.
"""

from __future__ import annotations

import numba
import numpy as np

_FASTMATH = {"nsz"}


def mip_offsets(size: int, min_size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, offsets) of a mip chain from `size` down to `min_size` (sizes are powers of two)."""
    sizes, offsets, total, s = [], [], 0, int(size)
    while s >= min_size:
        sizes.append(s)
        offsets.append(total)
        total += s * s
        s //= 2
    return np.array(sizes, np.int64), np.array(offsets + [total], np.int64)


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def bake_field(field, texel_ids, texel_w, out):  # pragma: no cover (compiled)
    """out[t] = sum_k w[t,k] * field[id[t,k]]: a per-vertex (V,3) field as a texture (T,3)."""
    for t in range(texel_ids.shape[0]):
        i0, i1, i2 = texel_ids[t, 0], texel_ids[t, 1], texel_ids[t, 2]
        w0, w1, w2 = texel_w[t, 0], texel_w[t, 1], texel_w[t, 2]
        for c in range(3):
            out[t, c] = w0 * field[i0, c] + w1 * field[i1, c] + w2 * field[i2, c]


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def compose_low(low, wide, tones, idx, low_w, out):  # pragma: no cover (compiled)
    """The low band (L*L, 3): the head region's tone plus, per region, its people's low band with
    their own tone replaced by the head's (regions ascending, people in entry order)."""
    R, K = idx.shape
    head0 = np.float32(0.0)
    head1 = np.float32(0.0)
    head2 = np.float32(0.0)
    for k in range(K):
        w = low_w[0, k]
        if w != 0:
            p = idx[0, k]
            head0 += w * tones[p, 0]
            head1 += w * tones[p, 1]
            head2 += w * tones[p, 2]
    for t in range(out.shape[0]):
        a0, a1, a2 = head0, head1, head2
        for r in range(R):
            m = wide[r, t]
            if m != 0:
                s0 = np.float32(0.0)
                s1 = np.float32(0.0)
                s2 = np.float32(0.0)
                for k in range(K):
                    w = low_w[r, k]
                    if w != 0:
                        p = idx[r, k]
                        s0 += w * (low[p, t, 0] - tones[p, 0])
                        s1 += w * (low[p, t, 1] - tones[p, 1])
                        s2 += w * (low[p, t, 2] - tones[p, 2])
                a0 += m * s0
                a1 += m * s1
                a2 += m * s2
        out[t, 0] = a0
        out[t, 1] = a1
        out[t, 2] = a2


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def add_bank(out, low_img, up_idx, up_w, narrow, detail, idx, high_w):  # pragma: no cover (compiled)
    """out[t] += the low band upsampled (4 bilinear taps) + per region its people's detail."""
    R, K = idx.shape
    for t in range(out.shape[0]):
        for c in range(3):
            out[t, c] += (up_w[t, 0] * low_img[up_idx[t, 0], c] + up_w[t, 1] * low_img[up_idx[t, 1], c]
                          + up_w[t, 2] * low_img[up_idx[t, 2], c] + up_w[t, 3] * low_img[up_idx[t, 3], c])
        for r in range(R):
            m = narrow[r, t]
            if m != 0:
                for k in range(K):
                    w = high_w[r, k]
                    if w != 0:
                        p = idx[r, k]
                        mw = m * w
                        out[t, 0] += mw * detail[p, t, 0]
                        out[t, 1] += mw * detail[p, t, 1]
                        out[t, 2] += mw * detail[p, t, 2]


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def clamp_and_mip(buf, sizes, offsets):  # pragma: no cover (compiled)
    """Clamp level 0 to [0, 1], then fill each further level with 2x2 means of the one above."""
    n0 = sizes[0] * sizes[0]
    for t in range(n0):
        for c in range(3):
            buf[t, c] = min(max(buf[t, c], 0.0), 1.0)
    for level in range(1, sizes.shape[0]):
        s, src = sizes[level], offsets[level - 1]
        dst, s2 = offsets[level], sizes[level - 1]
        for y in range(s):
            for x in range(s):
                a = src + (2 * y) * s2 + 2 * x
                b = a + s2
                for c in range(3):
                    buf[dst + y * s + x, c] = np.float32(0.25) * (buf[a, c] + buf[a + 1, c] + buf[b, c] + buf[b + 1, c])


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def _bilinear(buf, base, s, u, v, out):  # pragma: no cover (compiled)
    x = u * s - np.float32(0.5)
    y = v * s - np.float32(0.5)
    xf = np.floor(x)
    yf = np.floor(y)
    fx = x - xf
    fy = y - yf
    wrap = s - 1  # sides are powers of two: a mask is the modulo, without an integer division
    x0 = np.int64(xf) & wrap
    x1 = (x0 + 1) & wrap
    y0 = min(max(np.int64(yf), 0), s - 1)
    y1 = min(max(np.int64(yf) + 1, 0), s - 1)
    a = base + y0 * s
    b = base + y1 * s
    for c in range(3):
        top = buf[a + x0, c] + fx * (buf[a + x1, c] - buf[a + x0, c])
        bottom = buf[b + x0, c] + fx * (buf[b + x1, c] - buf[b + x0, c])
        out[c] = top + fy * (bottom - top)


@numba.njit(cache=True, fastmath=_FASTMATH, nogil=True)
def sample(buf, sizes, offsets, u, v, lam, out, tmp):  # pragma: no cover (compiled)
    """Trilinear lookup at (u, v) with level of detail `lam` (log2 texels per footprint)."""
    last = sizes.shape[0] - 1
    if lam <= 0.0:
        _bilinear(buf, offsets[0], sizes[0], u, v, out)
        return
    if lam >= last:
        _bilinear(buf, offsets[last], sizes[last], u, v, out)
        return
    level = np.int64(np.floor(lam))
    frac = np.float32(lam - level)
    _bilinear(buf, offsets[level], sizes[level], u, v, out)
    _bilinear(buf, offsets[level + 1], sizes[level + 1], u, v, tmp)
    for c in range(3):
        out[c] = out[c] + frac * (tmp[c] - out[c])
