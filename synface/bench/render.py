"""Render throughput: batched images/s and single-image latency, CPU or CUDA."""

from __future__ import annotations

import platform
import resource
import statistics
import time
from typing import Callable

import torch

from synface.base.device import resolve_device
from synface.generator import FaceGenerator


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
                 progress: Callable[[str], None] | None = None, model: str | None = None,
                 workspace: str | None = None, context: str = "plain", camera_match: bool = True) -> dict:
    """Batched throughput (images/s), single-image latency (median ms) and peak memory of the
    built-in head or the learned model `model`; with `context` "photo" or "background", of faces
    drawn into the model's context photos (photos read once, then kept), camera-matched unless
    `camera_match` is False."""
    from synface.data.contexts import image_renderer  # noqa: PLC0415
    from synface.face.catalog import load_model  # noqa: PLC0415

    dev = resolve_device(device)
    gen = FaceGenerator(device=dev, model=load_model(model, workspace))
    if context == "plain" and not camera_match:
        raise ValueError("--no-camera-match applies to faces drawn into context photos (--context photo)")
    draw = image_renderer(gen, context, seed, camera_match)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    say = progress or (lambda msg: None)
    say("warming up")
    draw(gen.sample(min(batch, 8), seed))
    rss_before = _peak_rss_mb()
    coeffs = gen.sample(batch, seed + 1)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    draw(coeffs)
    sync()
    peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else _peak_rss_mb()
    say(f"timing {repeats} batches of {batch}")
    batch_s = _median_time(lambda: draw(coeffs), repeats, sync)
    single = gen.sample(single_repeats, seed + 2)
    say(f"timing {single_repeats} single renders")
    singles = []
    for i in range(single_repeats):
        one = single[i]
        t0 = time.perf_counter()
        draw(one)
        sync()
        singles.append(time.perf_counter() - t0)
    return {
        "bench": "render",
        "model": model or "builtin",
        "context": context,
        "camera_match": camera_match if context != "plain" else None,
        "generator": gen.version,
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
