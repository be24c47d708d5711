"""The texture bank of a learned face model: its people's photos unwrapped onto the texture
square, combined per person, filled where no photo saw the head, and what each person may serve.

Stage 3 of `face-model fit` (`unwrap_people`): every bank person's photos, unwrapped with the
fitted geometry (see unwrap), summed per texel with weights that favour the photo that saw the
texel most squarely; every fitted person's shape. Stage 4 (`fill_bank`): each person's texture
with the unseen texels filled, as uint8. Then `region_eligibility` (who may serve which facial
region: only people whose photos saw it well) and `tones` (each person's skin colour).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from synface.data.errors import DataError
from synface.fitting.regions import masks_at
from synface.fitting.unwrap import TexelGeometry, fill_texture, photo_geometry, photo_regions, photo_weight, unwrap_photo

Progress = Callable[[str, int, int], None]
#: the detail masks' soft edge (crop pixels of the mean face): sharp, so no two people's features overlap
DETAIL_EDGE_PX = 3.0
#: a texel counts as seen for the fill once a person's photo weights sum to this
KNOWN_WEIGHT = 0.05
#: share of a region's frontal texels a person's photos must see for them to serve that region
MIN_REGION_COVERAGE = 0.5
#: the face's part of an aligned crop of the mean face (x0, x1, y0, y1): what coverage is measured on
FACE_BOX = (16.0, 96.0, 24.0, 110.0)


def texel_regions(geo: TexelGeometry, soft_edge: float = DETAIL_EDGE_PX) -> tuple[list[str], torch.Tensor]:
    """Names and (R, T) region masks of the texture square's texels (columns sum to 1)."""
    return masks_at(geo.frontal_px, geo.frontal_facing, soft_edge)


def unwrap_people(model, chunks: list, marks: list, fits: list, bank_people: list[int], landmark_ids: np.ndarray,
                  geo: TexelGeometry, mouth: torch.Tensor, open_mouth: Callable[[np.ndarray], bool],
                  tick: Progress) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, list[np.ndarray]]]:
    """Per bank person: weighted colour sums (P, T, 3) float32, weight sums (P, T), the best
    trust any photo gave each texel (P, T) and the hair colour (P, 3) (NaN where no photo showed
    it); and every fitted person's shapes. Each photo counts only within the person's outline
    (and hair-coloured pixels beyond it: see unwrap.photo_regions). A photo with the lips apart
    gives the mouth region (`mouth`, (T,)) no trust: teeth would be painted on lips."""
    from synface.data.imageio import read_rgb  # noqa: PLC0415

    slot = {p: i for i, p in enumerate(bank_people)}
    T = len(geo.ids)
    colour_sum = np.zeros((len(bank_people), T, 3), np.float32)
    weight_sum = np.zeros((len(bank_people), T), np.float32)
    best_trust = np.zeros((len(bank_people), T), np.float32)
    hair_sum = np.zeros((len(bank_people), 3))
    hair_count = np.zeros(len(bank_people))
    shapes_by_person: dict[int, list[np.ndarray]] = {}
    faces = model.faces.cpu()
    total = sum(int(m["found"][[p in slot for p, _ in chunk]].sum()) for chunk, m in zip(chunks, marks))
    done = 0
    tick("reflectance", 0, total)
    for chunk, m, f in zip(chunks, marks, fits):
        points = m["points"][m["found"]]
        row = 0
        for (p, path), ok in zip(chunk, m["found"]):
            if not ok:
                continue
            shapes_by_person.setdefault(p, []).append(f.shape[row])
            if p in slot:
                image = np.asarray(read_rgb(path, what="photo"))
                pixels, normals, depth = photo_geometry(model, f, row, points[row], landmark_ids)
                person, hair = photo_regions(image, points[row])
                unwrapped = unwrap_photo(image, pixels, normals, depth, faces, geo, person)
                albedo, trust = unwrapped.albedo, unwrapped.trust
                if open_mouth(points[row]):
                    trust = trust * (1 - mouth)
                weight = photo_weight(trust)
                k = slot[p]
                colour_sum[k] += (albedo * weight.unsqueeze(1)).numpy()
                weight_sum[k] += weight.numpy()
                np.maximum(best_trust[k], trust.numpy(), out=best_trust[k])
                if np.isfinite(hair).all():
                    hair_sum[k] += hair
                    hair_count[k] += 1
                done += 1
                if done % 16 == 0 or done == total:
                    tick("reflectance", done, total)
            row += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        hair_colour = hair_sum / hair_count[:, None]
    return colour_sum, weight_sum, best_trust, hair_colour, shapes_by_person


def fill_bank(colour_sum: np.ndarray, weight_sum: np.ndarray, hair_colour: np.ndarray, scalp: np.ndarray, size: int,
              tick: Progress) -> np.ndarray:
    """(P, S, S, 3) uint8 textures: each person's weighted mean colour, unseen texels filled (on
    the `scalp` (T,), from their hair colour where known)."""
    P = len(colour_sum)
    mirror = np.arange(size)[::-1].copy()
    out = np.zeros((P, size, size, 3), np.uint8)
    tick("fill", 0, P)
    for k in range(P):
        known = weight_sum[k] >= KNOWN_WEIGHT
        if not known.any():
            raise ValueError("no texel of the head was seen in a person's photos")
        mean = colour_sum[k] / np.maximum(weight_sum[k], 1e-9)[:, None]
        hair = hair_colour[k]
        seed = np.broadcast_to(hair, (size, size, 3)) if np.isfinite(hair).all() else None
        filled = fill_texture(mean.reshape(size, size, 3), weight_sum[k].reshape(size, size), mirror, seed,
                              scalp.reshape(size, size) if seed is not None else None)
        out[k] = np.clip(np.rint(filled * 255.0), 0, 255).astype(np.uint8)
        if (k + 1) % 16 == 0 or k + 1 == P:
            tick("fill", k + 1, P)
    return out


def region_eligibility(best_trust: np.ndarray, regions: torch.Tensor, region_names: list[str], geo: TexelGeometry,
                       root) -> np.ndarray:
    """(R, P) bool: a person serves a region only where their photos saw it well (not, for the
    mouth, with the lips apart)."""
    px = geo.frontal_px.numpy()
    x0, x1, y0, y1 = FACE_BOX
    face = (px[:, 0] > x0) & (px[:, 0] < x1) & (px[:, 1] > y0) & (px[:, 1] < y1)
    seeable = regions.numpy().astype(np.float64) * ((geo.frontal_facing.numpy() > 0.3) & face)  # a frontal photo's face
    coverage = (best_trust.clip(0, 1).astype(np.float64) @ seeable.T) / seeable.sum(1)
    eligible = (coverage >= MIN_REGION_COVERAGE).T
    for r, region in enumerate(region_names):
        if eligible[r].sum() < 2:
            raise DataError(f"only {int(eligible[r].sum())} people show their {region} well enough; "
                            "add people with frontal, closed-mouth photos", path=root)
    return eligible


def tones(textures: np.ndarray, regions: torch.Tensor, geo: TexelGeometry) -> np.ndarray:
    """(P, 3) each person's skin colour: the mean over skin texels of the rest of the head."""
    where = (geo.skin & (regions[0] > 0.9)).numpy()
    flat = textures.reshape(len(textures), -1, 3)
    return flat[:, where].astype(np.float64).mean(1).astype(np.float32) / 255.0
