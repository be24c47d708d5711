"""Training throughput and MFU of a preset's backbone + margin head (the loop's own step).

MFU = achieved FLOP/s / peak FLOP/s, where
  peak      = median fp32 FLOP/s of a square torch.mm (n = 2048 by default) on this machine,
              timed between the training steps so both see the same load on a shared CPU;
  achieved  = train FLOPs per image x images/s, with train FLOPs = 3 x forward FLOPs
              (forward + input grads + weight grads) of the backbone (`count_flops`, conv and
              linear layers, 2 FLOPs per multiply-add) plus 3 x the head's class-matrix product.
The step is `synface.train.loop.Trainee` with SGD, channels_last and the config's AMP choice,
on random pixels with random soft labels (no data loading: that is measured by the cpu-quick
wall time instead).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from synface.train.backbones import build_backbone, count_flops, count_train_flops
from synface.train.config import load_config
from synface.train.heads import MarginHead

__all__ = ["bench_train", "matmul_peak"]


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def _time_mm(a: torch.Tensor, b: torch.Tensor) -> float:
    t = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - t


def matmul_peak(n: int = 2048, repeats: int = 7) -> dict[str, float]:
    """Median and best fp32 FLOP/s of an n x n torch.mm with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = [_time_mm(a, b) for _ in range(repeats)]
    flops = 2.0 * n ** 3
    return {"n": n, "threads": torch.get_num_threads(), "median_flops": flops / _median(times),
            "best_flops": flops / min(times)}


def bench_train(
    preset: str = "cpu-quick", steps: int = 8, batch: int | None = None, num_classes: int = 1000,
    warmup: int = 2, matmul_n: int = 2048, threads: int | None = None, device: str = "cpu",
) -> dict[str, Any]:
    """Images/s, FLOPs/image, achieved FLOP/s and MFU of one preset's training step; one JSON-able dict."""
    from synface.train.loop import Trainee, build_optimizer, resolve_amp

    if threads:
        torch.set_num_threads(threads)
    cfg = load_config(preset=preset, overrides={"data": "unused"})
    batch = batch or cfg.batch_size
    dev = torch.device(device)
    backbone = build_backbone(cfg.backbone, cfg.embedding_dim)
    size = cfg.input_size or backbone.input_size
    fwd = count_flops(backbone, size)
    exact = count_train_flops(backbone, size)
    head_flops = 2 * cfg.embedding_dim * num_classes
    flops_per_image = 3 * (fwd + head_flops)
    model = Trainee(backbone, MarginHead(cfg.embedding_dim, num_classes, cfg.head, cfg.head_s, cfg.head_m)).to(dev)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = build_optimizer(model, cfg)
    amp = resolve_amp(cfg.amp, dev)
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=fmt)
    labels = torch.stack([torch.randint(0, num_classes, (batch,)), torch.randint(0, num_classes, (batch,))], 1).to(dev)
    phi = torch.rand(batch, 1)
    weights = torch.cat([phi, 1 - phi], 1).to(dev)
    a, b = torch.randn(matmul_n, matmul_n), torch.randn(matmul_n, matmul_n)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def step() -> float:
        sync()
        t = time.perf_counter()
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = model(x, labels, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        return time.perf_counter() - t

    for _ in range(warmup):
        step()
    _time_mm(a, b)
    step_times, mm_times = [], []
    for _ in range(steps):
        step_times.append(step())
        mm_times.append(min(_time_mm(a, b) for _ in range(2)))
    step_s = _median(step_times)
    peak = 2.0 * matmul_n ** 3 / _median(mm_times)
    images_per_s = batch / step_s
    achieved = flops_per_image * images_per_s
    return {
        "preset": preset, "backbone": cfg.backbone, "input_size": size, "batch": batch, "num_classes": num_classes,
        "threads": torch.get_num_threads(), "device": str(dev), "amp": str(amp).replace("torch.", "") if amp else "off",
        "channels_last": cfg.channels_last,
        "matmul_n": matmul_n, "matmul_peak_flops": peak,
        "forward_flops_per_image": fwd, "train_flops_per_image": flops_per_image,
        "train_flops_per_image_exact": exact + 3 * head_flops,
        "step_seconds_median": step_s, "step_seconds_best": min(step_times),
        "images_per_s": images_per_s, "images_per_s_best": batch / min(step_times),
        "achieved_flops": achieved, "mfu": achieved / peak,
        "mfu_best": flops_per_image * batch / min(step_times) / (2.0 * matmul_n ** 3 / min(mm_times)),
    }
