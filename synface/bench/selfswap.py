"""`bench selfswap`: a person's own fitted face drawn into their own photo must still be them.

The sanity check of context compositing. Per person with two or more photos: one photo is fitted
(dlib's 68 points, the built-in head, the photo unwrapped onto the texture map, as the fit of a
learned model does), the fitted face is rendered at the photo's pose and light and drawn into the
same photo exactly as context composites are (face region over the photo, then the photo's colour,
blur, grain and JPEG level), and dlib compares four images with the person's other photos: the
original photo, the self-composite, the self-composite before camera matching, and the fitted face
rendered plain (on the procedural background). If compositing kept the person's identity, the self-composite verifies against the
other photos about as often as the original does; what it loses is what the render and the seam
cost. Impostor pairs (another person's photos) show the same threshold is not just lenient.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Callable

import numpy as np
import torch

from synface.data.realface import DLIB_THRESHOLD

VARIANTS = ("original", "self_composite", "self_composite_unmatched", "self_plain")


def self_images(builtin, fit, image: np.ndarray, quality: int | None, seed: int) -> dict[str, np.ndarray]:
    """The photo in the fit's crop, the fitted face drawn into it (camera-matched, and as drawn),
    and the fitted face rendered plain."""
    from synface.bench.reconstruct import fit_crop_matrix  # noqa: PLC0415
    from synface.data.align import warp_with_matrix  # noqa: PLC0415
    from synface.data.context_match import hull_mask, match_to_photo  # noqa: PLC0415
    from synface.face.coeffs import FaceCoeffs  # noqa: PLC0415
    from synface.fitting.reconstruct import PhotoTextureModel  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    crop = warp_with_matrix(image, fit_crop_matrix(builtin.pipeline, fit))
    gen = FaceGenerator(device="cpu", model=PhotoTextureModel(builtin.model, fit.texture))
    background = torch.tensor([[0.45, 0.45, 0.5, 0.35, 0.35, 0.4] + [0.0] * 6])
    coeffs = FaceCoeffs(shape=fit.shape, albedo=torch.zeros(1, gen.model.layout.albedo), expr=fit.expr,
                        light=fit.light, pose=fit.pose, jitter=torch.zeros(1, 3), background=background)
    backdrop = torch.from_numpy(crop.astype(np.float32) / 255.0)[None]
    region = builtin.model.face_region
    drawn = gen.pipeline.render(coeffs, backdrop, region).images[0].numpy()
    points = gen.pipeline.vertex_pixels(coeffs, torch.nonzero(region > 0.5).flatten())[0].numpy()
    mask = hull_mask(points, gen.pipeline.image_size)
    composite, _ = match_to_photo(drawn, crop.astype(np.float32) / 255.0, mask, quality, np.random.default_rng(seed))
    return {"original": crop, "self_composite": composite, "self_composite_unmatched": drawn,
            "self_plain": gen.render(coeffs).images[0].numpy()}


def _paired_interval(diffs: list[float]) -> list[float]:
    """Student-t 95 % interval of a mean difference over people."""
    from scipy import stats  # noqa: PLC0415

    if len(diffs) < 2:
        return [math.nan, math.nan]
    mean, sem = statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
    half = float(stats.t.ppf(0.975, len(diffs) - 1)) * sem
    return [round(mean - half, 4), round(mean + half, 4)]


def bench_selfswap(photos: str, folds: list[int] | None = None, people: int = 60, others: int = 3, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None, keep_images: bool = False) -> dict[str, Any]:
    """Verification of each person's original photo, self-composite and plain self-render against
    up to `others` of their other photos (dlib, threshold DLIB_THRESHOLD), over `people` people
    with two or more photos; impostor pairs pair each image with the next person's photos."""
    from synface.bench.image_realism import wilson_interval  # noqa: PLC0415
    from synface.data.align import align_image  # noqa: PLC0415
    from synface.data.context_match import jpeg_quality  # noqa: PLC0415
    from synface.data.imageio import read_rgb  # noqa: PLC0415
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415
    from synface.fitting.landmarks import calibrate_landmark_vertices, photo_landmarks  # noqa: PLC0415
    from synface.fitting.photos import find_photos  # noqa: PLC0415
    from synface.fitting.reconstruct import fit_photo  # noqa: PLC0415
    from synface.fitting.unwrap import texel_geometry  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    if people < 2:
        raise ValueError(f"--people must be at least 2 (impostor pairs need another person), got {people}")
    if others < 1:
        raise ValueError(f"--others must be at least 1, got {others}")
    if seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {seed}")
    photoset = find_photos(photos, folds=folds)
    rng = np.random.default_rng(seed)
    candidates = [p for p, paths in enumerate(photoset.photos) if len(paths) >= 2]
    if len(candidates) < 2:
        raise ValueError(f"{photos}: fewer than 2 people with two or more photos")
    order = rng.permutation(candidates)
    builtin = FaceGenerator(device="cpu")
    landmark_ids, _ = calibrate_landmark_vertices(builtin)
    geo = texel_geometry(builtin)
    tick = progress or (lambda done, total: None)
    tick(0, people)
    rows: list[dict[str, Any]] = []
    kept: list[dict[str, np.ndarray]] = []
    for person in order:
        if len(rows) >= people:
            break
        paths = list(photoset.photos[int(person)])
        first, rest = paths[0], paths[1: 1 + others]
        data = first.read_bytes()
        image = np.asarray(read_rgb(first, what="photo"))
        points = photo_landmarks(image)
        if points is None:
            continue
        fit = fit_photo(builtin, image, points + 0.5, landmark_ids, geo, warp=False)
        images = self_images(builtin, fit, image, jpeg_quality(data), seed * 100_003 + int(person))
        other = [aligned_descriptor(align_image(np.asarray(read_rgb(p, what="photo"))).image112) for p in rest]
        rows.append({"person": photoset.people[int(person)], "others": np.stack(other),
                     **{v: aligned_descriptor(images[v]) for v in VARIANTS}})
        if keep_images:
            kept.append(images)
        tick(len(rows), people)
    if len(rows) < 2:
        raise ValueError(f"{photos}: fewer than 2 people with a detectable face in their first photo")
    result: dict[str, Any] = {"bench": "selfswap", "people": len(rows), "others_per_person": others, "folds": folds,
                              "seed": seed, "threshold": DLIB_THRESHOLD}
    distances: dict[str, list[float]] = {}
    for variant in VARIANTS:
        genuine = [float(d) for r in rows for d in np.linalg.norm(r["others"] - r[variant], axis=1)]
        impostor = [float(d) for i, r in enumerate(rows)
                    for d in np.linalg.norm(rows[(i + 1) % len(rows)]["others"] - r[variant], axis=1)]
        accept = sum(d < DLIB_THRESHOLD for d in genuine)
        false = sum(d < DLIB_THRESHOLD for d in impostor)
        distances[variant] = [float(np.mean(np.linalg.norm(r["others"] - r[variant], axis=1))) for r in rows]
        result[variant] = {"verified": round(accept / len(genuine), 4), "verified_ci95": [round(x, 4) for x in wilson_interval(accept, len(genuine))],
                           "genuine_pairs": len(genuine), "false_accept": round(false / len(impostor), 4),
                           "genuine_distance_mean": round(statistics.fmean(genuine), 4)}
    for variant in VARIANTS[1:]:
        diffs = [a - b for a, b in zip(distances[variant], distances["original"])]
        result[variant]["distance_minus_original"] = round(statistics.fmean(diffs), 4)
        result[variant]["distance_minus_original_ci95"] = _paired_interval(diffs)
        result[variant]["verified_minus_original_points"] = round(
            100 * (result[variant]["verified"] - result["original"]["verified"]), 2)
    result["bar_within_2_points"] = result["self_composite"]["verified_minus_original_points"] >= -2.0
    result["protocol"] = ("per person: first photo fitted (built-in head, texture map), its fitted face drawn into "
                          "the same photo (face region, camera-matched) and rendered plain; dlib descriptors of the "
                          "aligned crops against up to N other photos of the person, aligned by the real pipeline")
    if keep_images:
        result["images"] = kept
    return result
