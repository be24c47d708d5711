"""Photos unwrapped onto the head's texture square, at the photo's resolution, with the FITTED
geometry.

Per photo: every texel of the texture square is a point of the fitted, posed head (the texel
map's barycentric weights over the mesh); it takes the photo's colour where it projects (after
the residual landmark warp, so one person's eyes land on the texels every model's eyes use), if
it is visible there (a z-buffer of the fitted head in the photo) and faces the camera. The
photo's light is estimated as grey spherical-harmonic shading (9 bands) over the skin and divided
out, keeping the photo's overall colour and exposure. Per person the photos are combined with
weights that favour, per texel, the photo that saw it most squarely (not a plain average, which
doubles features no two photos place exactly alike); texels no photo saw take their mirror
image's colour, then a push-pull fill from their seen surroundings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np
import torch

from synface.fitting.geometry_fit import differentiable_rotations
from synface.fitting.reflectance import SEEN_HIGH, SEEN_LOW, SKIN_BOX, neutral_irradiance, residual_warp
from synface.render.camera import perspective
from synface.render.rasterize import rasterize
from synface.render.shading import AMBIENT_OFFSET, SH_K, sh_basis

#: the side of a bank texture (the face spans about two thirds of each axis)
TEXTURE_SIZE = 512
#: a texel is hidden when the head's surface in front of it is nearer by more than this (model units)
DEPTH_TOLERANCE = 0.03
#: per texel, photos count with their trust to this power when a person's photos are combined
PHOTO_SHARPNESS = 4.0
#: the fitted shading is divided out only in part (to this power, within this range): our head's
#: normals are not the photographed face's, and dividing by the full shading they predict paints
#: bright bands where the two differ most (the forehead's slope, the nose)
SHADING_POWER, SHADING_RANGE = 0.5, (0.8, 1.25)
#: the light fit reads every n-th skin texel (plenty for 9 coefficients)
LIGHT_STRIDE = 7
#: the face outline of a photo: the jaw line, closed above the brows at this many eye distances
FOREHEAD_RISE_IOD = 0.8
#: the outline's soft edge, in eye distances
OUTLINE_EDGE_IOD = 0.12
#: the band above the brows where a photo's hair colour is read (hair, upper forehead or, above
#: the head, background), in eye distances
HAIR_BAND_IOD = (0.85, 1.45)
#: band pixels this far (RGB distance) from both the skin and the background colour count as hair
HAIR_APART = 0.15
#: outside the outline a photo pixel counts as hair (not background) by its colour distance to
#: the hair colour, on this scale (RGB in [0, 1])
HAIR_COLOUR_SCALE = 0.12


@dataclass
class TexelGeometry:
    """What the unwrap needs about the texture square, once per fit."""

    size: int
    ids: torch.Tensor  # (T, 3) long: the vertices of each texel
    weights: torch.Tensor  # (T, 3) float64
    frontal_px: torch.Tensor  # (T, 2) where each texel lands in an aligned crop of the mean face
    frontal_facing: torch.Tensor  # (T,) the mean face's normal z at each texel
    skin: torch.Tensor  # (T,) bool: texels of the light fit (cheeks, nose, forehead, chin)
    frontal_normals: torch.Tensor  # (V, 3) the mean face's normals (for the exposure reference)
    skin_vertices: torch.Tensor  # (V,) bool
    light_texels: torch.Tensor  # (N,) long: the skin texels the light fit reads
    hair: torch.Tensor  # (T,) how far each texel is scalp (above the built-in head's default hairline)

    @property
    def exposure_reference(self) -> torch.Tensor:
        """(3,) the neutral light's mean irradiance over the skin: dividing by it keeps a photo's exposure."""
        return neutral_irradiance(self.frontal_normals)[self.skin_vertices].mean(0)


def texel_geometry(generator, size: int = TEXTURE_SIZE) -> TexelGeometry:
    """The texel map of `generator`'s model and where its texels lie on the mean face."""
    from synface.fitting.reflectance import skin_vertices  # noqa: PLC0415

    model = generator.model
    ids, weights = model.uv_layout.texel_map(size)
    ids_t, w_t = torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(weights.astype(np.float64))
    layout = model.layout
    verts = model.geometry(torch.zeros(1, layout.shape), torch.zeros(1, layout.expr))
    px = generator.frontal_pixels(verts)[0].double()
    normals = model.vertex_normals(verts)[0].double()
    texel_px = (px[ids_t] * w_t.unsqueeze(2)).sum(1)
    facing = (normals[ids_t, 2] * w_t).sum(1)
    x0, x1, y0, y1 = SKIN_BOX
    skin = (texel_px[:, 0] > x0) & (texel_px[:, 0] < x1) & (texel_px[:, 1] > y0) & (texel_px[:, 1] < y1) & (facing > 0.5)
    return TexelGeometry(size, ids_t, w_t, texel_px, facing, skin, normals.float(), skin_vertices(generator),
                         skin.nonzero().flatten()[::LIGHT_STRIDE], _scalp(ids_t, w_t))


def _scalp(ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(T,) how far each texel lies above the built-in head's default hairline."""
    from synface.face.builtin_mesh import build_base_mesh  # noqa: PLC0415
    from synface.face.geometry_fields import hairline_lat, smoothstep  # noqa: PLC0415

    base = build_base_mesh()
    lat = (torch.from_numpy(base["lat"])[ids] * weights).sum(1).numpy()
    lon = (torch.from_numpy(np.abs(base["lon"]))[ids] * weights).sum(1).numpy()
    return torch.from_numpy(smoothstep(-0.012 * np.pi, 0.03 * np.pi, hairline_lat(lon) - lat))


def photo_geometry(model, fit, index: int, targets: np.ndarray | None = None,
                   landmark_ids: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(V, 2) photo pixels, (V, 3) posed unit normals and (V,) camera depth of photo `index`'s
    fitted head; with the photo's 68 `targets` the remaining landmark error is warped away."""
    shape = torch.as_tensor(fit.shape[index : index + 1], dtype=torch.float32)
    expr = torch.as_tensor(fit.expr[index : index + 1], dtype=torch.float32)
    verts = model.geometry(shape, expr).double()
    rot = differentiable_rotations(torch.as_tensor(fit.pose[index : index + 1], dtype=torch.float64))
    posed = verts @ rot.transpose(1, 2)
    xy, depth = perspective(posed)
    A, t = torch.as_tensor(fit.A[index], dtype=torch.float64), torch.as_tensor(fit.t[index], dtype=torch.float64)
    pixels = xy[0] @ A.T + t
    normals = model.vertex_normals(posed.float())[0]
    if targets is not None and landmark_ids is not None:
        ids = torch.as_tensor(landmark_ids, dtype=torch.long)
        pixels = residual_warp(pixels, pixels[ids], torch.as_tensor(targets, dtype=torch.float64))
    return pixels, normals, depth[0]


def visible_depth(pixels: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) depth of the nearest front surface of the fitted head at each photo pixel (+inf off it)."""
    screen = torch.cat([pixels.float(), depth.float().unsqueeze(1)], 1).unsqueeze(0).contiguous()
    raster_faces = faces[:, [0, 2, 1]].contiguous()  # y down flips the winding (see the render pipeline)
    out = rasterize(screen, raster_faces, depth.float().view(1, -1, 1).contiguous(), height, width, cull_backfaces=True)
    return out.depth[0]


def _brows_raised(points: np.ndarray, rise_iod: float) -> np.ndarray:
    """The brow points (26 back to 17) moved up the face by `rise_iod` eye distances."""
    iod = float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))
    up = points[17:27].mean(0) - points[48:68].mean(0)
    up = up / max(float(np.linalg.norm(up)), 1e-9)
    return points[26:16:-1] + up * rise_iod * iod


def _outline(points: np.ndarray) -> np.ndarray:
    """The face's outline in a photo from its 68 points: the jaw line (0-16), then the brows
    raised by FOREHEAD_RISE_IOD eye distances, as one closed polygon (27, 2)."""
    return np.concatenate([points[0:17], _brows_raised(points, FOREHEAD_RISE_IOD)])


def _inside(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels whose centres lie inside `polygon` (continuous coordinates)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).polygon([(float(x) - 0.5, float(y) - 0.5) for x, y in polygon], fill=1)
    return np.asarray(mask, dtype=bool)


def photo_regions(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 how far each photo pixel belongs to the person (1 inside the face's
    outline, fading over its edge; outside, as far as its colour is the hair's) and the hair
    colour (3,) (median of a band above the outline)."""
    from scipy import ndimage  # noqa: PLC0415

    h, w = image.shape[:2]
    iod = max(float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))), 1.0)
    outline = _outline(points)
    inside = _inside(outline, h, w)
    depth_in = ndimage.distance_transform_edt(inside)
    face = np.clip(depth_in / (OUTLINE_EDGE_IOD * iod), 0.0, 1.0)
    low, high = (_brows_raised(points, r) for r in HAIR_BAND_IOD)
    band = _inside(np.concatenate([high, low[::-1]]), h, w) & ~inside
    hair = _hair_colour(image, band, face > 0.5)
    person = face
    if np.isfinite(hair).all():
        dist = np.linalg.norm(image.astype(np.float64) / 255.0 - hair, axis=2)
        person = np.maximum(face, (1 - face) * np.exp(-0.5 * (dist / HAIR_COLOUR_SCALE) ** 2) * ~inside)
    return person.astype(np.float32), hair


def _hair_colour(image: np.ndarray, band: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(3,) the hair colour above the forehead: the median of the band's pixels that are neither
    skin-coloured (the face's median) nor background-coloured (the photo border's median); the
    skin colour when the band is mostly skin (a bald head or a high hairline); NaN when unknown."""
    rgb = image.astype(np.float64) / 255.0
    colours = rgb[band]
    if len(colours) < 20 or not face.any():
        return np.full(3, np.nan)
    skin = np.median(rgb[face], axis=0)
    border = np.concatenate([rgb[:3].reshape(-1, 3), rgb[:, :3].reshape(-1, 3), rgb[:, -3:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    to_skin = np.linalg.norm(colours - skin, axis=1)
    to_background = np.linalg.norm(colours - background, axis=1)
    hair = (to_skin > HAIR_APART) & (to_background > HAIR_APART)
    if hair.mean() >= 0.2:
        return np.median(colours[hair], axis=0)
    if (to_skin <= HAIR_APART).mean() >= 0.5:
        return skin
    return np.full(3, np.nan)


@dataclass
class PhotoLight:
    """A photo's light as the unwrap divides it out: (grey SH coefficients (9,) / norm) **
    SHADING_POWER, clamped to SHADING_RANGE, times the exposure reference (3,)."""

    coefficients: np.ndarray
    norm: float
    reference: np.ndarray

    def shading(self, normals: torch.Tensor) -> torch.Tensor:
        """(N, 3) the shading at unit normals (N, 3)."""
        grey = (sh_basis(normals.double()).numpy() @ self.coefficients) / self.norm
        grey = np.clip(np.maximum(grey, 1e-3) ** SHADING_POWER, *SHADING_RANGE)
        return torch.from_numpy(grey[:, None] * self.reference[None, :])

    def renderer_light(self) -> torch.Tensor:
        """(27,) SH light whose irradiance is, per colour, this shading: least squares over
        directions of the sphere, in the renderer's convention (ambient offset on band 0 removed),
        so a face textured by the unwrap and lit with it looks as the photo did."""
        dirs, pinv = _sphere_fit()
        gamma = (pinv @ self.shading(dirs)).T  # (3, 9)
        gamma[:, 0] -= AMBIENT_OFFSET
        return gamma.reshape(27).float()


@functools.lru_cache(maxsize=1)
def _sphere_fit() -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed directions over the sphere and the pseudo-inverse of their SH basis (least squares)."""
    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(2048, 3, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    return dirs, torch.linalg.pinv(sh_basis(dirs))


@dataclass
class Unwrapped:
    """One photo on the texture square: reflectance (T, 3) in [0, 1], trust (T,) in [0, 1], and
    the light that was divided out."""

    albedo: torch.Tensor
    trust: torch.Tensor
    light: PhotoLight


def _buffers(image: np.ndarray, pixels: torch.Tensor, normals: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor,
             geo: TexelGeometry, person: np.ndarray | None) -> tuple:
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    person = np.ones((h, w), np.float32) if person is None else np.ascontiguousarray(person, dtype=np.float32)
    zbuf = visible_depth(pixels, depth, faces, h, w).numpy()
    return (image, np.ascontiguousarray(pixels.double().numpy()), np.ascontiguousarray(normals.float().numpy()),
            np.ascontiguousarray(depth.double().numpy()), zbuf, np.ascontiguousarray(geo.ids.numpy().astype(np.int32)),
            np.ascontiguousarray(geo.weights.numpy().astype(np.float32)), person)


def photo_light(image: np.ndarray, pixels: torch.Tensor, normals: torch.Tensor, depth: torch.Tensor,
                faces: torch.Tensor, geo: TexelGeometry, person: np.ndarray | None = None) -> PhotoLight:
    """The light of one photo of the fitted head (what `unwrap_photo` divides out), alone."""
    image, pixels64, normals32, depth64, zbuf, ids, weights, person = _buffers(image, pixels, normals, depth, faces, geo,
                                                                                person)
    coef, norm = _fit_light(image, pixels64, normals32, depth64, zbuf, ids, weights, geo.light_texels.numpy(), person)
    return PhotoLight(coef, float(norm), geo.exposure_reference.numpy().astype(np.float64))


def unwrap_photo(image: np.ndarray, pixels: torch.Tensor, normals: torch.Tensor, depth: torch.Tensor,
                 faces: torch.Tensor, geo: TexelGeometry, person: np.ndarray | None = None) -> Unwrapped:
    """One photo unwrapped onto the square (`Unwrapped`); `person` (H, W), from `photo_regions`,
    scales the trust of what each photo pixel shows."""
    image, pixels64, normals32, depth64, zbuf, ids, weights, person = _buffers(image, pixels, normals, depth, faces, geo,
                                                                                person)
    coef, norm = _fit_light(image, pixels64, normals32, depth64, zbuf, ids, weights, geo.light_texels.numpy(), person)
    albedo = np.zeros((len(ids), 3), np.float32)
    trust = np.zeros(len(ids), np.float32)
    reference = geo.exposure_reference.numpy().astype(np.float32)
    _unwrap(image, ids, weights, pixels64, normals32, depth64, zbuf, coef, np.float32(norm), reference,
            np.arange(len(ids)), True, person, *SHADING_RANGE, SHADING_POWER, albedo, trust)
    return Unwrapped(torch.from_numpy(albedo), torch.from_numpy(trust), PhotoLight(coef, float(norm), reference.astype(np.float64)))


def _fit_light(image: np.ndarray, pixels: np.ndarray, normals: np.ndarray, depth: np.ndarray, zbuf: np.ndarray,
               ids: np.ndarray, weights: np.ndarray, light_texels: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey SH shading (9 coefficients) fitted to the luminance of the trusted skin texels (their
    albedo assumed constant), and its mean there; (flat, 1) when too few texels are trusted."""
    n = len(light_texels)
    colour = np.zeros((n, 3), np.float32)
    trust = np.zeros(n, np.float32)
    flat = np.zeros(9, np.float64)
    flat[0] = 1.0 / SH_K[0]
    _unwrap(image, ids, weights, pixels, normals, depth, zbuf, flat, np.float32(1.0), np.ones(3, np.float32),
            light_texels, False, person, *SHADING_RANGE, SHADING_POWER, colour, trust)
    use = trust > 0.9
    if use.sum() < 30:
        return flat, 1.0
    texel_normals = (normals[ids[light_texels[use]]] * weights[light_texels[use], :, None]).sum(1)
    texel_normals /= np.maximum(np.linalg.norm(texel_normals, axis=1, keepdims=True), 1e-9)
    basis = sh_basis(torch.from_numpy(texel_normals.astype(np.float64))).numpy()
    luma = colour[use] @ np.array([0.299, 0.587, 0.114], np.float32)
    coef = np.linalg.solve(basis.T @ basis + 1e-9 * np.eye(9), basis.T @ luma.astype(np.float64))  # 9 x 9 normal equations
    return coef, float(max((basis @ coef).mean(), 1e-3))


@numba.njit(cache=True)
def _unwrap(image, ids, weights, pixels, normals, depth, zbuf, coef, norm, reference, texels, shade, person, lo, hi,
            power, albedo, trust):  # pragma: no cover (compiled)
    """Per texel (of `texels`): its point on the fitted head, whether the photo sees it (facing,
    inside, not hidden), the photo's colour there (bilinear) and, with `shade`, that colour over
    the fitted grey shading (clamped to SHADING_RANGE) and the exposure `reference`. Writes
    albedo[k] (or the raw colour without `shade`) and trust[k] for the k-th texel of `texels`."""
    h, w = zbuf.shape
    k0, k1, k2 = SH_K
    for k in range(texels.shape[0]):
        t = texels[k]
        i0, i1, i2 = ids[t, 0], ids[t, 1], ids[t, 2]
        w0, w1, w2 = weights[t, 0], weights[t, 1], weights[t, 2]
        nx = w0 * normals[i0, 0] + w1 * normals[i1, 0] + w2 * normals[i2, 0]
        ny = w0 * normals[i0, 1] + w1 * normals[i1, 1] + w2 * normals[i2, 1]
        nz = w0 * normals[i0, 2] + w1 * normals[i1, 2] + w2 * normals[i2, 2]
        norm_n = np.sqrt(nx * nx + ny * ny + nz * nz)
        if norm_n < 1e-9:
            continue
        nx, ny, nz = nx / norm_n, ny / norm_n, nz / norm_n
        facing = min(max((nz - SEEN_LOW) / (SEEN_HIGH - SEEN_LOW), 0.0), 1.0)
        if facing <= 0.0:
            continue
        x = w0 * pixels[i0, 0] + w1 * pixels[i1, 0] + w2 * pixels[i2, 0]
        y = w0 * pixels[i0, 1] + w1 * pixels[i1, 1] + w2 * pixels[i2, 1]
        if not (0.0 <= x < w and 0.0 <= y < h):
            continue
        d = w0 * depth[i0] + w1 * depth[i1] + w2 * depth[i2]
        if d > zbuf[int(y), int(x)] + DEPTH_TOLERANCE:
            continue
        # bilinear, pixel centres at +0.5, clamped at the border
        fx = min(max(x - 0.5, 0.0), w - 1.0)
        fy = min(max(y - 0.5, 0.0), h - 1.0)
        x0 = min(int(fx), w - 2) if w > 1 else 0
        y0 = min(int(fy), h - 2) if h > 1 else 0
        ax = fx - x0
        ay = fy - y0
        shading = 1.0
        if shade:
            s = (coef[0] * k0 - coef[1] * k1 * ny + coef[2] * k1 * nz - coef[3] * k1 * nx + coef[4] * k2 * nx * ny
                 - coef[5] * k2 * ny * nz + coef[6] * k2 * 0.5 / np.sqrt(3.0) * (3 * nz * nz - 1)
                 - coef[7] * k2 * nx * nz + coef[8] * k2 * 0.5 * (nx * nx - ny * ny))
            shading = min(max((max(s / norm, 1e-3)) ** power, lo), hi)
        for c in range(3):
            top = image[y0, x0, c] * (1 - ax) + image[y0, min(x0 + 1, w - 1), c] * ax
            bottom = image[min(y0 + 1, h - 1), x0, c] * (1 - ax) + image[min(y0 + 1, h - 1), min(x0 + 1, w - 1), c] * ax
            value = (top * (1 - ay) + bottom * ay) / 255.0
            if shade:
                value = min(max(value / (shading * reference[c]), 0.0), 1.0)
            albedo[k, c] = value
        trust[k] = facing * person[int(y), int(x)]


def photo_weight(trust: torch.Tensor) -> torch.Tensor:
    """How much a photo counts per texel when a person's photos are combined."""
    return trust.clamp(0, 1) ** PHOTO_SHARPNESS


def fill_texture(colour: np.ndarray, weight: np.ndarray, mirror_cols: np.ndarray, seed: np.ndarray | None = None,
                 seed_weight: np.ndarray | None = None) -> np.ndarray:
    """(S, S, 3) texture from a partly known one (`weight` (S, S) in [0, 1]: how far each texel is
    known): texels take their mirror image's colour where that is better known, then `seed`
    colours (the hair colour on the scalp) as far as `seed_weight`, then a push-pull fill."""
    weight = np.clip(weight.astype(np.float64), 0.0, 1.0)
    out = colour.astype(np.float64) * (weight > 0)[..., None]
    mirrored = weight[:, mirror_cols]
    share = np.where(mirrored > weight, mirrored - weight, 0.0)[..., None]
    out = out * (1 - share) + out[:, mirror_cols] * share
    weight = np.maximum(weight, mirrored)
    if seed is not None and seed_weight is not None:
        extra = np.clip(seed_weight - weight, 0.0, 1.0)[..., None]
        out = (out * weight[..., None] + seed * extra) / np.maximum(weight[..., None] + extra, 1e-9)
        weight = np.maximum(weight, seed_weight)
    return _push_pull(out, weight)


def _upsample(image: np.ndarray) -> np.ndarray:
    """2x bilinear upsampling of (S, S, C) (texel centres; edges clamped)."""
    def along(a: np.ndarray, axis: int) -> np.ndarray:
        prev = np.concatenate([a.take([0], axis), a.take(range(a.shape[axis] - 1), axis)], axis)
        nxt = np.concatenate([a.take(range(1, a.shape[axis]), axis), a.take([-1], axis)], axis)
        even, odd = 0.75 * a + 0.25 * prev, 0.75 * a + 0.25 * nxt
        return np.stack([even, odd], axis + 1).reshape(*a.shape[:axis], -1, *a.shape[axis + 1:])
    return along(along(image, 0), 1)


def _push_pull(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill texels of weight < 1 from their surroundings: a pyramid of weighted 2x2 sums (push),
    then each level's gaps filled from the level below, upsampled bilinearly (pull)."""
    levels = [(colour * weight[..., None], weight)]
    while levels[-1][1].shape[0] > 1:
        c, w = levels[-1]
        s = c.shape[0] // 2
        levels.append((c.reshape(s, 2, s, 2, 3).sum((1, 3)), w.reshape(s, 2, s, 2).sum((1, 3))))
    c, w = levels[-1]
    filled = c / np.maximum(w, 1e-9)[..., None]
    for c, w in reversed(levels[:-1]):
        up = _upsample(filled)
        mean = c / np.maximum(w, 1e-9)[..., None]
        share = np.clip(w, 0.0, 1.0)[..., None]
        filled = mean * share + up * (1 - share)
    return filled
