"""Per-image training augmentations as torch ops on (3, H, W) tensors in [-1, 1] (no torchvision).

Each call takes its own `torch.Generator`, seeded per sample from (run seed, epoch, position),
so an augmentation is a pure function of where the sample sits in the epoch: runs are
reproducible with any number of DataLoader workers, and a resumed run sees the same images.

Presets:
  standard            horizontal flip (p=0.5) + random erasing (p=0.5), as SynFace.
  digiface            standard plus a strong DigiFace-style appearance set: Gaussian blur,
                      Gaussian noise, colour jitter (brightness/contrast/saturation), grayscale,
                      down-up sampling and JPEG re-encoding, each far more often than DigiFace-1M
                      publishes. Kept under its name because recorded runs name it.
  digiface-published  DigiFace-1M's augmentation at its published probabilities, warping
                      included: horizontal flip, then the
                      warps, then the appearance steps; no random erasing.
  none                nothing.

JPEG re-encoding is the only step not in torch: PIL encodes the JPEG.
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
           "grayscale", "down_up", "jpeg", "motion_blur", "brightness", "contrast", "saturation", "hue_shift",
           "aspect_change", "scale_rotate_shift", "perspective", "probability_chain", "digiface_published",
           "DIGIFACE_PUBLISHED_STEPS", "Step", "Augment"]

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


def _scale_brightness(img: torch.Tensor, f: float) -> torch.Tensor:
    return (img * f).clamp(0, 1)


def _scale_contrast(img: torch.Tensor, f: float) -> torch.Tensor:
    return ((img - img.mean()) * f + img.mean()).clamp(0, 1)


def _scale_saturation(img: torch.Tensor, f: float) -> torch.Tensor:
    gray = (grayscale(img * 2 - 1) + 1) * 0.5
    return ((img - gray) * f + gray).clamp(0, 1)


def color_jitter(x: torch.Tensor, g: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Brightness, contrast and saturation factors in [1 - strength, 1 + strength], in random order."""
    img = (x + 1) * 0.5
    steps = (_scale_brightness, _scale_contrast, _scale_saturation)
    for op in torch.randperm(3, generator=g).tolist():
        img = steps[op](img, _u(g, 1 - strength, 1 + strength))
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


# ----------------------------------------------------------------------------- DigiFace-1M, as published
#
# DigiFace-1M (Bae et al., WACV 2023) publishes which steps run and how often; where it gives no
# magnitude, the defaults below are this module's choice; lengths are relative to the image side so
# they mean the same at 56 and at 112 pixels (the blur, noise, down-up and JPEG steps reuse the
# ops above with their defaults). Each geometric step resamples once with bilinear interpolation
# and fill what comes in from outside the frame by mirroring the image at its border, so no flat
# band or hard edge marks a warped image.


def motion_blur(x: torch.Tensor, g: torch.Generator, length: tuple[float, float] = (0.04, 0.1)) -> torch.Tensor:
    """Smear along a straight line at a random angle, as a moving head or camera during exposure.

    The line is `length` x the image side long (at least 3 px), through the kernel centre at an
    angle uniform in [0, 180) degrees; each tap weighs 1 minus its distance to the line (at least
    0), so any angle gives a thin, anti-aliased streak; the kernel sums to 1.
    """
    _, h, w = x.shape
    span = max(3.0, _u(g, *length) * min(h, w))
    angle = _u(g, 0.0, math.pi)
    radius = int(math.ceil((span - 1) / 2))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    dx, dy = math.cos(angle), math.sin(angle)
    along = (xx * dx + yy * dy).clamp(-(span - 1) / 2, (span - 1) / 2)
    dist = torch.sqrt((xx - along * dx) ** 2 + (yy - along * dy) ** 2)
    k = (1 - dist).clamp(min=0)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[0]
    y = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(y, k.expand(c, 1, -1, -1), groups=c)[0].clamp(-1, 1)


def brightness(x: torch.Tensor, g: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Scale intensity by a factor uniform in [1 - strength, 1 + strength]."""
    return _scale_brightness((x + 1) * 0.5, _u(g, 1 - strength, 1 + strength)) * 2 - 1


def contrast(x: torch.Tensor, g: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Scale the spread around the mean intensity by a factor uniform in [1 - strength, 1 + strength]."""
    return _scale_contrast((x + 1) * 0.5, _u(g, 1 - strength, 1 + strength)) * 2 - 1


def saturation(x: torch.Tensor, g: torch.Generator, strength: float = 0.3) -> torch.Tensor:
    """Scale colourfulness (distance from the pixel's grey) by a factor uniform in [1 - strength, 1 + strength]."""
    return _scale_saturation((x + 1) * 0.5, _u(g, 1 - strength, 1 + strength)) * 2 - 1


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                           dtype=torch.float64)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def hue_shift(x: torch.Tensor, g: torch.Generator, max_turn: float = 0.05) -> torch.Tensor:
    """Turn every colour's hue by the same angle, uniform in +-max_turn of a full turn.

    A rotation of the chroma plane (I, Q) of YIQ about the luma axis: one 3x3 matrix, luma kept,
    no RGB<->HSV round trip; colours pushed outside the RGB cube are clamped back.
    """
    theta = _u(g, -max_turn, max_turn) * 2 * math.pi
    c, s = math.cos(theta), math.sin(theta)
    turn = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)
    m = (_YIQ_TO_RGB @ turn @ _RGB_TO_YIQ).to(x.dtype)
    img = torch.einsum("ij,jhw->ihw", m, (x + 1) * 0.5)
    return img.clamp(0, 1) * 2 - 1


def _sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample at `grid` (1, H, W, 2) normalised input positions; the border is mirrored."""
    y = F.grid_sample(x[None], grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)
    return y[0].clamp(-1, 1)


def _affine(x: torch.Tensor, inverse_px: torch.Tensor, shift_px: torch.Tensor) -> torch.Tensor:
    """Warp so that the output pixel at p (pixels from the centre) shows the input at inverse_px @ p + shift_px.

    Built in pixels and converted to grid_sample's normalised units, so a rotation stays a
    rotation on non-square images.
    """
    _, h, w = x.shape
    half = torch.tensor([w / 2, h / 2], dtype=torch.float64)
    theta = torch.cat([inverse_px * half[None, :] / half[:, None], (shift_px / half)[:, None]], dim=1)
    grid = F.affine_grid(theta[None].to(x.dtype), [1, *x.shape], align_corners=False)
    return _sample(x, grid)


def aspect_change(x: torch.Tensor, g: torch.Generator, ratio: tuple[float, float] = (0.8, 1.25)) -> torch.Tensor:
    """Stretch the face wider or narrower: width/height ratio log-uniform in `ratio`, area kept."""
    r = math.exp(_u(g, math.log(ratio[0]), math.log(ratio[1])))
    inverse = torch.diag(torch.tensor([1 / math.sqrt(r), math.sqrt(r)], dtype=torch.float64))
    return _affine(x, inverse, torch.zeros(2, dtype=torch.float64))


def scale_rotate_shift(
    x: torch.Tensor, g: torch.Generator, scale: tuple[float, float] = (0.9, 1.1), degrees: float = 10.0,
    shift: float = 0.06,
) -> torch.Tensor:
    """Zoom by a factor uniform in `scale`, rotate by up to +-degrees, move by up to +-shift x the side per axis.

    The misalignment a face detector and landmark fit leave on real photos.
    """
    _, h, w = x.shape
    s = _u(g, *scale)
    a = math.radians(_u(g, -degrees, degrees))
    move = torch.tensor([_u(g, -shift, shift) * w, _u(g, -shift, shift) * h], dtype=torch.float64)
    c, sn = math.cos(a), math.sin(a)
    unrotate = torch.tensor([[c, sn], [-sn, c]], dtype=torch.float64)
    inverse = unrotate / s
    return _affine(x, inverse, -(inverse @ move))


def _homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The 3x3 projective map (last entry 1) taking four points `src` (4, 2) onto `dst` (4, 2)."""
    rows, rhs = [], []
    for (u, v), (p, q) in zip(src.tolist(), dst.tolist()):
        rows.append([u, v, 1.0, 0.0, 0.0, 0.0, -u * p, -v * p])
        rows.append([0.0, 0.0, 0.0, u, v, 1.0, -u * q, -v * q])
        rhs += [p, q]
    h = torch.linalg.solve(torch.tensor(rows, dtype=torch.float64), torch.tensor(rhs, dtype=torch.float64))
    return torch.cat([h, torch.ones(1, dtype=torch.float64)]).view(3, 3)


def perspective(x: torch.Tensor, g: torch.Generator, distortion: float = 0.06) -> torch.Tensor:
    """View the image from off-axis: each corner moves independently by up to +-distortion x the side per axis.

    The output's four corners show the input at the moved corners; a homography carries every
    pixel in between.
    """
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    moved = corners + torch.tensor([[_u(g, -2 * distortion, 2 * distortion) for _ in range(2)] for _ in range(4)],
                                   dtype=torch.float64)
    hom = _homography(corners, moved)
    base = F.affine_grid(torch.eye(2, 3, dtype=torch.float64)[None], [1, *x.shape], align_corners=False)
    mapped = torch.cat([base, torch.ones_like(base[..., :1])], dim=-1) @ hom.T
    return _sample(x, mapped[..., :2] / mapped[..., 2:])


#: A named step of a probability chain: (name, probability, op).
Step = tuple[str, float, Augment]

#: DigiFace-1M's augmentation, in the order applied: warps first (where the camera and the aligner
#: put the face), then optics (blur, motion, resolution), colour, sensor noise and finally JPEG, as
#: a photograph is made. The probabilities are the paper's, except the two unlisted warps (marked).
DIGIFACE_PUBLISHED_STEPS: tuple[Step, ...] = (
    ("aspect", 0.1, aspect_change),
    ("scale_rotate_shift", 0.1, scale_rotate_shift),   # probability not published: chosen as aspect's
    ("perspective", 0.1, perspective),                  # probability not published: chosen as aspect's
    ("blur", 0.05, gaussian_blur),
    ("motion_blur", 0.05, motion_blur),
    ("down_up", 0.01, down_up),
    ("brightness", 0.15, brightness),
    ("contrast", 0.3, contrast),
    ("hue", 0.1, hue_shift),
    ("saturation", 0.1, saturation),
    ("grayscale", 0.01, grayscale),
    ("noise", 0.035, gaussian_noise),
    ("jpeg", 0.05, jpeg),
)


def probability_chain(steps: tuple[Step, ...]) -> Augment:
    """Apply each step with its own probability, in order; one draw per step, applied or not."""

    def chain(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for _, p, op in steps:
            if _u(g) < p:
                x = op(x, g)
        return x

    return chain


_digiface_published_chain = probability_chain(DIGIFACE_PUBLISHED_STEPS)


def digiface_published(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Horizontal flip (p=0.5), then DIGIFACE_PUBLISHED_STEPS; no random erasing (DigiFace-1M lists none)."""
    return _digiface_published_chain(hflip(x, g), g)


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
    """The augmentation function of a preset name ('standard', 'digiface', 'digiface-published', 'none')."""
    table = {"standard": _standard, "digiface": _digiface, "digiface-published": digiface_published, "none": _none}
    if preset not in table:
        raise ValueError(f"unknown augmentation preset {preset!r}; valid: {', '.join(table)}")
    return table[preset]
