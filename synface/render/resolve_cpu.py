"""The fused CPU renderer's last step, per output pixel: its samples grouped by triangle, each
group shaded once (as multisample anti-aliasing does), one texture lookup where the groups lie
close on the texture, box-filtered and composited over the background (see fast_cpu)."""

from __future__ import annotations

import numba
import numpy as np

from synface.render.texture_cpu import sample

#: as fast_cpu: no contraction to FMA, no reassociation, no approximate functions (an image must
#: have the same pixels on any CPU)
_FASTMATH = {"nsz"}


@numba.njit(cache=True, fastmath=_FASTMATH)
def face_uv(faces, vu, vv, pole):
    """(F, 3) float64 u and (F, 3) float32 v of each triangle's corners, with u unwrapped
    across the chart's seam (the low side lifted by one turn) and the pole, whose u is undefined,
    given its two neighbours' mean: once per render call, not per sample. (u is float64 because the lift by
    one turn is exact only there; a sample's u is then summed in float64, v in float32.)"""
    fu = np.empty((faces.shape[0], 3), np.float64)
    fv = np.empty((faces.shape[0], 3), np.float32)
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        u0, u1, u2 = vu[i0], vu[i1], vu[i2]
        lo = 2.0
        hi = -1.0
        for u in (u0, u1, u2):
            if u >= 0.0:
                lo = min(lo, u)
                hi = max(hi, u)
        if hi - lo > 0.5:
            u0 = u0 + 1.0 if 0.0 <= u0 < 0.5 else u0
            u1 = u1 + 1.0 if 0.0 <= u1 < 0.5 else u1
            u2 = u2 + 1.0 if 0.0 <= u2 < 0.5 else u2
        if i0 == pole:
            u0 = np.float32(0.5) * (u1 + u2)
        elif i1 == pole:
            u1 = np.float32(0.5) * (u0 + u2)
        elif i2 == pole:
            u2 = np.float32(0.5) * (u0 + u1)
        fu[f, 0] = u0
        fu[f, 1] = u1
        fu[f, 2] = u2
        fv[f, 0] = vv[i0]
        fv[f, 1] = vv[i1]
        fv[f, 2] = vv[i2]
    return fu, fv


@numba.njit(cache=True, fastmath=_FASTMATH)
def resolve_pixels(buf_depth, buf_face, buf_bary, faces, fu, fv, irr, tex, sizes, offsets, face_lod, bg, noise, ss,
             alpha, backdrop, out):
    """Per output pixel, shaded once per triangle it shows (as multisample anti-aliasing does):
    the covered samples are grouped by triangle, each group read at its samples' mean
    barycentrics (texture coordinate, irradiance, `alpha`), weighted by its sample count, box-
    filtered and composited over the background: `backdrop` (size, size, 3) when it has any pixels
    (a photo's context), else the procedural one (computed here, per pixel, exactly as
    `render_background` does in torch); to uint8.

    The texture is read once per pixel at the groups' mean coordinate and level of detail, or,
    where the groups lie far apart on the texture (across an occluding edge or the chart's seam),
    once per group at its own footprint's finer level."""
    photo = backdrop.shape[0] > 0
    size = out.shape[0]
    n = ss * ss
    inv = 1.0 / n
    ca = np.float32(np.cos(np.float64(bg[6])))  # float64 libm, rounded: the same on any CPU
    sa = np.float32(np.sin(np.float64(bg[6])))
    amp = bg[7] * 0.5
    sample_lod = np.float32(np.log2(np.float64(ss)))
    top = np.float32(sizes[0])
    gf = np.empty(n, np.int64)  # per group: its triangle, sample count and summed barycentrics
    gn = np.empty(n, np.float32)
    gb = np.empty((n, 3), np.float32)
    su = np.empty(n, np.float32)
    svv = np.empty(n, np.float32)
    sl = np.empty(n, np.float32)
    sr = np.empty((n, 3), np.float32)
    sa_ = np.empty(n, np.float32)
    half_log2 = np.empty(n + 1, np.float32)  # the level of detail a group of k samples drops by
    for k in range(1, n + 1):
        half_log2[k] = np.float32(0.5 * np.log2(np.float64(k)))
    texel = np.empty(3, np.float32)
    tmp = np.empty(3, np.float32)
    for i in range(size):
        y = -1.0 + 2.0 * i / (size - 1)
        for j in range(size):
            x = -1.0 + 2.0 * j / (size - 1)
            tt = min(max((ca * x + sa * y) * 0.5 + 0.5, 0.0), 1.0)
            groups = 0
            for di in range(ss):
                for dj in range(ss):
                    r_, c_ = i * ss + di, j * ss + dj
                    if buf_depth[r_, c_] < np.inf:
                        f = buf_face[r_, c_]
                        g = 0
                        while g < groups and gf[g] != f:
                            g += 1
                        if g == groups:
                            gf[g] = f
                            gn[g] = 0.0
                            gb[g, 0] = 0.0
                            gb[g, 1] = 0.0
                            gb[g, 2] = 0.0
                            groups += 1
                        gn[g] += 1.0
                        gb[g, 0] += buf_bary[r_, c_, 0]
                        gb[g, 1] += buf_bary[r_, c_, 1]
                        gb[g, 2] += buf_bary[r_, c_, 2]
            r = 0.0
            g_ = 0.0
            b = 0.0
            covered = 0.0
            if groups > 0:
                total = np.float32(0.0)
                for k in range(groups):
                    f = gf[k]
                    w = np.float32(1.0) / gn[k]
                    b0, b1, b2 = gb[k, 0] * w, gb[k, 1] * w, gb[k, 2] * w
                    u = np.float32(b0 * fu[f, 0] + b1 * fu[f, 1] + b2 * fu[f, 2])
                    if k > 0:  # the same turn as the first group
                        if u - su[0] > 0.5:
                            u -= 1.0
                        elif su[0] - u > 0.5:
                            u += 1.0
                    su[k] = u
                    svv[k] = b0 * fv[f, 0] + b1 * fv[f, 1] + b2 * fv[f, 2]
                    sl[k] = face_lod[f]
                    i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
                    for c in range(3):
                        sr[k, c] = b0 * irr[i0, c] + b1 * irr[i1, c] + b2 * irr[i2, c]
                    sa_[k] = gn[k] * (b0 * alpha[i0] + b1 * alpha[i1] + b2 * alpha[i2])
                    total += gn[k]
                mu = np.float32(0.0)
                mv = np.float32(0.0)
                ml = np.float32(0.0)
                for k in range(groups):
                    mu += gn[k] * su[k]
                    mv += gn[k] * svv[k]
                    ml += gn[k] * sl[k]
                scale_ = np.float32(1.0) / total
                mu *= scale_
                mv *= scale_
                ml *= scale_
                spread = np.float32(0.0)
                for k in range(groups):
                    spread = max(spread, abs(su[k] - mu), abs(svv[k] - mv))
                texels = top / np.float32(2.0) ** max(ml, np.float32(0.0))
                single = spread * texels < 1.0
                if single:
                    sample(tex, sizes, offsets, mu, mv, ml, texel, tmp)
                for k in range(groups):
                    if not single:
                        sample(tex, sizes, offsets, su[k], svv[k], sl[k] - sample_lod + half_log2[np.int64(gn[k])],
                               texel, tmp)
                    a = sa_[k]
                    r += a * min(max(texel[0] * sr[k, 0], 0.0), 1.0)
                    g_ += a * min(max(texel[1] * sr[k, 1], 0.0), 1.0)
                    b += a * min(max(texel[2] * sr[k, 2], 0.0), 1.0)
                    covered += a
            rest = 1.0 - covered * inv
            for c in range(3):
                value = (r if c == 0 else (g_ if c == 1 else b)) * inv
                if rest > 0.0:  # the background only where the face does not cover the pixel
                    if photo:
                        value += rest * backdrop[i, j, c]
                    else:
                        nz = (bg[8] * noise[0, c, i, j] + bg[9] * noise[1, c, i, j] + bg[10] * noise[2, c, i, j]
                              + bg[11] * noise[3, c, i, j])
                        value += rest * min(max(bg[c] * (1.0 - tt) + bg[3 + c] * tt + amp * nz, 0.0), 1.0)
                out[i, j, c] = np.uint8(min(max(value * 255.0 + 0.5, 0.0), 255.0))
