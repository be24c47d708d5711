"""The facial regions a learned model's mosaic draws from different people, as soft vertex masks.

Regions are boxes in the 112x112 ArcFace crop of the mean face, seen frontally (eyes at y 51.6,
nose tip at 71.7, mouth corners at 92.3), with 6-pixel soft edges so seams never show as lines.
The first region is the rest of the head (skin, forehead, hair, ears, neck): it also sets the
skin tone every other region is moved to.
"""

from __future__ import annotations

import torch

#: name, (x0, x1, y0, y1) in crop pixels; the first region takes every vertex the others leave
REGION_BOXES = (
    ("head", None),
    ("eyes_brows", (20.0, 92.0, 34.0, 60.0)),
    ("nose", (45.0, 67.0, 60.0, 82.0)),
    ("mouth_chin", (32.0, 80.0, 82.0, 112.0)),
)
SOFT_EDGE_PX = 6.0


def region_masks(generator) -> tuple[list[str], torch.Tensor]:
    """Names and (R, V) soft masks of REGION_BOXES on `generator`'s mean face; columns sum to 1."""
    layout = generator.model.layout
    verts = generator.model.geometry(torch.zeros(1, layout.shape), torch.zeros(1, layout.expr))
    px = generator.frontal_pixels(verts)[0].double()
    return masks_at(px, generator.model.vertex_normals(verts)[0, :, 2].double())


def masks_at(px: torch.Tensor, normal_z: torch.Tensor, soft_edge: float = SOFT_EDGE_PX) -> tuple[list[str], torch.Tensor]:
    """Names and (R, N) soft region masks of points of the mean face at crop pixels `px` (N, 2)
    whose normals have z component `normal_z` (N,) (vertices, or texels of the texture square),
    with edges `soft_edge` crop pixels wide."""
    facing = (normal_z.double() / 0.3).clamp(0, 1)
    masks = []
    for _, box in REGION_BOXES[1:]:
        x0, x1, y0, y1 = box
        ramp = lambda v, lo, hi: torch.sigmoid((v - lo) / soft_edge * 2) * torch.sigmoid((hi - v) / soft_edge * 2)  # noqa: E731
        masks.append(ramp(px[:, 0], x0, x1) * ramp(px[:, 1], y0, y1) * facing)
    features = torch.stack(masks)
    total = features.sum(0)
    features = features / total.clamp_min(1.0)  # overlapping edges share, never exceed 1
    head = (1 - features.sum(0)).clamp_min(0)
    return [name for name, _ in REGION_BOXES], torch.cat([head.unsqueeze(0), features]).float()


def tone_vertices(masks: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
    """(V,) bool: skin vertices mostly in the head region (cheeks, forehead): where a person's
    skin tone is measured."""
    return skin & (masks[0] > 0.9)
