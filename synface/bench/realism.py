"""Realism of renders under a recognizer trained on real photos (dlib): detection, verification,
the phi trend, and the same verification protocol on real pairs as the reference."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from synface.bench.frechet import frechet_distance, frechet_parts
from synface.bench.image_realism import DEFAULT_CROPS, image_realism_report, load_real_crops
from synface.eval.verification import best_threshold
from synface.generator import FaceGenerator


# ---------------------------------------------------------------------------------------------
# Realism: dlib's detector and descriptor on renders
# ---------------------------------------------------------------------------------------------
def distance_verification(dist: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) of the project's best-threshold search on descriptor distances
    (negated: higher = same person)."""
    neg_threshold, accuracy = best_threshold(-dist, issame)
    return -neg_threshold, accuracy


def frechet_report(renders: np.ndarray, real: np.ndarray, seed: int = 0) -> dict[str, float | None]:
    """The distance of renders to real descriptors, its two terms, and the distance between two
    random halves of the real set: what sampling alone gives at about this size (None when a half
    would hold fewer than 2 descriptors, which have no covariance)."""
    mean_term, cov_term = frechet_parts(renders, real)
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    split = round(frechet_distance(real[order[:half]], real[order[half:]]), 4) if half >= 2 else None
    return {"frechet_to_real": round(mean_term + cov_term, 4), "frechet_mean_term": round(mean_term, 4),
            "frechet_cov_term": round(cov_term, 4), "frechet_real_split_half": split}


def identity_d_prime(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Separation of impostor from genuine distances in pooled standard deviations."""
    pooled = np.sqrt((genuine.var() + impostor.var()) / 2)
    return float((impostor.mean() - genuine.mean()) / pooled) if pooled > 0 else float("nan")


#: renders per batch in the benchmarks' progress-reporting loops (the renderer is batch-exact, so
#: the chunking does not change an image)
RENDER_CHUNK = 100


def render_images(gen: FaceGenerator, coeffs, stage: str, tick: Callable[[str, int, int], None],
                  offset: int = 0, total: int | None = None, draw: Callable | None = None) -> np.ndarray:
    """(N,112,112,3) uint8 renders of `coeffs` (by `draw`, default plain renders), in chunks,
    reporting (stage, done, total)."""
    total = len(coeffs) if total is None else total
    draw = draw or (lambda c: gen.render(c).images.cpu().numpy())
    out = []
    for start in range(0, len(coeffs), RENDER_CHUNK):
        out.append(draw(coeffs[start:start + RENDER_CHUNK]))
        tick(stage, offset + min(start + RENDER_CHUNK, len(coeffs)), total)
    return np.concatenate(out) if out else np.zeros((0, gen.image_size, gen.image_size, 3), np.uint8)


def real_pairs_reference(pairs_source: str, embed: Callable[[np.ndarray], np.ndarray],
                         tick: Callable[[str, int, int], None], keep: list | None = None) -> dict:
    """The same descriptor protocol on real aligned pairs (an LFW-layout folder or a .bin): what
    the synthetic genuine and impostor distances should be compared with. `keep` collects the
    descriptors of the first image of every pair (for the Fréchet distance)."""
    from synface.eval.run_eval import load_pairs  # noqa: PLC0415

    pairs = load_pairs(pairs_source)
    n = len(pairs.issame)
    dist = np.empty(n)
    tick("real pairs", 0, n)
    for i in range(n):
        e = embed(np.stack([np.asarray(pairs.load_image(i, side)) for side in (0, 1)]))
        dist[i] = np.linalg.norm(e[0] - e[1])
        if keep is not None:
            keep.append(e[0])
        if (i + 1) % 25 == 0 or i + 1 == n:
            tick("real pairs", i + 1, n)
    _, accuracy = distance_verification(dist, pairs.issame)
    genuine, impostor = dist[pairs.issame], dist[~pairs.issame]
    return {"real_identity_d_prime": round(identity_d_prime(genuine, impostor), 3),
            "real_pairs": f"{int(pairs.issame.sum())} genuine + {int((~pairs.issame).sum())} impostor from {pairs_source}",
            "real_verification_accuracy": round(accuracy, 4),
            "real_genuine_dist_mean": round(float(dist[pairs.issame].mean()), 4),
            "real_impostor_dist_mean": round(float(dist[~pairs.issame].mean()), 4)}


def bench_realism(n_detect: int = 500, n_pairs: int = 500, n_phi_pairs: int = 40, seed: int = 0, device: str = "auto",
                  progress: Callable[[str, int, int], None] | None = None, real_pairs: str | None = None,
                  identity_scale: float = 1.0, model: str | None = None, workspace: str | None = None,
                  variant: str = "mosaic", context: str = "plain", real_crops: str | None = None,
                  n_crops: int = DEFAULT_CROPS, camera_match: bool = True) -> dict:
    """Detection rate (|yaw| <= 30 deg), identity verification accuracy and the phi trend under dlib;
    with `real_pairs` (aligned real pairs), the same verification protocol on them as the reference;
    with `real_crops` (a folder of aligned crops), whether a classifier tells `n_crops` of them from
    as many renders by how they look (synface/bench/image_realism.py).
    `identity_scale` spreads every identity draw (1 = the default prior): how far more spread of the
    existing coefficients alone could separate identities, and what it costs the detector.
    `model` names a learned face model of the workspace (default: the built-in head)."""
    from synface.bench.spread import spread_statistics  # noqa: PLC0415
    from synface.data.realface import aligned_descriptor, detect_faces, detector_view  # noqa: PLC0415
    from synface.face.catalog import load_model  # noqa: PLC0415

    learned = load_model(model, workspace)
    if learned is not None:
        from synface.bench.leakage import with_identity_mode  # noqa: PLC0415

        learned = with_identity_mode(learned, variant)
    elif variant != "mosaic":
        raise ValueError("--variant applies to learned models only")
    gen = FaceGenerator(device=device, model=learned)
    from synface.data.contexts import image_renderer  # noqa: PLC0415

    if context == "plain" and not camera_match:
        raise ValueError("--no-camera-match applies to faces drawn into context photos (--context photo)")
    draw = image_renderer(gen, context, seed, camera_match)  # detection, verification, crops (phi trend: plain)
    tick = progress or (lambda stage, done, total: None)
    real_crop_set = None
    if real_crops is not None:  # read and checked before minutes of rendering and dlib
        real_crop_set = load_real_crops(real_crops, n_crops, seed, gen.image_size, tick=tick)
    # 1. detection on prior draws with |yaw| <= 30 degrees
    frontalish: list[np.ndarray] = []
    batch_index = 0
    tick("render detect", 0, n_detect)
    while len(frontalish) < n_detect:
        c = gen.sample(256, seed * 1000 + batch_index, identity_scale=identity_scale)
        keep = c.pose[:, 0].abs() <= math.radians(30)
        if bool(keep.any()):
            frontalish.extend(draw(c[keep.nonzero().flatten().tolist()]))
        tick("render detect", min(len(frontalish), n_detect), n_detect)
        batch_index += 1
    frontalish = frontalish[:n_detect]
    counts = []
    for i, img in enumerate(frontalish):
        counts.append(len(detect_faces(detector_view(img), upsample=0)))
        if (i + 1) % 25 == 0 or i + 1 == n_detect:
            tick("detect", i + 1, n_detect)
    counts_arr = np.array(counts)
    # 2. verification: two renders per identity with independent attributes vs two identities
    def embed(images: np.ndarray, stage: str | None = None, offset: int = 0, total: int = 0) -> np.ndarray:
        rows = []
        for i, im in enumerate(images):
            rows.append(aligned_descriptor(im))
            if stage and ((i + 1) % 25 == 0 or i == len(images) - 1):
                tick(stage, offset + i + 1, total)
        return np.stack(rows)

    ids = gen.sample(n_pairs * 2, seed + 101, identity_scale=identity_scale)
    attrs_b = gen.sample_attributes(n_pairs * 2, seed + 202)
    first = render_images(gen, ids, "render verify", tick, 0, 4 * n_pairs, draw)
    second = render_images(gen, ids.replace(**attrs_b), "render verify", tick, 2 * n_pairs, 4 * n_pairs, draw)
    e1 = embed(first, "verify", 0, 2 * len(first))
    e2 = embed(second, "verify", len(first), 2 * len(first))
    genuine = np.linalg.norm(e1[:n_pairs] - e2[:n_pairs], axis=1)
    impostor = np.linalg.norm(e1[n_pairs : 2 * n_pairs] - e2[np.roll(np.arange(n_pairs, 2 * n_pairs), 1)], axis=1)
    threshold, accuracy = distance_verification(np.concatenate([genuine, impostor]),
                                                 np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    # 3. identity mixup: distance to A as phi goes 1 -> 0 (attributes fixed to a neutral-ish draw).
    # Two references: A under the same attributes as the blends (the phi = 1 render), where the
    # distance grows to first order in 1 - phi; and A under its own attributes, where the identity
    # change adds to a fixed attribute change and so shows only to second order near phi = 1.
    phis = np.round(np.linspace(1.0, 0.0, 11), 2)
    a = gen.sample(n_phi_pairs, seed + 303, identity_scale=identity_scale)
    b = gen.sample(n_phi_pairs, seed + 404, identity_scale=identity_scale)
    attrs = gen.sample_attributes(n_phi_pairs, seed + 505, pose_scale=0.5, expr_scale=0.5)
    tick("phi", 0, len(phis) + 1)
    a_other = embed(gen.render(a).images.cpu().numpy())
    tick("phi", 1, len(phis) + 1)
    blends = []
    for phi in phis:
        mixed = FaceGenerator.mix(a, b, float(phi)).replace(**attrs)
        blends.append(embed(gen.render(mixed).images.cpu().numpy()))
        tick("phi", len(blends) + 1, len(phis) + 1)
    mean_dist = [float(np.linalg.norm(e - blends[0], axis=1).mean()) for e in blends]
    mean_dist_other = [float(np.linalg.norm(e - a_other, axis=1).mean()) for e in blends]
    real_descriptors: list[np.ndarray] = []
    reference = real_pairs_reference(real_pairs, embed, tick, real_descriptors) if real_pairs else {}
    if real_descriptors:
        reference.update(frechet_report(np.concatenate([e1, e2]), np.stack(real_descriptors), seed))
    if real_crop_set is not None:
        looks = gen.sample(len(real_crop_set), seed + 606)  # default prior: identity, pose, light, background
        renders = render_images(gen, looks, "render crops", tick, draw=draw)
        reference["image_realism"] = image_realism_report(renders, real_crop_set, seed, tick=tick)
    spread = spread_statistics(np.stack([e1[:n_pairs], e2[:n_pairs]], axis=1)) if n_pairs >= 3 else {"between_to_within": None}
    return {
        "bench": "realism",
        "model": model or "builtin",
        "variant": variant if learned is not None else None,
        "context": context,
        "camera_match": camera_match if context != "plain" else None,
        "generator": gen.version,
        "detector": "dlib frontal HOG (face_recognition_models weights)",
        "n_detect": n_detect,
        "detect_exactly_one": round(float((counts_arr == 1).mean()), 4),
        "detect_none": round(float((counts_arr == 0).mean()), 4),
        "detect_multiple": round(float((counts_arr > 1).mean()), 4),
        "verification_pairs": f"{n_pairs} genuine + {n_pairs} impostor",
        "verification_accuracy": round(accuracy, 4),
        "verification_threshold": round(threshold, 4),
        "genuine_dist_mean": round(float(genuine.mean()), 4),
        "impostor_dist_mean": round(float(impostor.mean()), 4),
        "identity_d_prime": round(identity_d_prime(genuine, impostor), 3),
        "between_to_within": spread["between_to_within"],
        "phi_grid": phis.tolist(),
        "phi_mean_dist_to_A": [round(d, 4) for d in mean_dist],
        "phi_monotonic": bool((np.diff(mean_dist) >= 0).all()),
        "phi_mean_dist_to_A_own_attributes": [round(d, 4) for d in mean_dist_other],
        "phi_monotonic_own_attributes": bool((np.diff(mean_dist_other) >= 0).all()),
        "phi_pairs": n_phi_pairs,
        "seed": seed,
        "identity_scale": identity_scale,
        **reference,
    }
