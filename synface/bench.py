"""Benchmarks quoted in the README: `python -m synface bench <what> --json`.

Each returns one flat dict (printed as one JSON line). Timings are medians over repeats, measured
in one process, because shared machines are noisy.
"""

from __future__ import annotations

import math
import platform
import resource
import statistics
import time
from typing import Callable

import numpy as np
import torch

from synface.eval.verification import best_threshold
from synface.generator import FaceGenerator
from synface.base.device import resolve_device


def _median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_render(device: str = "auto", batch: int = 256, repeats: int = 5, single_repeats: int = 30, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Batched throughput (images/s), single-image latency (median ms) and peak memory."""
    dev = resolve_device(device)
    gen = FaceGenerator(device=dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    say = progress or (lambda msg: None)
    say("warming up")
    gen.render(gen.sample(min(batch, 8), seed))
    rss_before = _peak_rss_mb()
    coeffs = gen.sample(batch, seed + 1)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    gen.render(coeffs)
    sync()
    peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else _peak_rss_mb()
    say(f"timing {repeats} batches of {batch}")
    batch_s = _median_time(lambda: gen.render(coeffs), repeats, sync)
    single = gen.sample(single_repeats, seed + 2)
    say(f"timing {single_repeats} single renders")
    singles = []
    for i in range(single_repeats):
        one = single[i]
        t0 = time.perf_counter()
        gen.render(one)
        sync()
        singles.append(time.perf_counter() - t0)
    return {
        "bench": "render",
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "batch": batch,
        "images_per_s": round(batch / batch_s, 1),
        "batch_ms_median": round(batch_s * 1000, 1),
        "single_ms_median": round(statistics.median(singles) * 1000, 2),
        "peak_memory_mb": round(peak_mb, 1),
        "peak_memory_kind": "cuda max_memory_allocated" if dev.type == "cuda" else "process peak RSS (includes Python and torch)",
        "rss_before_batch_mb": round(rss_before, 1),
        "vertices": gen.model.num_vertices,
        "triangles": int(gen.model.faces.shape[0]),
        "supersample": gen.supersample,
        "repeats": repeats,
    }


# ---------------------------------------------------------------------------------------------
# Realism: dlib's detector and descriptor on renders
# ---------------------------------------------------------------------------------------------
def _distance_verification(dist: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) of the project's best-threshold search on descriptor distances
    (negated: higher = same person)."""
    neg_threshold, accuracy = best_threshold(-dist, issame)
    return -neg_threshold, accuracy


def real_pairs_reference(pairs_source: str, embed: Callable[[np.ndarray], np.ndarray],
                         tick: Callable[[str, int, int], None]) -> dict:
    """The same descriptor protocol on real aligned pairs (an LFW-layout folder or a .bin): what
    the synthetic genuine and impostor distances should be compared with."""
    from synface.eval.run_eval import load_pairs  # noqa: PLC0415

    pairs = load_pairs(pairs_source)
    n = len(pairs.issame)
    dist = np.empty(n)
    for i in range(n):
        e = embed(np.stack([np.asarray(pairs.load_image(i, side)) for side in (0, 1)]))
        dist[i] = np.linalg.norm(e[0] - e[1])
        if i % 100 == 0:
            tick("real pairs", i, n)
    _, accuracy = _distance_verification(dist, pairs.issame)
    return {"real_pairs": f"{int(pairs.issame.sum())} genuine + {int((~pairs.issame).sum())} impostor from {pairs_source}",
            "real_verification_accuracy": round(accuracy, 4),
            "real_genuine_dist_mean": round(float(dist[pairs.issame].mean()), 4),
            "real_impostor_dist_mean": round(float(dist[~pairs.issame].mean()), 4)}


def bench_realism(n_detect: int = 500, n_pairs: int = 500, n_phi_pairs: int = 40, seed: int = 0, device: str = "auto",
                  progress: Callable[[str, int, int], None] | None = None, real_pairs: str | None = None,
                  identity_scale: float = 1.0) -> dict:
    """Detection rate (|yaw| <= 30 deg), identity verification accuracy and the phi trend under dlib;
    with `real_pairs` (aligned real pairs), the same verification protocol on them as the reference.
    `identity_scale` spreads every identity draw (1 = the default prior): how far more spread of the
    existing coefficients alone could separate identities, and what it costs the detector."""
    from synface.realface import aligned_descriptor, detect_faces, detector_view  # noqa: PLC0415

    gen = FaceGenerator(device=device)
    tick = progress or (lambda stage, done, total: None)
    # 1. detection on prior draws with |yaw| <= 30 degrees
    frontalish: list[np.ndarray] = []
    draw = 0
    while len(frontalish) < n_detect:
        c = gen.sample(256, seed * 1000 + draw, identity_scale=identity_scale)
        keep = c.pose[:, 0].abs() <= math.radians(30)
        if bool(keep.any()):
            frontalish.extend(gen.render(c[keep.nonzero().flatten().tolist()]).images.cpu().numpy())
        draw += 1
    frontalish = frontalish[:n_detect]
    counts = []
    for i, img in enumerate(frontalish):
        counts.append(len(detect_faces(detector_view(img), upsample=0)))
        if i % 50 == 0:
            tick("detect", i, n_detect)
    counts_arr = np.array(counts)
    # 2. verification: two renders per identity with independent attributes vs two identities
    def embed(images: np.ndarray) -> np.ndarray:
        return np.stack([aligned_descriptor(im) for im in images])

    ids = gen.sample(n_pairs * 2, seed + 101, identity_scale=identity_scale)
    attrs_b = gen.sample_attributes(n_pairs * 2, seed + 202)
    first = gen.render(ids).images.cpu().numpy()
    tick("verify", 1, 3)
    second = gen.render(ids.replace(**attrs_b)).images.cpu().numpy()
    tick("verify", 2, 3)
    e1, e2 = embed(first), embed(second)
    tick("verify", 3, 3)
    genuine = np.linalg.norm(e1[:n_pairs] - e2[:n_pairs], axis=1)
    impostor = np.linalg.norm(e1[n_pairs : 2 * n_pairs] - e2[np.roll(np.arange(n_pairs, 2 * n_pairs), 1)], axis=1)
    threshold, accuracy = _distance_verification(np.concatenate([genuine, impostor]),
                                                 np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    # 3. identity mixup: distance to A as phi goes 1 -> 0 (attributes fixed to a neutral-ish draw).
    # Two references: A under the same attributes as the blends (the phi = 1 render), where the
    # distance grows to first order in 1 - phi; and A under its own attributes, where the identity
    # change adds to a fixed attribute change and so shows only to second order near phi = 1.
    phis = np.round(np.linspace(1.0, 0.0, 11), 2)
    a = gen.sample(n_phi_pairs, seed + 303, identity_scale=identity_scale)
    b = gen.sample(n_phi_pairs, seed + 404, identity_scale=identity_scale)
    attrs = gen.sample_attributes(n_phi_pairs, seed + 505, pose_scale=0.5, expr_scale=0.5)
    a_other = embed(gen.render(a).images.cpu().numpy())
    blends = []
    for phi in phis:
        mixed = FaceGenerator.mix(a, b, float(phi)).replace(**attrs)
        blends.append(embed(gen.render(mixed).images.cpu().numpy()))
        tick("phi", len(blends), len(phis))
    mean_dist = [float(np.linalg.norm(e - blends[0], axis=1).mean()) for e in blends]
    mean_dist_other = [float(np.linalg.norm(e - a_other, axis=1).mean()) for e in blends]
    reference = real_pairs_reference(real_pairs, embed, tick) if real_pairs else {}
    return {
        "bench": "realism",
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
