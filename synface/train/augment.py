"""Per-image training augmentations as torch ops on (3, H, W) tensors in [-1, 1] (no torchvision).

Each call takes its own `torch.Generator`, seeded per sample from (run seed, epoch, position),
so an augmentation is a pure function of where the sample sits in the epoch: runs are
reproducible with any number of DataLoader workers, and a resumed run sees the same images.

Presets:
  standard  horizontal flip (p=0.5) + random erasing (p=0.5), as SynFace.
  digiface  standard plus DigiFace-1M's appearance set: Gaussian blur, Gaussian noise, colour
            jitter (brightness/contrast/saturation), grayscale, down-up sampling and JPEG
            re-encoding (the only step not in torch: PIL encodes the JPEG).
  none      nothing.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["build_augment", "hflip", "random_erasing", "gaussian_blur", "gaussian_noise", "color_jitter",
           "grayscale", "down_up", "jpeg", "Augment"]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def hflip(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    return torch.flip(x, dims=[-1]) if _u(g) < p else x


def random_erasing(
    x: torch.Tensor, g: torch.Generator, p: float = 0.5, area: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3), value: float = 0.0,
) -> torch.Tensor:
    """Blank one random rectangle (Zhong et al.); `value` 0 is mid-grey in [-1, 1] pixels."""
    if _u(g) >= p:
        return x
    _, h, w = x.shape
    for _ in range(10):
        target = _u(g, *area) * h * w
        aspect = math.exp(_u(g, math.log(ratio[0]), math.log(ratio[1])))
        eh, ew = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < eh < h and 0 < ew < w:
            top = int(torch.randint(0, h - eh + 1, (), generator=g))
            left = int(torch.randint(0, w - ew + 1, (), generator=g))
            x = x.clone()
            x[:, top:top + eh, left:left + ew] = value
            return x
    return x


def gaussian_blur(x: torch.Tensor, g: torch.Generator, sigma: tuple[float, float] = (0.3, 1.5)) -> torch.Tensor:
    s = _u(g, *sigma)
    radius = max(1, int(math.ceil(2 * s)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = k / k.sum()
    c = x.shape[0]
    y = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0]


def gaussian_noise(x: torch.Tensor, g: torch.Generator, std: tuple[float, float] = (0.01, 0.08)) -> torch.Tensor:
    return (x + torch.randn(x.shape, generator=g, dtype=x.dtype) * _u(g, *std)).clamp(-1, 1)


def grayscale(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    lum = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    return lum.expand_as(x).clone()


def color_jitter(x: torch.Tensor, g: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Brightness, contrast and saturation factors in [1 - strength, 1 + strength], in random order."""
    img = (x + 1) * 0.5
    for op in torch.randperm(3, generator=g).tolist():
        f = _u(g, 1 - strength, 1 + strength)
        if op == 0:
            img = img * f
        elif op == 1:
            img = (img - img.mean()) * f + img.mean()
        else:
            gray = grayscale(img * 2 - 1)
            gray = (gray + 1) * 0.5
            img = (img - gray) * f + gray
        img = img.clamp(0, 1)
    return img * 2 - 1


def down_up(x: torch.Tensor, g: torch.Generator, scale: tuple[float, float] = (0.25, 0.7)) -> torch.Tensor:
    """Lose detail as a low-resolution camera would: area-downsample, bilinear back up."""
    _, h, w = x.shape
    s = _u(g, *scale)
    small = F.interpolate(x[None], size=(max(4, int(h * s)), max(4, int(w * s))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]


def jpeg(x: torch.Tensor, g: torch.Generator, quality: tuple[int, int] = (30, 90)) -> torch.Tensor:
    q = int(torch.randint(quality[0], quality[1] + 1, (), generator=g))
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=q)
    buf.seek(0)
    with Image.open(buf) as img:
        back = np.asarray(img.convert("RGB"))
    return torch.from_numpy(back.copy()).permute(2, 0, 1).to(x.dtype) / 127.5 - 1


def _standard(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return random_erasing(hflip(x, g), g)


#: (probability, op) of the DigiFace-style appearance set, applied in this order.
DIGIFACE_OPS: tuple[tuple[float, Augment], ...] = (
    (0.5, color_jitter),
    (0.1, grayscale),
    (0.2, gaussian_blur),
    (0.2, down_up),
    (0.2, gaussian_noise),
    (0.2, jpeg),
)


def _digiface(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = hflip(x, g)
    for p, op in DIGIFACE_OPS:
        if _u(g) < p:
            x = op(x, g)
    return random_erasing(x, g)


def _none(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x


def build_augment(preset: str) -> Augment:
    """The augmentation function of a preset name ('standard', 'digiface', 'none')."""
    table = {"standard": _standard, "digiface": _digiface, "none": _none}
    if preset not in table:
        raise ValueError(f"unknown augmentation preset {preset!r}; valid: {', '.join(table)}")
    return table[preset]
