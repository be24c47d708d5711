"""A diagnostic face model: the built-in geometry wearing real people's photographed appearance.

Why: the built-in model's identities sit closer together under dlib's descriptor than real
people do (`bench spread`), and the verification bar of `bench realism` is missed. Whether that is
the procedural reflectance's fault, or the renderer's (a per-vertex colour on a ~6.5k-vertex head,
our pose, light and expression prior), is answered by rendering real appearance through the same
pipeline: each identity's reflectance is sampled from one aligned photograph. `bench photo` does
that; nothing here is used to generate training data.

The model keeps the wrapped model's shape and expression coefficients. Its albedo coefficients
are weights over the photos (identity k = one-hot at k, so identity mixup blends two photos'
colours); its prior draws one photo per identity, uniformly. Expressions move the geometry
only: a blink or an open mouth does not repaint the photo's eyes or lips, as the built-in
model's masks do.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from synface.bench.crop_regions import in_region
from synface.face.model import CoeffInfo, KeepsBaseMesh, MorphableModel
from synface.face.prior import neutral_attributes
from synface.render.shading import sh_irradiance

if TYPE_CHECKING:
    from synface.generator import FaceGenerator

#: vertices whose frontal normal points less toward the camera than this are not seen in a
#: frontal photo; they take the median colour of the seen ones
SEEN_NORMAL_Z = 0.15
#: floor of the neutral irradiance a photo's colour is divided by (no blow-up in dark creases)
MIN_IRRADIANCE = 0.3


def _mean_face_frontal(gen: "FaceGenerator") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mean face, frontal and neutral: (V, 2) crop pixels of its vertices at the generator's
    size, (1, V, 3) normals, and which vertices a frontal photo sees."""
    layout = gen.model.layout
    verts = gen.model.geometry(torch.zeros(1, layout.shape, device=gen.device),
                               torch.zeros(1, layout.expr, device=gen.device))
    normals = gen.model.vertex_normals(verts)
    return gen.frontal_pixels(verts)[0], normals, normals[0, :, 2] > SEEN_NORMAL_Z


def seen_vertices_in_region(gen: "FaceGenerator", region: str) -> torch.Tensor:
    """(V,) bool: vertices a frontal photo sees inside a crop region of `bench spread` (its
    REGIONS), e.g. to give a photo identity real colours only there."""
    pixels, _, seen = _mean_face_frontal(gen)
    uv = (pixels / gen.image_size).cpu().numpy()
    inside = torch.from_numpy(in_region(uv[:, 0], uv[:, 1], region)).to(seen.device)
    return inside & seen


def vertex_colours_from_photos(gen: "FaceGenerator", photos: torch.Tensor) -> torch.Tensor:
    """(P, V, 3) reflectance of every vertex of `gen`'s model, read from (P, H, W, 3) uint8 photos
    aligned as the generator aligns its renders (the ArcFace 5-point template, any square size).

    The model's mean face, frontal and neutral, is projected into the crop, each vertex takes the
    photo's colour there, and the neutral light's shading is divided out so that relighting does
    not shade the face twice.
    """
    if photos.dim() != 4 or photos.shape[-1] != 3 or photos.dtype != torch.uint8 or photos.shape[1] != photos.shape[2]:
        raise ValueError(f"photos must be (P, S, S, 3) uint8 square crops, got {tuple(photos.shape)} {photos.dtype}")
    photos = photos.to(gen.device)
    pixels, normals, seen = _mean_face_frontal(gen)  # pixel (i, j) centred at (j + 0.5, i + 0.5)
    grid = pixels / gen.image_size * 2 - 1
    images = photos.permute(0, 3, 1, 2).float() / 255.0
    sampled = F.grid_sample(images, grid.view(1, 1, -1, 2).expand(len(photos), -1, -1, -1), mode="bilinear",
                            padding_mode="border", align_corners=False)[:, :, 0].permute(0, 2, 1)  # (P, V, 3)
    light = neutral_attributes(1, gen.model.layout.expr)["light"].to(gen.device)
    irradiance = sh_irradiance(normals, light)[0].clamp_min(MIN_IRRADIANCE)  # (V, 3)
    colours = sampled / irradiance
    fill = colours[:, seen].median(dim=1).values  # (P, 3)
    colours[:, ~seen] = fill.unsqueeze(1)
    return colours.clamp(0, 1)


class PhotoAlbedoModel(KeepsBaseMesh, MorphableModel):
    """`base`'s geometry and expressions; reflectance = a blend of per-vertex photo colours."""

    def __init__(self, base: MorphableModel, colours: torch.Tensor, names: list[str] | None = None) -> None:
        if colours.dim() != 3 or colours.shape[1] != base.num_vertices or colours.shape[2] != 3:
            raise ValueError(f"colours must be (photos, {base.num_vertices}, 3), got {tuple(colours.shape)}")
        self.base = base
        self.shape_info = base.shape_info
        self.expr_info = base.expr_info
        names = names or [f"photo {k}" for k in range(len(colours))]
        self.albedo_info = tuple(CoeffInfo(f"photo_{k:04d}", f"weight of {name}'s colours", 0.0, 1.0)
                                 for k, name in enumerate(names))
        self._colours = colours.reshape(len(colours), -1).to(torch.float32).contiguous()
        digest = hashlib.sha256(self._colours.cpu().numpy().tobytes()).hexdigest()[:12]
        self._version = f"{base.version}+photos-{len(colours)}-{digest}"
        self.device = self._colours.device

    @property
    def version(self) -> str:
        return self._version

    def geometry(self, shape: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        return self.base.geometry(shape, expr)

    # exposure: the base class's none, since a photo's colours come already exposed by its camera

    def albedo(self, albedo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        return (albedo @ self._colours).view(albedo.shape[0], -1, 3).clamp(0, 1)

    def correlate_identity(self, shape: torch.Tensor, albedo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One photo per identity: the argmax of independent normal draws is uniform over photos."""
        one_hot = torch.zeros_like(albedo)
        one_hot[torch.arange(len(albedo)), albedo.argmax(1)] = 1.0
        return shape, one_hot

    def to(self, device: str | torch.device) -> "PhotoAlbedoModel":
        self.base = self.base.to(device)
        self._colours = self._colours.to(device)
        self.device = torch.device(device)
        return self


def one_hot_identities(count: int, photos: int) -> torch.Tensor:
    """(count, photos) albedo coefficients choosing photo k for identity k."""
    if count > photos:
        raise ValueError(f"{count} identities need as many photos, got {photos}")
    return torch.eye(photos)[:count]


def as_uint8_batch(images: list[np.ndarray]) -> torch.Tensor:
    """A list of equal-size (H, W, 3) uint8 crops as one (P, H, W, 3) tensor."""
    sizes = {im.shape for im in images}
    if len(sizes) != 1:
        raise ValueError(f"photos must all have one size, got {sorted(sizes)}")
    return torch.from_numpy(np.stack(images)).to(torch.uint8)
