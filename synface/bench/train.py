"""Training throughput and MFU of a preset's backbone + margin head (the loop's own step).

MFU = achieved FLOP/s / peak FLOP/s, where
  peak      = the best (max) rate of square n x n matmuls (n = 2048 by default) at the training
              dtype and the training thread count, timed in several runs interleaved with the
              training steps (before, between and after them), so a shared CPU's load shows in
              the spread (`peak_runs_gflops`) rather than in a peak below what training reaches;
  achieved  = train FLOPs per image x images/s, with train FLOPs = 3 x forward FLOPs
              (forward + input grads + weight grads) of the backbone (`count_flops`, conv and
              linear layers, 2 FLOPs per multiply-add) plus 3 x the head's class-matrix product.

The peak takes the best of every matmul kernel torch offers on the device: `torch.mm` and, on
CPU, oneDNN's GEMM (the library that runs the training convolutions). `torch.mm` goes through
MKL, whose generic code path on non-Intel CPUs (AMD) leaves out AVX-512, so on those machines
it runs far below what the convolutions reach and an MKL-only peak would put MFU above 1.
An MFU above 1 is never reported: it means the peak measurement failed, and the record says so
(`mfu: null` with `mfu_error`).

The step is `synface.train.trainer.Trainee` with SGD, channels_last and the config's AMP choice,
on random pixels with random soft labels (no data loading: that is measured by the cpu-quick
wall time instead). On CUDA the step runs as the training loop runs it there (cuDNN autotuning,
TF32 outside autocast; AMP picks bf16 where the GPU has it), and the peak is the same matmul at the
autocast dtype, so MFU compares like with like. A missing GPU is a one-line ValueError from
`resolve_device`, raised before any model is built.
"""

from __future__ import annotations

import math
import platform
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch

from synface.base.device import resolve_device
from synface.models.backbones import build_backbone, count_flops, count_train_flops
from synface.train.config import load_config
from synface.train.heads import MarginHead

__all__ = ["bench_train", "compute_mfu", "matmul_kernels", "matmul_peak"]


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def compute_mfu(achieved_flops: float, peak_flops: float) -> tuple[float | None, str | None]:
    """(MFU, None) when 0 < achieved <= peak, else (None, why): a training rate above the peak
    proves the peak measurement wrong, so no ratio is reported for it."""
    if not (math.isfinite(peak_flops) and peak_flops > 0):
        return None, f"peak measurement failed: matmul peak {peak_flops!r} FLOP/s is not a positive number"
    if not (math.isfinite(achieved_flops) and achieved_flops > 0):
        return None, f"training rate {achieved_flops!r} FLOP/s is not a positive number"
    if achieved_flops > peak_flops:
        return None, (f"peak measurement failed: training ran at {achieved_flops / 1e9:.1f} GFLOP/s above the "
                      f"measured matmul peak {peak_flops / 1e9:.1f} GFLOP/s")
    return achieved_flops / peak_flops, None


def matmul_kernels(n: int, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> dict[str, Callable[[], Any]]:
    """The n x n matmuls the peak is the best of: torch.mm, plus oneDNN's GEMM on CPU when it works.

    oneDNN is checked against torch.mm once, so a kernel that returns garbage fast cannot set the peak.
    """
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    kernels: dict[str, Callable[[], Any]] = {"torch.mm": lambda: torch.mm(a, b)}
    if dev.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            linear = torch.ops.mkldnn._linear_pointwise
            bt = b.t().contiguous()  # linear computes a @ weight.T

            def onednn() -> torch.Tensor:
                return linear(a, bt, None, "none", [], "")

            ref = torch.mm(a, b).float()
            tol = 1e-3 if dtype == torch.float32 else 5e-2
            if torch.allclose(onednn().float(), ref, rtol=tol, atol=tol * math.sqrt(n)):
                kernels["onednn"] = onednn
        except (AttributeError, RuntimeError):
            pass
    return kernels


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(kernel: Callable[[], Any], flops: float, seconds: float, device: torch.device) -> float:
    """FLOP/s of back-to-back calls for at least `seconds`: long enough that timer and launch costs vanish."""
    chunk = 16 if device.type == "cuda" else 1  # calls between synchronisations
    _sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(chunk):
            kernel()
        calls += chunk
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return flops * calls / elapsed


def _peak_run(kernels: dict[str, Callable[[], Any]], n: int, seconds: float,
              device: torch.device) -> dict[str, float]:
    return {name: _rate(k, 2.0 * n ** 3, seconds, device) for name, k in kernels.items()}


def matmul_peak(n: int = 2048, repeats: int = 5, seconds: float = 0.2,
                dtype: torch.dtype = torch.float32, device: str = "cpu") -> dict[str, Any]:
    """Best and median FLOP/s of n x n matmuls at the current thread count, without a training run."""
    dev = torch.device(device)
    kernels = matmul_kernels(n, dtype, dev)
    for k in kernels.values():
        k()
    runs = [_peak_run(kernels, n, seconds, dev) for _ in range(repeats)]
    best_per_run = [max(r.values()) for r in runs]
    kernel = max(kernels, key=lambda name: max(r[name] for r in runs))
    return {"n": n, "threads": torch.get_num_threads(), "kernel": kernel,
            "median_flops": _median(best_per_run), "best_flops": max(best_per_run)}


def bench_train(
    preset: str = "cpu-quick", steps: int = 8, batch: int | None = None, num_classes: int = 1000,
    warmup: int = 2, matmul_n: int = 2048, threads: int | None = None, device: str = "cpu",
    peak_seconds: float = 0.2, peak_runs: int = 4,
) -> dict[str, Any]:
    """Images/s, FLOPs/image, achieved FLOP/s and MFU of one preset's training step; one JSON-able dict.

    `peak_runs` (>= 2) matmul peak runs of `peak_seconds` each: one before the timed steps, one
    after, the rest evenly between them.
    """
    from synface.train.optim import build_optimizer, resolve_amp
    from synface.train.trainer import Trainee

    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the training loop does: fixed shapes, fastest kernels
        torch.set_float32_matmul_precision("high")
    if threads:
        torch.set_num_threads(threads)
    peak_runs, steps = max(2, peak_runs), max(1, steps)
    cfg = load_config(preset=preset, overrides={"data": "unused"})
    batch = batch or cfg.batch_size
    if batch < 1:
        raise ValueError(f"bench train --batch must be >= 1, got {batch}")
    backbone = build_backbone(cfg.backbone, cfg.embedding_dim)
    size = cfg.input_size or backbone.input_size
    fwd = count_flops(backbone, size)
    exact = count_train_flops(backbone, size)
    head_flops = 2 * cfg.embedding_dim * num_classes
    flops_per_image = 3 * (fwd + head_flops)
    model = Trainee(backbone, MarginHead(cfg.embedding_dim, num_classes, cfg.head, cfg.head_s, cfg.head_m)).to(dev)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    # Module.to takes memory_format; torch's type overloads omit it
    model = model.to(memory_format=fmt).train()  # type: ignore[call-overload]
    opt = build_optimizer(model, cfg)
    amp = resolve_amp(cfg.amp, dev)
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=fmt)
    labels = torch.stack([torch.randint(0, num_classes, (batch,)), torch.randint(0, num_classes, (batch,))], 1).to(dev)
    phi = torch.rand(batch, 1)
    weights = torch.cat([phi, 1 - phi], 1).to(dev)
    peak_dtype = amp or torch.float32
    kernels = matmul_kernels(matmul_n, peak_dtype, dev)

    def step() -> float:
        _sync(dev)
        t = time.perf_counter()
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = model(x, labels, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(dev)
        return time.perf_counter() - t

    for _ in range(warmup):
        step()
    for k in kernels.values():
        k()
    train_threads = torch.get_num_threads()
    # Peak runs before the step index they fall on: 0 (before all steps), ..., `steps` (after them).
    runs_before = Counter(round(j * steps / (peak_runs - 1)) for j in range(peak_runs))
    runs: list[dict[str, float]] = []
    peak_threads: set[int] = set()
    step_times: list[float] = []
    for i in range(steps + 1):
        for _ in range(runs_before[i]):
            peak_threads.add(torch.get_num_threads())
            runs.append(_peak_run(kernels, matmul_n, peak_seconds, dev))
        if i < steps:
            step_times.append(step())
    best_per_run = [max(r.values()) for r in runs]
    peak = max(best_per_run)
    kernel = max(kernels, key=lambda name: max(r[name] for r in runs))
    step_s = _median(step_times)
    images_per_s = batch / step_s
    achieved = flops_per_image * images_per_s
    achieved_best = flops_per_image * batch / min(step_times)
    mfu, mfu_error = compute_mfu(achieved, peak)
    mfu_best, mfu_best_error = compute_mfu(achieved_best, peak)
    if peak_threads != {train_threads}:
        mfu, mfu_error = None, f"peak measured at {sorted(peak_threads)} threads, training at {train_threads}"
        mfu_best, mfu_best_error = None, mfu_error
    return {
        "preset": preset, "backbone": cfg.backbone, "input_size": size, "batch": batch, "num_classes": num_classes,
        "threads": train_threads, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "amp": str(amp).replace("torch.", "") if amp else "off",
        "channels_last": cfg.channels_last,
        "matmul_n": matmul_n, "matmul_dtype": str(peak_dtype).replace("torch.", ""), "matmul_kernel": kernel,
        "matmul_peak_flops": peak,
        "peak_runs_gflops": [round(v / 1e9, 1) for v in best_per_run],
        "peak_runs_by_kernel_gflops": {name: [round(r[name] / 1e9, 1) for r in runs] for name in kernels},
        "peak_seconds_per_run": peak_seconds,
        "forward_flops_per_image": fwd, "train_flops_per_image": flops_per_image,
        "train_flops_per_image_exact": exact + 3 * head_flops,
        "step_seconds_median": step_s, "step_seconds_best": min(step_times),
        "images_per_s": images_per_s, "images_per_s_best": batch / min(step_times),
        "achieved_flops": achieved, "achieved_gflops": round(achieved / 1e9, 1),
        "mfu": mfu, "mfu_error": mfu_error,
        "mfu_best": mfu_best, "mfu_best_error": mfu_best_error,
    }
