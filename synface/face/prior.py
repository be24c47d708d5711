"""The default prior over faces: how identities and attributes are drawn from a seed.

Identity coefficients are drawn standard normal (each basis is scaled so that one unit is a
typical variation), truncated at 3; the model may then correlate some of them
(`MorphableModel.correlate_identity`, applied by `FaceGenerator.draw_identities`). Attributes
are drawn from "friendly" distributions (pose in degrees, light direction and colour) and
converted to coefficients. All draws use a CPU torch.Generator,
so a seed gives the same coefficients on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from synface.face.coeffs import BACKGROUND_DIM, JITTER_DIM, FaceCoeffs, FaceLayout
from synface.render.shading import light_to_sh

IDENTITY_CLAMP = 3.0
BACKGROUND_SATURATION = 0.18
BACKGROUND_TEXTURE = 0.3


@dataclass(frozen=True)
class AttributePrior:
    """Spreads of the per-image attributes; `scale` arguments multiply them (0 = neutral)."""

    yaw_std_deg: float = 20.0
    yaw_max_deg: float = 75.0
    pitch_std_deg: float = 5.0
    pitch_max_deg: float = 25.0
    roll_std_deg: float = 5.0
    roll_max_deg: float = 20.0
    expr_active_prob: float = 0.35
    expr_std: float = 0.25
    blink_prob: float = 0.05
    light_yaw_max_deg: float = 60.0
    light_pitch_range_deg: tuple[float, float] = (-10.0, 50.0)
    intensity_range: tuple[float, float] = (0.25, 0.7)
    ambient_range: tuple[float, float] = (0.55, 0.9)
    light_colour_std: float = 0.06
    jitter_shift_std: float = 0.015
    jitter_scale_std: float = 0.03


DEFAULT_PRIOR = AttributePrior()


def _truncnormal(g: torch.Generator, shape: tuple[int, ...], std: float, limit: float) -> torch.Tensor:
    """Normal draws; values past the limit are redrawn once, then clamped (cheap and deterministic)."""
    x = torch.randn(shape, generator=g) * std
    again = torch.randn(shape, generator=g) * std
    x = torch.where(x.abs() > limit, again, x)
    return x.clamp(-limit, limit)


def sample_identity(layout: FaceLayout, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(shape, albedo) coefficients of n new identities."""
    shape = _truncnormal(generator, (n, layout.shape), 1.0, IDENTITY_CLAMP)
    albedo = _truncnormal(generator, (n, layout.albedo), 1.0, IDENTITY_CLAMP)
    return shape, albedo


def sample_pose(n: int, generator: torch.Generator, prior: AttributePrior = DEFAULT_PRIOR, scale: float = 1.0) -> torch.Tensor:
    d = math.radians
    yaw = _truncnormal(generator, (n,), d(prior.yaw_std_deg) * scale, d(prior.yaw_max_deg))
    pitch = _truncnormal(generator, (n,), d(prior.pitch_std_deg) * scale, d(prior.pitch_max_deg))
    roll = _truncnormal(generator, (n,), d(prior.roll_std_deg) * scale, d(prior.roll_max_deg))
    return torch.stack([yaw, pitch, roll], 1)


def sample_expression(expr_low: torch.Tensor, expr_high: torch.Tensor, n: int, generator: torch.Generator,
                      prior: AttributePrior = DEFAULT_PRIOR, scale: float = 1.0, blink_index: tuple[int, ...] = (5, 6)) -> torch.Tensor:
    k = expr_low.shape[0]
    active = torch.rand((n, k), generator=generator) < prior.expr_active_prob
    magnitude = torch.randn((n, k), generator=generator).abs() * prior.expr_std * scale
    signed = torch.where(expr_low < 0, torch.randn((n, k), generator=generator).sign(), torch.ones(k))
    expr = torch.where(active, magnitude * signed, torch.zeros(()))
    blink = (torch.rand((n,), generator=generator) < prior.blink_prob * min(scale, 1.0)).float()
    for i in blink_index:
        if i < k:
            expr[:, i] = torch.maximum(expr[:, i] * 0.3, blink)
    return torch.maximum(torch.minimum(expr, expr_high), expr_low)


@dataclass
class LightControls:
    """Friendly illumination controls; `to_sh` turns them into the 27 SH coefficients."""

    yaw: torch.Tensor  # radians, 0 = from the camera, + = from the image right
    pitch: torch.Tensor  # radians, + = from above
    intensity: torch.Tensor
    ambient: torch.Tensor
    colour: torch.Tensor  # (B,3), around 1

    def to_sh(self) -> torch.Tensor:
        return light_to_sh(self.yaw, self.pitch, self.intensity, self.ambient, self.colour)


def sample_light_controls(n: int, generator: torch.Generator, prior: AttributePrior = DEFAULT_PRIOR, scale: float = 1.0) -> LightControls:
    def uniform(lo: float, hi: float, size: tuple[int, ...] = (n,)) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(size, generator=generator)

    d = math.radians
    yaw = uniform(-d(prior.light_yaw_max_deg), d(prior.light_yaw_max_deg)) * scale
    lo, hi = prior.light_pitch_range_deg
    pitch = uniform(d(lo), d(hi)) * scale
    mid_i = sum(prior.intensity_range) / 2
    mid_a = sum(prior.ambient_range) / 2
    intensity = mid_i + (uniform(*prior.intensity_range) - mid_i) * scale
    ambient = mid_a + (uniform(*prior.ambient_range) - mid_a) * scale
    colour = 1.0 + torch.randn((n, 3), generator=generator) * prior.light_colour_std * scale
    return LightControls(yaw, pitch, intensity, ambient, colour.clamp(0.7, 1.3))


def sample_background(n: int, generator: torch.Generator) -> torch.Tensor:
    colours = torch.rand((n, 6), generator=generator)
    grey = colours.view(n, 2, 3).mean(2, keepdim=True)
    # Muted colours and mild texture, as behind most photographed faces: saturated, high-contrast
    # backgrounds moved dlib's descriptor of one identity almost as much as a change of lighting
    colours = (grey + (colours.view(n, 2, 3) - grey) * BACKGROUND_SATURATION).view(n, 6)
    angle = torch.rand((n, 1), generator=generator) * 2 * math.pi
    amp = torch.rand((n, 1), generator=generator) * 0.12
    weights = torch.randn((n, 4), generator=generator) * BACKGROUND_TEXTURE
    out = torch.cat([colours, angle, amp, weights], 1)
    if out.shape[1] != BACKGROUND_DIM:
        raise ValueError(f"background coefficients have {out.shape[1]} columns, the renderer expects {BACKGROUND_DIM}")
    return out


def sample_jitter(n: int, generator: torch.Generator, prior: AttributePrior = DEFAULT_PRIOR, scale: float = 1.0) -> torch.Tensor:
    shift = torch.randn((n, 2), generator=generator) * prior.jitter_shift_std * scale
    log_scale = torch.randn((n, 1), generator=generator) * prior.jitter_scale_std * scale
    out = torch.cat([shift, log_scale], 1)
    if out.shape[1] != JITTER_DIM:
        raise ValueError(f"jitter coefficients have {out.shape[1]} columns, the renderer expects {JITTER_DIM}")
    return out


def neutral_attributes(n: int, n_expr: int) -> dict[str, torch.Tensor]:
    """Frontal, neutral, evenly lit, plain grey background."""
    one = torch.ones(n)
    controls = LightControls(torch.zeros(n), torch.full((n,), 0.3), one * 0.6, one * 0.55, torch.ones(n, 3))
    background = torch.zeros(n, BACKGROUND_DIM)
    background[:, 0:6] = 0.55
    return {
        "expr": torch.zeros(n, n_expr),
        "light": controls.to_sh(),
        "pose": torch.zeros(n, 3),
        "jitter": torch.zeros(n, JITTER_DIM),
        "background": background,
    }


def make_coeffs(shape: torch.Tensor, albedo: torch.Tensor, attrs: dict[str, torch.Tensor]) -> FaceCoeffs:
    return FaceCoeffs(shape=shape, albedo=albedo, **attrs)
