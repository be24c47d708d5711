"""Texture maps in torch (the CUDA path and the CPU reference): the same baking and bank
composition as `texture_cpu`, batched, plus mip chains and trilinear lookups with grid_sample.

Textures are (B, 3, S, S) float tensors, u along the width (wrapping), v along the height.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bake_field(field: torch.Tensor, texel_ids: torch.Tensor, texel_w: torch.Tensor, size: int) -> torch.Tensor:
    """(B, V, 3) per-vertex field -> (B, 3, S, S) texture (the layout's barycentric texel map)."""
    B = field.shape[0]
    gathered = field[:, texel_ids.view(-1)].view(B, -1, 3, 3)  # (B, T, corner, channel)
    baked = (gathered * texel_w.view(1, -1, 3, 1)).sum(2)
    return baked.permute(0, 2, 1).reshape(B, 3, size, size)


def compose_bank(bank: dict[str, torch.Tensor], idx: torch.Tensor, low_w: torch.Tensor, high_w: torch.Tensor,
                 size: int) -> torch.Tensor:
    """(B, 3, S, S) the bank part of the textures: low band (head tone + per region the people's
    low band moved to the head's tone, over wide masks, upsampled) plus detail over narrow masks.
    `bank` holds low (P, L*L, 3), wide (R, L*L), tones (P, 3), up_idx/up_w (S*S, 4), narrow
    (R, S*S), detail (P, S*S, 3); idx (B, R, K) people, low_w/high_w (B, R, K) weights."""
    B, R, K = idx.shape
    tones = bank["tones"]
    head = (low_w[:, 0, :, None] * tones[idx[:, 0]]).sum(1)  # (B, 3)
    region_low = bank["low"][idx] - tones[idx].unsqueeze(3)  # (B, R, K, L*L, 3)
    region_low = (region_low * low_w[..., None, None]).sum(2)  # (B, R, L*L, 3)
    low_img = head[:, None, :] + (bank["wide"][None, :, :, None] * region_low).sum(1)  # (B, L*L, 3)
    up = low_img[:, bank["up_idx"].view(-1)].view(B, -1, 4, 3)
    texture = (up * bank["up_w"].view(1, -1, 4, 1)).sum(2)  # (B, S*S, 3)
    detail = (bank["detail"][idx] * high_w[..., None, None]).sum(2)  # (B, R, S*S, 3)
    texture = texture + (bank["narrow"][None, :, :, None] * detail).sum(1)
    return texture.permute(0, 2, 1).reshape(B, 3, size, size)


def mip_chain(texture: torch.Tensor, min_size: int = 4) -> list[torch.Tensor]:
    """Level 0 clamped to [0, 1], then 2x2 means down to `min_size`."""
    levels = [texture.clamp(0, 1)]
    while levels[-1].shape[-1] // 2 >= min_size:
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels


def _bilinear(level: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) lookups of one level at (B, H, W) coordinates, u wrapping, v clamped."""
    s = level.shape[-1]
    padded = torch.cat([level[..., -1:], level, level[..., :1]], dim=-1)  # one wrapped column each side
    x = (torch.remainder(u, 1.0) * s + 1.0) / (s + 2) * 2 - 1
    y = v.clamp(0, 1) * 2 - 1
    grid = torch.stack([x, y], -1)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)


def sample(levels: list[torch.Tensor], u: torch.Tensor, v: torch.Tensor, lod: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) trilinear lookups at level of detail `lod` (log2 texels per footprint)."""
    last = len(levels) - 1
    lod = lod.clamp(0, last)
    out = torch.zeros(u.shape[0], 3, *u.shape[1:], device=u.device, dtype=levels[0].dtype)
    for level in range(len(levels)):
        weight = (1 - (lod - level).abs()).clamp_min(0)
        if bool((weight > 0).any()):
            out = out + weight.unsqueeze(1) * _bilinear(levels[level], u, v)
    return out


def footprint_lod(u: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) log2 texels per sample from the differences of the coordinates between
    neighbouring covered samples (the larger axis), 0 where a sample has no covered neighbour."""
    def step(a: torch.Tensor, dim: int, wrap: bool) -> torch.Tensor:
        d = torch.diff(a, dim=dim, append=a.narrow(dim, a.shape[dim] - 1, 1))
        return torch.remainder(d + 0.5, 1.0) - 0.5 if wrap else d

    valid = mask > 0
    span = torch.zeros_like(u)
    for dim in (1, 2):
        both = valid & torch.diff(valid.float(), dim=dim, append=valid.narrow(dim, valid.shape[dim] - 1, 1).float()).eq(0)
        d = torch.sqrt(step(u, dim, True) ** 2 + step(v, dim, False) ** 2) * size
        span = torch.maximum(span, torch.where(both, d.clamp(max=64.0), torch.zeros_like(d)))
    return torch.log2(span.clamp_min(1.0))


def texture_size(image_size: int) -> int:
    """The per-image texture side for renders of `image_size`: the next power of two."""
    return 1 << max(4, math.ceil(math.log2(max(int(image_size), 1))))
