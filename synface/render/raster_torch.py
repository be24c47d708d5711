"""Device-agnostic rasteriser in plain torch tensor ops (meant for CUDA; also runs on CPU).

Same fixed-point geometry, coverage rule and float32 depth/barycentric arithmetic as the numba
kernel (raster_numba.py), so both give the same image. Design:
  1. per-triangle setup on the whole (batch, face) grid: snap to fixed point, orientation,
     culling, clamped pixel bbox; keep the live triangles (compacted);
  2. triangles are grouped by bbox side into a few size buckets (K = 1, 2, 3, 4, 6, 8, 12, ...),
     and each bucket enumerates its K*K candidate pixels per triangle in bounded chunks;
  3. visibility: one scatter_reduce_(amin) per chunk on an int64 key = (float32 bits of the
     depth) << 32 | triangle index. Positive floats order like their bit patterns, so the key
     orders by exact depth, then by face order (the numba kernel's 'first drawn wins' tie rule);
  4. per covered pixel, the winner's barycentrics are recomputed and attributes interpolated.
No python loops over pixels or triangles: only over size buckets and memory chunks.
"""

from __future__ import annotations

import torch

from synface.render.raster_numba import GUARD_BAND, HALF, SUBPIXEL

_KEY_EMPTY = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


def _bucket_sizes(limit: int) -> list[int]:
    """Bbox sides 1, 2, 3, 4, 6, 8, 12, ... up to >= limit (waste <= ~1.8x area per bucket)."""
    sizes, k = [1, 2, 3], 4
    while sizes[-1] < limit:
        sizes += [k, k * 3 // 2]
        k *= 2
    return [s for s in sizes if s < limit] + [next(s for s in sizes if s >= limit)]


def _default_chunk(device: torch.device) -> int:
    """Candidate pixels per chunk: bounds temporary memory (~100 bytes per candidate)."""
    return 1 << 24 if device.type == "cuda" else 1 << 20


def _first_centre(lo: torch.Tensor) -> torch.Tensor:
    return -torch.div(HALF - lo, SUBPIXEL, rounding_mode="floor")


def _last_centre(hi: torch.Tensor) -> torch.Tensor:
    return torch.div(hi - HALF, SUBPIXEL, rounding_mode="floor")


def _exclusive(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Top-left rule (see raster_numba.exclusive_bias): 1 where centres on edge a->b are not owned."""
    dx = b[..., 0] - a[..., 0]
    dy = b[..., 1] - a[..., 1]
    owned = (dy < 0) | ((dy == 0) & (dx > 0))
    return (~owned).long()


def _edge(a: torch.Tensor, b: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Exact int64 edge function (b-a) x (p-a); a, b are (..., 2) broadcast against px, py."""
    return (b[..., 0] - a[..., 0]) * (py - a[..., 1]) - (b[..., 1] - a[..., 1]) * (px - a[..., 0])


def _setup(sv: torch.Tensor, faces: torch.Tensor, height: int, width: int, cull: bool) -> dict:
    """Snap, orient, cull and bbox every (image, face); return the live triangles compacted."""
    tri = sv[:, faces]  # (B,F,3,3)
    xy = tri[..., :2]
    z = tri[..., 2]
    ok = (z > 0).all(-1) & (xy.abs() <= GUARD_BAND).all(-1).all(-1)
    fx = torch.floor(xy.double() * SUBPIXEL + 0.5)
    P = torch.where(ok[..., None, None], fx, torch.zeros_like(fx)).long()  # (B,F,3,2)
    e = _edge(P[..., 0, :], P[..., 1, :], P[..., 2, 0], P[..., 2, 1])
    ok &= e != 0
    if cull:
        ok &= e > 0
    lo = P.amin(2)
    hi = P.amax(2)
    j0 = _first_centre(lo[..., 0]).clamp_min(0)
    j1 = _last_centre(hi[..., 0]).clamp_max(width - 1)
    r0 = _first_centre(lo[..., 1]).clamp_min(0)
    r1 = _last_centre(hi[..., 1]).clamp_max(height - 1)
    ok &= (j0 <= j1) & (r0 <= r1)

    bi, fi = ok.nonzero(as_tuple=True)  # row-major: within an image, face order is kept
    flip = e[bi, fi] < 0
    perm = torch.tensor([0, 1, 2], device=sv.device).expand(bi.shape[0], 3).clone()
    perm[flip] = torch.tensor([0, 2, 1], device=sv.device)
    P = P[bi, fi].gather(1, perm[..., None].expand(-1, 3, 2))  # (N,3,2) oriented, e > 0
    return {
        "b": bi,
        "vidx": faces[fi].gather(1, perm),  # (N,3) oriented vertex indices
        "P": P,
        "z": z[bi, fi].gather(1, perm),  # (N,3) float32
        "e": e[bi, fi].abs(),
        "ex": torch.stack([_exclusive(P[:, 1], P[:, 2]), _exclusive(P[:, 2], P[:, 0]),
                           _exclusive(P[:, 0], P[:, 1])], 1),
        "j0": j0[bi, fi], "r0": r0[bi, fi],
        "nw": (j1 - j0 + 1)[bi, fi], "nh": (r1 - r0 + 1)[bi, fi],
    }


def _barycentrics(w0, w1, w2, e):
    """float32 barycentrics, same operation order as the numba kernel."""
    inv_e = 1.0 / e.float()
    return w0.float() * inv_e, w1.float() * inv_e, w2.float() * inv_e


def _depth(bary, z: torch.Tensor) -> torch.Tensor:
    b0, b1, b2 = bary
    return b0 * z[..., 0] + b1 * z[..., 1] + b2 * z[..., 2]


def _scatter_bucket(T: dict, tris: torch.Tensor, K: int, height: int, width: int,
                    keys: torch.Tensor, chunk: int) -> None:
    """Candidate pixels of triangles `tris` (bbox side <= K) -> amin into the key buffer."""
    off = torch.arange(K * K, device=tris.device)
    dy, dx = off // K, off % K
    per = max(1, chunk // (K * K))
    for s in range(0, tris.shape[0], per):
        t = tris[s:s + per]
        inbox = (dx < T["nw"][t, None]) & (dy < T["nh"][t, None])
        col = T["j0"][t, None] + dx
        row = T["r0"][t, None] + dy
        px = col * SUBPIXEL + HALF
        py = row * SUBPIXEL + HALF
        P = T["P"][t][:, None]  # (n,1,3,2)
        ex = T["ex"][t]
        w0 = _edge(P[..., 1, :], P[..., 2, :], px, py)
        w1 = _edge(P[..., 2, :], P[..., 0, :], px, py)
        w2 = _edge(P[..., 0, :], P[..., 1, :], px, py)
        inside = inbox & (w0 >= ex[:, 0:1]) & (w1 >= ex[:, 1:2]) & (w2 >= ex[:, 2:3])
        n_idx, k_idx = inside.nonzero(as_tuple=True)
        tt = t[n_idx]
        bary = _barycentrics(w0[n_idx, k_idx], w1[n_idx, k_idx], w2[n_idx, k_idx], T["e"][tt])
        z = _depth(bary, T["z"][tt])
        key = (z.view(torch.int32).long() << 32) | tt
        pix = (T["b"][tt] * height + row[n_idx, k_idx]) * width + col[n_idx, k_idx]
        keys.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)


def _resolve(T: dict, keys: torch.Tensor, va: torch.Tensor, height: int, width: int,
             out_attr: torch.Tensor, out_mask: torch.Tensor, out_depth: torch.Tensor) -> None:
    """Winning triangle per pixel -> barycentrics -> interpolated attributes and depth."""
    B, V, C = va.shape
    pix = (keys != _KEY_EMPTY).nonzero(as_tuple=True)[0]
    key = keys[pix]
    t = key & _LOW32
    depth = (key >> 32).to(torch.int32).view(torch.float32)
    hw = pix % (height * width)
    px = (hw % width) * SUBPIXEL + HALF
    py = torch.div(hw, width, rounding_mode="floor") * SUBPIXEL + HALF
    P = T["P"][t]
    w0 = _edge(P[:, 1], P[:, 2], px, py)
    w1 = _edge(P[:, 2], P[:, 0], px, py)
    w2 = _edge(P[:, 0], P[:, 1], px, py)
    b0, b1, b2 = _barycentrics(w0, w1, w2, T["e"][t])
    rows = T["b"][t, None] * V + T["vidx"][t]  # (n,3) rows of va flattened to (B*V, C)
    flat = va.reshape(B * V, C)
    attr = b0[:, None] * flat[rows[:, 0]] + b1[:, None] * flat[rows[:, 1]] \
        + b2[:, None] * flat[rows[:, 2]]
    out_attr.view(-1, C)[pix] = attr
    out_mask.view(-1)[pix] = 1.0
    out_depth.view(-1)[pix] = depth


def raster_torch(screen_verts: torch.Tensor, faces: torch.Tensor, vert_attrs: torch.Tensor,
                 height: int, width: int, cull_backfaces: bool,
                 chunk: int | None = None, max_tris_per_pass: int = 1 << 21
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rasterise on the inputs' device; returns (attrs (B,H,W,C), mask (B,H,W), depth (B,H,W)).

    Inputs must already be validated. Images are processed in groups of at most
    `max_tris_per_pass` (image, face) pairs, and candidates in chunks of `chunk`, so memory
    stays bounded for any batch size and triangle size.
    """
    B, V, _ = screen_verts.shape
    C = vert_attrs.shape[2]
    dev = screen_verts.device
    chunk = chunk or _default_chunk(dev)
    out_attr = torch.zeros(B, height, width, C, dtype=torch.float32, device=dev)
    out_mask = torch.zeros(B, height, width, dtype=torch.float32, device=dev)
    out_depth = torch.full((B, height, width), float("inf"), dtype=torch.float32, device=dev)
    F = faces.shape[0]
    if F == 0 or B == 0:
        return out_attr, out_mask, out_depth
    size_list = _bucket_sizes(max(height, width))
    sizes = torch.tensor(size_list, device=dev)
    group = max(1, max_tris_per_pass // F)
    for s in range(0, B, group):
        sl = slice(s, min(B, s + group))
        T = _setup(screen_verts[sl], faces, height, width, cull_backfaces)
        keys = torch.full((out_mask[sl].numel(),), _KEY_EMPTY, dtype=torch.int64, device=dev)
        side = torch.maximum(T["nw"], T["nh"])
        bucket = torch.searchsorted(sizes, side)
        counts = torch.bincount(bucket, minlength=len(sizes)).tolist()
        order = torch.argsort(bucket, stable=True)
        start = 0
        for k, n in enumerate(counts):
            if n:
                _scatter_bucket(T, order[start:start + n], size_list[k], height, width, keys,
                                chunk)
            start += n
        _resolve(T, keys, vert_attrs[sl], height, width, out_attr[sl], out_mask[sl],
                 out_depth[sl])
    return out_attr, out_mask, out_depth
