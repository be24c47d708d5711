"""The learned model's regional mosaic as one numba pass per image, in a fixed summation order.

Why a kernel: per vertex the mosaic is a handful of multiply-adds (regions x nonzero weights),
and torch would stream the whole (batch, vertices) array through memory once per region and
weight; here each image is one pass, in parallel over images, with the terms always summed in
the same order (regions ascending, bank people ascending) in strict IEEE float32, so an image's
reflectance does not depend on its batch or the CPU.
"""

from __future__ import annotations

import numba
import numpy as np
import torch


@numba.njit(cache=True, nogil=True, parallel=True)
def _mosaic_rows(index: np.ndarray, weight: np.ndarray, bank: np.ndarray, tones: np.ndarray,
                 regions: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover (compiled)
    B, R, K = index.shape
    V = regions.shape[1]
    for b in numba.prange(B):
        tone0 = np.zeros(3, np.float32)
        for k in range(K):
            w = weight[b, 0, k]
            if w != 0:
                for c in range(3):
                    tone0[c] += w * tones[index[b, 0, k], c]
        tone_r = np.zeros((R, 3), np.float32)
        for r in range(R):
            for k in range(K):
                w = weight[b, r, k]
                if w != 0:
                    for c in range(3):
                        tone_r[r, c] += w * tones[index[b, r, k], c]
        for v in range(V):
            # the three channels together: each region's mask and bank people are read once per
            # vertex; every channel's terms are still summed in the order the docstring states
            a0, a1, a2 = tone0[0], tone0[1], tone0[2]
            for r in range(R):
                m = regions[r, v]
                if m != 0:
                    s0 = np.float32(0.0)
                    s1 = np.float32(0.0)
                    s2 = np.float32(0.0)
                    for k in range(K):
                        w = weight[b, r, k]
                        if w != 0:
                            p = index[b, r, k]
                            s0 += w * bank[p, v * 3]
                            s1 += w * bank[p, v * 3 + 1]
                            s2 += w * bank[p, v * 3 + 2]
                    a0 += m * (s0 - tone_r[r, 0])
                    a1 += m * (s1 - tone_r[r, 1])
                    a2 += m * (s2 - tone_r[r, 2])
            out[b, 0, v] = a0
            out[b, 1, v] = a1
            out[b, 2, v] = a2


def mosaic(weights: torch.Tensor, bank: torch.Tensor, tones: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """(B, 3, V) reflectance from (B, R, P) region weights over a (P, V*3) bank, (P, 3) tones and
    (R, V) masks: tone of region 0 + sum_r mask_r * (blend_r - tone of blend_r)."""
    B, _, P = weights.shape
    V = regions.shape[1]
    w = weights.detach().to(torch.float32).cpu()
    count = max(1, int((w != 0).sum(2).max().item())) if B else 1
    # each (image, region)'s nonzero weights, in ascending bank order, padded with zero weights
    key = (w == 0).to(torch.int64) * P + torch.arange(P)
    order = torch.argsort(key, dim=2)[:, :, :count]
    index = np.ascontiguousarray(order.numpy().astype(np.int64))
    weight = np.ascontiguousarray(w.gather(2, order).numpy())
    out = np.empty((B, 3, V), np.float32)
    if B:
        _mosaic_rows(index, weight, bank.numpy(), tones.numpy(), regions.numpy(), out)
    return torch.from_numpy(out)
