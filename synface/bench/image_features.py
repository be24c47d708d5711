"""A fixed, identity-blind description of how a face crop looks, for the real-vs-synthetic
classifier of `bench realism --real-crops` (synface/bench/image_realism.py).

Why hand-built and fixed rather than a learned network: the project has no pretrained generic
image network (its recognisers read identity, which this measure must not), and a network trained
from scratch per run on a thousand crops costs minutes and varies with its initialisation. A linear
classifier on a broad fixed description is fast, deterministic and says *what* gave a crop away.
The description covers what a person sees at a glance:

- colour and framing: mean opponent colour (luminance, red-green, yellow-blue) and luminance
  contrast on a 4 x 4 grid (skin tone, background, where the face sits in the frame);
- detail: the energy of a Laplacian pyramid's bands on the same grid, per octave, and how
  heavy-tailed each band is (sharp edges and skin texture against a smooth, waxy surface);
- texture: the local energy of a fixed bank of random zero-mean filters at two scales, on the
  grid (pores, hair, stubble, fabric, the grain of a photograph's noise and compression).

Every energy is log-compressed so a linear classifier compares ratios, not raw powers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: cells per side of the pooling grid (4 x 4 cells of 28 px on a 112 px crop)
GRID = 4
#: Laplacian pyramid bands (octaves) of the luminance; colour detail uses the first CHROMA_BANDS
LUMA_BANDS = 4
CHROMA_BANDS = 2
#: random texture filters, their size, and the scales (downsampling factors) they run at
TEXTURE_FILTERS = 24
TEXTURE_SIZE = 5
TEXTURE_SCALES = (1, 2)
#: the texture bank is part of the instrument, not of a run: fixed, whatever the run's seed
TEXTURE_BANK_SEED = 20_211_011
#: floor under energies before the log (an 8-bit crop's quantisation noise is about 1e-5)
ENERGY_FLOOR = 1e-6
#: crops per batch of the feature pass (bounds memory: a batch's texture maps are ~100 MB)
FEATURE_CHUNK = 128


def _opponent(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> luminance, red-green, yellow-blue."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    return torch.stack([(r + g + b) / 3, r - g, (r + g) / 2 - b], 1)


def _blur_down(x: torch.Tensor) -> torch.Tensor:
    """One pyramid step: a [1 4 6 4 1] binomial blur, then every second pixel."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype) / 16
    kernel = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=x.shape[1])[:, :, ::2, ::2]


def _grid_energy(band: torch.Tensor) -> torch.Tensor:
    """log mean square of each channel of (N,C,H,W) on the GRID x GRID cells -> (N, C*GRID*GRID)."""
    return torch.log(F.adaptive_avg_pool2d(band * band, GRID) + ENERGY_FLOOR).flatten(1)


def _tailedness(band: torch.Tensor) -> torch.Tensor:
    """log kurtosis of each channel over the whole crop: crisp detail is sparse (heavy-tailed)."""
    second = (band * band).mean((2, 3))
    fourth = (band ** 4).mean((2, 3))
    return torch.log(fourth + ENERGY_FLOOR ** 2) - 2 * torch.log(second + ENERGY_FLOOR)


def texture_bank() -> torch.Tensor:
    """(TEXTURE_FILTERS, 3, S, S) zero-mean, unit-norm random filters over the opponent channels."""
    rng = np.random.default_rng(TEXTURE_BANK_SEED)
    bank = rng.standard_normal((TEXTURE_FILTERS, 3, TEXTURE_SIZE, TEXTURE_SIZE))
    bank -= bank.mean(axis=(1, 2, 3), keepdims=True)
    bank /= np.sqrt((bank ** 2).sum(axis=(1, 2, 3), keepdims=True))
    return torch.from_numpy(bank.astype(np.float32))


#: the description's parts, in column order: what a person would call each
FEATURE_GROUPS = ("colour and framing", "detail", "texture")


def _feature_parts(x: torch.Tensor, bank: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """The description of (N,3,H,W) crops in [0,1], as (N, k) blocks per FEATURE_GROUPS entry."""
    opp = _opponent(x)
    luma = opp[:, :1]
    luma_mean = F.adaptive_avg_pool2d(luma, GRID)
    contrast = torch.sqrt(torch.clamp(F.adaptive_avg_pool2d(luma * luma, GRID) - luma_mean ** 2, min=0) + ENERGY_FLOOR)
    parts: dict[str, list[torch.Tensor]] = {
        "colour and framing": [F.adaptive_avg_pool2d(opp, GRID).flatten(1), torch.log(contrast).flatten(1)],
        "detail": [], "texture": []}
    level = opp
    for octave in range(LUMA_BANDS):
        coarser = _blur_down(level)
        band = level - F.interpolate(coarser, size=level.shape[-2:], mode="bilinear", align_corners=False)
        channels = band if octave < CHROMA_BANDS else band[:, :1]
        parts["detail"] += [_grid_energy(channels), _tailedness(channels)]
        level = coarser
    pad = TEXTURE_SIZE // 2
    for scale in TEXTURE_SCALES:
        image = opp if scale == 1 else F.avg_pool2d(opp, scale)
        response = F.conv2d(F.pad(image, (pad, pad, pad, pad), mode="replicate"), bank)
        parts["texture"].append(_grid_energy(response))
    return parts


def feature_columns(side: int) -> dict[str, slice]:
    """The columns of crop_features' rows (for `side` px crops) that each FEATURE_GROUPS entry holds."""
    probe = torch.zeros(1, 3, side, side)
    with torch.no_grad():
        parts = _feature_parts(probe, texture_bank())
    columns, start = {}, 0
    for group in FEATURE_GROUPS:
        width = sum(block.shape[1] for block in parts[group])
        columns[group] = slice(start, start + width)
        start += width
    return columns


def crop_features(images: np.ndarray) -> np.ndarray:
    """(N, D) float32 description of (N, H, W, 3) uint8 crops. Each row depends on its own crop
    only (up to float rounding), so a crop is described alike in any batch or order."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 crops, got {images.dtype} {images.shape}")
    bank = texture_bank()
    rows = []
    with torch.no_grad():
        for start in range(0, len(images), FEATURE_CHUNK):
            chunk = torch.from_numpy(images[start:start + FEATURE_CHUNK]).permute(0, 3, 1, 2).float() / 255
            parts = _feature_parts(chunk, bank)
            rows.append(torch.cat([block for group in FEATURE_GROUPS for block in parts[group]], 1).numpy())
    if not rows:
        raise ValueError("no crops to describe")
    return np.concatenate(rows)
