"""Attribute and identity controls in the units people think in, and the coefficients they stand for.

Pose in degrees (yaw, pitch, roll), one weight per expression blendshape, and light as a direction
in degrees, an intensity, an ambient level and an RGB colour: what the Generator page's sliders
hold. `FaceGenerator.compose` turns two identities, phi and these controls into one face's
coefficients. A learned model's identity is edited as its shape directions and one bank person per
region (`picked_identity`, `region_picks`). Kept in the library so every client means the same
face by the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import torch

from synface.face.prior import LightControls
from synface.render.shading import sh_to_light

if TYPE_CHECKING:
    from synface.face.learned import LearnedFaceModel

__all__ = ["FaceControls", "hex_to_rgb", "rgb_to_hex", "picked_identity", "region_picks"]


@dataclass(frozen=True)
class FaceControls:
    """Pose, expression and light of one face, in degrees and plain weights.

    The defaults are the neutral face: frontal, no expression, white light from the front and
    slightly above (the light `FaceGenerator.neutral` uses)."""

    pose_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    expr: tuple[float, ...] = ()
    light_yaw_deg: float = 0.0
    light_pitch_deg: float = 17.0
    intensity: float = 0.6
    ambient: float = 0.55
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def attributes(self, jitter_dim: int, expr_dim: int) -> dict[str, torch.Tensor]:
        """pose, expr, light (the 27 SH coefficients) and a zero jitter, each a batch of one, for a
        model of `expr_dim` blendshapes (no expression weights given: a neutral expression)."""
        if self.expr and len(self.expr) != expr_dim:
            raise ValueError(f"the controls give {len(self.expr)} expression weights; this model has {expr_dim} "
                             f"blendshapes")
        expr = torch.tensor([self.expr]) if self.expr else torch.zeros(1, expr_dim)
        light = LightControls(torch.tensor([math.radians(self.light_yaw_deg)]),
                              torch.tensor([math.radians(self.light_pitch_deg)]), torch.tensor([self.intensity]),
                              torch.tensor([self.ambient]), torch.tensor([self.colour])).to_sh()
        pose = torch.tensor([[math.radians(v) for v in self.pose_deg]])
        return {"pose": pose, "expr": expr, "light": light,
                "jitter": torch.zeros(1, jitter_dim)}

    @classmethod
    def from_attributes(cls, attrs: Mapping[str, torch.Tensor], index: int = 0) -> "FaceControls":
        """The controls of face `index` of drawn attributes (`FaceGenerator.sample_attributes`).
        The light is read back from its SH coefficients (`sh_to_light`, a best fit) and its
        colour kept within [0, 1]."""
        light = sh_to_light(attrs["light"][index:index + 1])
        colour = light["colour"][0].clamp(0, 1).tolist()
        yaw, pitch, roll = (math.degrees(float(v)) for v in attrs["pose"][index])
        return cls(pose_deg=(yaw, pitch, roll), expr=tuple(float(v) for v in attrs["expr"][index].tolist()),
                   light_yaw_deg=math.degrees(float(light["yaw"][0])),
                   light_pitch_deg=math.degrees(float(light["pitch"][0])),
                   intensity=float(light["intensity"][0]), ambient=float(light["ambient"][0]),
                   colour=(colour[0], colour[1], colour[2]))


def hex_to_rgb(value: str) -> tuple[float, float, float]:
    """'#RRGGBB' -> (r, g, b) in [0, 1]; a ValueError naming the value when it is not one."""
    text = str(value).lstrip("#")
    if len(text) != 6:
        raise ValueError(f"colour {value!r} is not #RRGGBB")
    try:
        r, g, b = (int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    except ValueError:
        raise ValueError(f"colour {value!r} is not #RRGGBB") from None
    return r, g, b


def rgb_to_hex(rgb: Sequence[float]) -> str:
    """(r, g, b) in [0, 1] -> '#RRGGBB'."""
    return "#" + "".join(f"{int(round(255 * c)):02X}" for c in rgb)


def picked_identity(model: "LearnedFaceModel", shape: Sequence[float],
                    picks: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(shape (1, S), albedo (1, regions x people)) of a learned model's identity: its shape
    directions and, per region, the one bank person who gives that region its reflectance."""
    if len(picks) != model.regions or any(not 0 <= int(p) < model.people for p in picks):
        raise ValueError(f"an identity of model {model.version} picks one of {model.people} bank people for each "
                         f"of its {model.regions} regions, got {list(picks)}")
    albedo = torch.zeros(model.regions, model.people)
    albedo[torch.arange(model.regions), torch.tensor([int(p) for p in picks])] = 1.0
    return torch.tensor([list(shape)], dtype=torch.float32), albedo.view(1, -1)


def region_picks(model: "LearnedFaceModel", albedo: torch.Tensor) -> list[int]:
    """The bank person of each region in one identity's albedo (the inverse of `picked_identity`)."""
    return albedo.reshape(model.regions, model.people).argmax(1).tolist()
