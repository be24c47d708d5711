"""`python -m synface bench generate`: end-to-end build speed of a synthetic set (render + JPEG + disk)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

from synface.data.synthetic import SynthConfig, build_dataset
from synface.generator import FaceGenerator


def bench_workers(images: int = 4_000, samples: int = 50, workers: int = 2, repeats: int = 3, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """The same set built by one process and by `workers` (`generate --workers`), alternated
    `repeats` times so both see the same machine; the speed-up is the ratio of the medians."""
    import os  # noqa: PLC0415
    import statistics  # noqa: PLC0415
    import time  # noqa: PLC0415

    from synface.data.shards import build_with_workers  # noqa: PLC0415

    config = SynthConfig(ids=max(workers, images // samples), samples=samples, seed=seed)
    seconds: dict[str, list[float]] = {"1": [], str(workers): []}
    done = 0
    for _ in range(repeats):
        for w in (1, workers):
            folder = Path(tempfile.mkdtemp(prefix="synface_bench_"))
            try:
                t0 = time.perf_counter()
                if w == 1:
                    build_dataset(config, folder / config.name, FaceGenerator(device="cpu"))
                else:
                    build_with_workers(config, folder / config.name, w, device="cpu")
                seconds[str(w)].append(time.perf_counter() - t0)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            done += 1
            if progress:
                progress(done, 2 * repeats)
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    return {"bench": "generate-workers", "images": config.num_images, "workers": workers, "repeats": repeats,
            "cpus": os.cpu_count(), "seconds": seconds, "median_s": medians,
            "images_per_s": {k: round(config.num_images / v, 1) for k, v in medians.items()},
            "speedup": round(medians["1"] / medians[str(workers)], 3),
            "load_average_at_end": round(os.getloadavg()[0], 2)}


def bench_generate(images: int = 10_000, samples: int = 50, device: str = "auto", seed: int = 0,
                   progress: Callable[[int, int], None] | None = None, keep: str | None = None) -> dict:
    """Build a fresh `images`-image set (ids = images / samples) into a temp folder and time it.

    Also extrapolates the time and disk size of a full Syn_10K_50 (500,000 images).
    """
    ids = max(1, images // samples)
    config = SynthConfig(ids=ids, samples=samples, seed=seed)
    gen = FaceGenerator(device=device)
    gen.warmup()
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="synface_bench_"))
    try:
        report = build_dataset(config, folder / config.name, gen, progress=progress)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    per_image_bytes = report.disk_bytes / max(1, report.num_images)
    full = 500_000
    return {
        "bench": "generate",
        "device": str(gen.device),
        "threads": torch.get_num_threads(),
        "images": report.num_images,
        "identities": ids,
        "seconds": report.seconds,
        "images_per_s": report.images_per_s,
        "bytes_per_image": round(per_image_bytes),
        "syn_10k_50_hours": round(full / max(report.images_per_s, 1e-9) / 3600, 2),
        "syn_10k_50_disk_gb": round(full * per_image_bytes / 1e9, 2),
        "format": "jpg q95",
    }
