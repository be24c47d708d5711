"""One photo re-rendered from its own fit: how much of a photograph's detail the face model's
reflectance carries.

A photo is fitted as `face-model fit` fits its photos (dlib's 68 points, the head fitted to them,
the photo unwrapped onto the texture square); then the head is rendered back at the photo's pose,
with the photo's light, and compared with the photo warped into the same aligned crop. A texture
map keeps the photo's detail; the per-vertex colours learned models had before texture maps (one
colour per vertex of the head) are rendered the same way beside it, as their texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from synface.face.learned_bank import bank_for_size
from synface.face.model import KeepsBaseMesh, MorphableModel
from synface.fitting.unwrap import (
    TexelGeometry, fill_texture, photo_geometry, photo_regions, photo_weight, unwrap_photo,
)


class PhotoTextureModel(KeepsBaseMesh, MorphableModel):
    """The built-in head (its own shape and expression coefficients) wearing one texture map,
    or, with `per_vertex`, that texture read at its vertices only."""

    def __init__(self, base: MorphableModel, texture: np.ndarray, per_vertex: bool = False) -> None:
        self.base = base
        self.shape_info = base.shape_info
        self.expr_info = base.expr_info
        self.albedo_info = base.albedo_info[:1]
        self._texture = np.ascontiguousarray(texture, dtype=np.uint8)[None]
        self._banks: dict[int, dict[str, torch.Tensor]] = {}
        self.per_vertex = per_vertex
        size = texture.shape[0]
        uv = base.uv_layout.uv  # type: ignore[attr-defined]  # the base is the built-in head, which has it
        col = (np.remainder(uv[:, 0], 1.0) * size).astype(int).clip(0, size - 1)
        row = (uv[:, 1] * size).astype(int).clip(0, size - 1)
        self._vertex_colours = torch.from_numpy(texture[row, col].astype(np.float32) / 255.0)  # (V, 3)

    def geometry(self, shape: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        return self.base.geometry(shape, expr)

    def albedo(self, albedo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        return self._vertex_colours.unsqueeze(0).expand(len(albedo), -1, -1)

    def albedo_parts(self, albedo: torch.Tensor, expr: torch.Tensor):  # noqa: ANN201 - MorphableModel's
        B, V = len(albedo), self.num_vertices
        colours = (self._vertex_colours if self.per_vertex else torch.zeros(V, 3)).T.unsqueeze(0).expand(B, 3, V)
        return torch.zeros(B, 3), colours.contiguous(), torch.zeros(B, V), colours.contiguous()

    def texture_bank(self, size: int):  # noqa: ANN201 - the pipeline's bank dict, or None
        if self.per_vertex:
            return None
        if size not in self._banks:
            ones = np.ones((1, self._texture.shape[1] ** 2), np.float32)
            bank = bank_for_size(self._texture, ones, np.zeros((1, 3), np.float32), size)
            self._banks[size] = {k: torch.from_numpy(v) for k, v in bank.items()}
        return self._banks[size]

    def bank_entries(self, albedo: torch.Tensor):  # noqa: ANN201 - (idx, low weights, detail weights)
        B = len(albedo)
        return torch.zeros(B, 1, 1, dtype=torch.long), torch.ones(B, 1, 1), torch.ones(B, 1, 1)

    def to(self, device: str | torch.device) -> "PhotoTextureModel":
        if torch.device(device).type != "cpu":
            raise ValueError("photo reconstructions render on the CPU")
        return self


@dataclass
class PhotoFit:
    """A photo's own fit: the built-in coefficients of its head, its texture and its light."""

    shape: torch.Tensor  # (1, S)
    expr: torch.Tensor  # (1, E)
    pose: torch.Tensor  # (1, 3)
    light: torch.Tensor  # (1, 27) in the renderer's convention
    texture: np.ndarray  # (S, S, 3) uint8
    photo_from_projection: tuple[np.ndarray, np.ndarray]  # (A (2,2), t (2,)): projected points -> photo pixels
    person: np.ndarray  # (H, W) how far each photo pixel shows the person (photo_regions)


def fit_photo(generator, image: np.ndarray, points: np.ndarray, landmark_ids: np.ndarray, geo: TexelGeometry,
              warp: bool = True) -> PhotoFit:
    """Fit one photo (its 68 points, continuous pixel coordinates) with the built-in generator's
    head. `warp`: move the texture by the residual landmark error, as a fit's bank does (so every
    person's features sit on the same texels); without it the texture stays where the fitted head
    sees the photo, which is what re-rendering the photo at its own pose needs."""
    from synface.fitting.geometry_fit import fit_geometry  # noqa: PLC0415
    from synface.fitting.landmarks import landmark_basis  # noqa: PLC0415

    model = generator.model
    mean, shape_basis, expr_basis = landmark_basis(model, landmark_ids)
    low, high = model.expr_range()
    fit = fit_geometry(points[None], mean, shape_basis, expr_basis, low, high)
    pixels, normals, depth = photo_geometry(model, fit, 0, points if warp else None, landmark_ids if warp else None)
    person, hair = photo_regions(image, points)
    unwrapped = unwrap_photo(image, pixels, normals, depth, model.faces, geo, person)
    size = geo.size
    seed = np.broadcast_to(hair, (size, size, 3)) if np.isfinite(hair).all() else None
    filled = fill_texture(unwrapped.albedo.numpy().reshape(size, size, 3),
                          photo_weight(unwrapped.trust).numpy().reshape(size, size), np.arange(size)[::-1].copy(), seed,
                          geo.hair.numpy().reshape(size, size) if seed is not None else None)
    texture = np.clip(np.rint(filled * 255.0), 0, 255).astype(np.uint8)
    return PhotoFit(torch.as_tensor(fit.shape, dtype=torch.float32), torch.as_tensor(fit.expr, dtype=torch.float32),
                    torch.as_tensor(fit.pose, dtype=torch.float32), unwrapped.light.renderer_light().view(1, 27), texture,
                    (fit.A[0], fit.t[0]), person)
