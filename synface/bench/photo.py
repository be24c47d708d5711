"""`python -m synface bench photo`: the verification bar's ceiling, with real people's appearance.

Why: `bench realism` asks dlib to verify built-in identities under our pose, light and expression
prior. When that falls short, is it the procedural reflectance or the rest of the pipeline (the
mesh, per-vertex colour, the attribute prior, 5-point alignment)? Here each identity wears one real
aligned photograph's colours (`PhotoAlbedoModel`) and goes through the same renders, with the same
shapes and the same attribute draws as built-in identities rendered beside it. The gap between
the two is what better reflectance could buy; the gap between the photo identities and the real
photographs themselves (`bench realism --real-pairs`) is what the rest of the pipeline costs.
Built-in colours also go through the photo model, as the fair baseline: photo identities never
blink or open a painted mouth. `--region` keeps a photo's colours to one part of the crop, to
find where the identity it carries lies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from synface.bench.crop_regions import check_region
from synface.bench.realism import distance_verification
from synface.bench.spread import load_aligned_crop, real_identity_images


def _pair_statistics(first: np.ndarray, second: np.ndarray) -> dict:
    """Genuine pairs: identity k's two renders; impostor pairs: k's first against k+1's second."""
    genuine = np.linalg.norm(first - second, axis=1)
    impostor = np.linalg.norm(first - np.roll(second, -1, axis=0), axis=1)
    threshold, accuracy = distance_verification(np.concatenate([genuine, impostor]),
                                                 np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    return {"verification_accuracy": round(accuracy, 4), "verification_threshold": round(threshold, 4),
            "genuine_dist_mean": round(float(genuine.mean()), 4), "impostor_dist_mean": round(float(impostor.mean()), 4)}


def bench_photo(photos: str | Path, identities: int = 500, seed: int = 0, mean_shape: bool = False,
                region: str | None = None, device: str = "auto",
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Verification accuracy of `identities` photo identities (the first aligned image of each of
    the first people in the identity-per-folder set `photos`) and of as many built-in identities,
    all with the prior's shapes (the mean shape with `mean_shape`) and the same attribute draws.

    Three sets are rendered: photo identities; built-in identities; and built-in identities'
    colours through the photo model, the fair baseline (photo identities never blink or open a
    painted mouth). With `region` (one of bench spread's REGIONS) photo identity k wears the
    photo's colours only inside that crop region and built-in identity k's colours elsewhere.
    """
    from synface.bench.photo_albedo import (  # noqa: PLC0415
        PhotoAlbedoModel,
        as_uint8_batch,
        one_hot_identities,
        seen_vertices_in_region,
        vertex_colours_from_photos,
    )
    from synface.generator import FaceGenerator  # noqa: PLC0415
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415

    if region is not None:
        check_region(region)
    people = real_identity_images(photos, identities, 1, need="the impostor pairs need 3 people or more")
    n = len(people)
    gen = FaceGenerator(device=device)
    size = gen.image_size
    crops = []
    for files in people:
        crop = load_aligned_crop(files[0])
        if crop.shape[0] != size:
            crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))
        crops.append(crop)
    ids = gen.sample(n, seed + 101)
    if mean_shape:
        ids = ids.replace(shape=torch.zeros_like(ids.shape))
    names = [files[0].parent.name for files in people]
    builtin_colours = (gen.model.albedo(ids.albedo, torch.zeros_like(ids.expr))
                       * gen.model.exposure(ids.albedo).view(-1, 1, 1)).clamp(0, 1)
    colours = vertex_colours_from_photos(gen, as_uint8_batch(crops))
    if region is not None:
        inside = seen_vertices_in_region(gen, region).view(1, -1, 1).to(colours.dtype)
        colours = colours * inside + builtin_colours * (1 - inside)
    attrs_b = gen.sample_attributes(n, seed + 202)
    tick = progress or (lambda done, total: None)
    done, total = 0, 6 * n
    result = {"bench": "photo", "recogniser": "dlib 128-D descriptor (face_recognition_models weights)",
              "source": str(photos), "identities": n, "seed": seed,
              "shapes": "mean shape" if mean_shape else "drawn from the prior",
              "photo_colours": f"only in region {region!r}, built-in elsewhere" if region else "everywhere",
              "pairs": f"{n} genuine + {n} impostor (each identity's first render against the next one's second)",
              "generator": gen.version}
    one_hot = one_hot_identities(n, n)
    for name, model, albedo in (
            ("photo_identities", PhotoAlbedoModel(gen.model, colours, names=names), one_hot),
            ("builtin_identities", None, ids.albedo),
            ("builtin_colours_photo_path", PhotoAlbedoModel(gen.model, builtin_colours), one_hot)):
        g = gen if model is None else FaceGenerator(device=device, model=model)
        first_coeffs = ids.replace(albedo=albedo.to(ids.albedo.device))
        embedded = []
        for coeffs in (first_coeffs, first_coeffs.replace(**attrs_b)):
            rows = []
            for image in g.render(coeffs).images.cpu().numpy():
                rows.append(aligned_descriptor(image))
                done += 1
                if done % 20 == 0 or done == total:
                    tick(done, total)
            embedded.append(np.stack(rows))
        result[name] = _pair_statistics(*embedded)
    return result
