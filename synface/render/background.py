"""Varied backgrounds: two colours, a linear gradient and low-frequency noise, all from 12 numbers.

The noise comes from four fixed low-resolution fields weighted by coefficients, so a background is
a pure function of its coefficients (re-rendering a manifest row gives the same pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synface.base.exact import stable_cos, stable_sin

_NOISE_CACHE: dict[tuple[int, str], torch.Tensor] = {}


def noise_fields(size: int, device: torch.device) -> torch.Tensor:
    key = (size, str(device))
    if key not in _NOISE_CACHE:
        g = torch.Generator().manual_seed(2021)
        # mostly luminance noise (shared by the channels) with a little colour
        coarse = torch.randn(4, 1, 6, 6, generator=g) + 0.3 * torch.randn(4, 3, 6, 6, generator=g)
        fine = (torch.randn(4, 1, 24, 24, generator=g) + 0.3 * torch.randn(4, 3, 24, 24, generator=g)) * 0.35
        fields = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
        fields = fields + F.interpolate(fine, size=(size, size), mode="bilinear", align_corners=False)
        _NOISE_CACHE[key] = (fields / fields.std()).to(device)
    return _NOISE_CACHE[key]


def render_background(coeffs: torch.Tensor, size: int) -> torch.Tensor:
    """(B,12) -> (B,3,size,size) float in [0,1]."""
    B, device = coeffs.shape[0], coeffs.device
    colour_a, colour_b = coeffs[:, 0:3], coeffs[:, 3:6]
    angle, amp, weights = coeffs[:, 6], coeffs[:, 7], coeffs[:, 8:12]
    ramp = torch.linspace(-1, 1, size, device=device)
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    t = (stable_cos(angle).view(B, 1, 1) * xx + stable_sin(angle).view(B, 1, 1) * yy) * 0.5 + 0.5
    t = t.clamp(0, 1).unsqueeze(1)
    image = colour_a.view(B, 3, 1, 1) * (1 - t) + colour_b.view(B, 3, 1, 1) * t
    noise = torch.einsum("bk,kchw->bchw", weights, noise_fields(size, device))
    return (image + amp.view(B, 1, 1, 1) * noise * 0.5).clamp(0, 1)
