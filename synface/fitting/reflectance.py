"""Reflectance of the built-in head's vertices read from a photo, with the FITTED geometry.

Per photo: every vertex of the fitted, posed head is projected into the photo and takes the
colour there; how squarely it faces the camera says how much to trust it. The photo's light is
estimated as grey spherical-harmonic shading (9 bands) over the face's skin and divided out,
keeping the photo's overall colour and exposure, so renders under our light prior do not shade
the face twice. Per person the photos are averaged by trust; vertices no photo saw take their
mirror image's colour, then the colour of their nearest seen neighbours (diffusion over the
mesh), so the back of the head continues the hair and the neck continues the chin.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from synface.face.prior import neutral_attributes
from synface.fitting.geometry_fit import differentiable_rotations
from synface.render.camera import perspective
from synface.render.shading import sh_basis, sh_irradiance

#: normals facing the camera less than SEEN_LOW are not trusted at all, above SEEN_HIGH fully
SEEN_LOW, SEEN_HIGH = 0.25, 0.6
#: the light fit uses the skin between the brows and the chin (crop pixels of the mean face)
SKIN_BOX = (30.0, 82.0, 48.0, 98.0)  # x0, x1, y0, y1 in the 112x112 aligned crop
#: the fitted shading is kept within this factor of its mean (no blow-up in dark creases)
SHADING_RANGE = (0.55, 1.6)
DIFFUSION_STEPS = 400
#: the residual warp's kernel width (fraction of the inter-ocular distance) and its fade term
WARP_SIGMA_IOD = 0.25
WARP_FADE = 0.3


def residual_warp(pixels: torch.Tensor, landmark_pixels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`pixels` (V,2) moved by the landmarks' remaining errors, spread by a Gaussian kernel.

    Why: the head's shape space cannot place every photo's brows, eyes and lips exactly where dlib
    found them; without this, one person's eyes land on another's eyelids and a blend of people
    shows doubled features. Far from the landmarks (hair, ears, neck) the shift fades to zero."""
    residual = targets - landmark_pixels  # (68,2)
    iod = (targets[36:42].mean(0) - targets[42:48].mean(0)).norm().clamp_min(1.0)
    sigma = WARP_SIGMA_IOD * iod
    d2 = ((pixels[:, None, :] - landmark_pixels[None, :, :]) ** 2).sum(-1)
    w = torch.exp(-d2 / (2 * sigma**2))
    shift = (w @ residual) / (w.sum(1, keepdim=True) + WARP_FADE)
    return pixels + shift


def project_to_photo(model, fit, index: int, targets: np.ndarray | None = None,
                     landmark_ids: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(V,2) photo pixel coordinates and (V,3) posed unit normals of photo `index`'s fitted head;
    with the photo's 68 `targets` (and their vertex ids) the remaining landmark error is warped away."""
    shape = torch.as_tensor(fit.shape[index : index + 1], dtype=torch.float32)
    expr = torch.as_tensor(fit.expr[index : index + 1], dtype=torch.float32)
    verts = model.geometry(shape, expr).double()
    rot = differentiable_rotations(torch.as_tensor(fit.pose[index : index + 1], dtype=torch.float64))
    posed = verts @ rot.transpose(1, 2)
    xy, _ = perspective(posed)
    A, t = torch.as_tensor(fit.A[index], dtype=torch.float64), torch.as_tensor(fit.t[index], dtype=torch.float64)
    pixels = xy[0] @ A.T + t
    normals = model.vertex_normals(posed.float())[0]
    if targets is not None and landmark_ids is not None:
        ids = torch.as_tensor(landmark_ids, dtype=torch.long)
        pixels = residual_warp(pixels, pixels[ids], torch.as_tensor(targets, dtype=torch.float64))
    return pixels, normals


def skin_vertices(generator) -> torch.Tensor:
    """(V,) bool: front vertices of the mean face inside SKIN_BOX of the aligned crop."""
    layout = generator.model.layout
    verts = generator.model.geometry(torch.zeros(1, layout.shape), torch.zeros(1, layout.expr))
    px = generator.frontal_pixels(verts)[0]
    normals = generator.model.vertex_normals(verts)[0]
    x0, x1, y0, y1 = SKIN_BOX
    return (px[:, 0] > x0) & (px[:, 0] < x1) & (px[:, 1] > y0) & (px[:, 1] < y1) & (normals[:, 2] > 0.5)


def neutral_irradiance(normals: torch.Tensor) -> torch.Tensor:
    """(V,3) irradiance of the renderer's neutral light on frontal normals."""
    light = neutral_attributes(1, 1)["light"].to(normals.dtype)
    return sh_irradiance(normals.unsqueeze(0), light)[0]


def photo_reflectance(image: np.ndarray, pixels: torch.Tensor, normals: torch.Tensor, skin: torch.Tensor,
                      frontal_normals: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(V,3) reflectance in [0,1] and (V,) trust in [0,1] of one photo's fitted head."""
    h, w = image.shape[:2]
    img = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    grid = torch.stack([pixels[:, 0] / w * 2 - 1, pixels[:, 1] / h * 2 - 1], -1).float().view(1, 1, -1, 2)
    colour = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < w) & (pixels[:, 1] >= 0) & (pixels[:, 1] < h)
    trust = ((normals[:, 2] - SEEN_LOW) / (SEEN_HIGH - SEEN_LOW)).clamp(0, 1) * inside
    # grey SH shading from luminance over trusted skin, albedo assumed constant there
    use = skin & (trust > 0.9)
    luma = colour @ torch.tensor([0.299, 0.587, 0.114])
    basis = sh_basis(normals.double()).float()  # (V,9)
    if int(use.sum()) >= 30:
        coef = torch.linalg.lstsq(basis[use], luma[use].unsqueeze(1)).solution
        shading = (basis @ coef).squeeze(1)
        shading = shading / shading[use].mean().clamp_min(1e-3)
    else:
        shading = torch.ones(len(colour))
    shading = shading.clamp(*SHADING_RANGE)
    # keep the photo's exposure: the neutral light's mean over the skin stays what the photo had
    reference = neutral_irradiance(frontal_normals)
    scale = reference[skin].mean(0)  # (3,)
    albedo = colour / (shading.unsqueeze(1) * scale.unsqueeze(0))
    return albedo.clamp(0, 1).numpy(), trust.numpy()


def mesh_neighbours(faces: np.ndarray, vertices: int) -> sp.csr_matrix:
    """Row-normalised vertex adjacency of a triangle mesh."""
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adj = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(vertices, vertices))
    adj.data[:] = 1.0
    degree = np.asarray(adj.sum(1)).ravel().clip(min=1)
    return sp.diags(1.0 / degree) @ adj


def mirror_vertices(mean_vertices: np.ndarray) -> np.ndarray:
    """(V,) index of each vertex's mirror image across x = 0 (nearest vertex to (-x, y, z))."""
    from scipy.spatial import cKDTree  # noqa: PLC0415

    mirrored = mean_vertices * np.array([-1.0, 1.0, 1.0])
    return cKDTree(mean_vertices).query(mirrored)[1]


def fill_unseen(colour_sum: np.ndarray, trust_sum: np.ndarray, mirror: np.ndarray,
                neighbours: sp.csr_matrix) -> np.ndarray:
    """(P,V,3) reflectance of P people from their trust-weighted colour sums (P,V,3) and trust
    (P,V): the trusted average, then the mirror image, then diffusion over the mesh."""
    trust = trust_sum.copy()
    colour = colour_sum / np.maximum(trust, 1e-6)[..., None]
    mirror_trust = trust[:, mirror]
    take = (trust < 0.5) & (mirror_trust > trust)
    share = np.where(take, mirror_trust / np.maximum(mirror_trust + trust, 1e-6), 0.0)[..., None]
    colour = colour * (1 - share) + colour[:, mirror] * share
    trust = np.where(take, mirror_trust, trust)
    known = trust >= 0.05
    if not known.any(axis=1).all():
        raise ValueError("no vertex of the head was seen in a person's photos")
    mean = (colour * known[..., None]).sum(1) / known.sum(1)[:, None]
    colour = np.where(known[..., None], colour, mean[:, None, :])
    P, V, _ = colour.shape
    flat = colour.transpose(1, 0, 2).reshape(V, P * 3)
    keep = np.repeat(known.T, 3, axis=1)
    fixed = flat[keep]
    for _ in range(DIFFUSION_STEPS):
        flat = neighbours @ flat
        flat[keep] = fixed
    return flat.reshape(V, P, 3).transpose(1, 0, 2).clip(0, 1)
