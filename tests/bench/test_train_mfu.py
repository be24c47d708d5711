"""`bench train`'s MFU: a ratio in (0, 1], or no ratio and the reason (issue 15 item 7)."""

from __future__ import annotations

import math

import pytest
import torch

from synface.bench.train import bench_train, compute_mfu, matmul_kernels


def test_compute_mfu_within_peak() -> None:
    mfu, err = compute_mfu(150e9, 300e9)
    assert err is None and mfu == pytest.approx(0.5)
    assert compute_mfu(300e9, 300e9) == (1.0, None)


def test_compute_mfu_above_peak_is_a_failed_peak_not_a_ratio() -> None:
    mfu, err = compute_mfu(320e9, 190e9)
    assert mfu is None
    assert err is not None and err.startswith("peak measurement failed")
    assert "320.0 GFLOP/s" in err and "190.0 GFLOP/s" in err


@pytest.mark.parametrize("peak", [0.0, -1.0, math.nan, math.inf])
def test_compute_mfu_rejects_a_broken_peak(peak: float) -> None:
    mfu, err = compute_mfu(1e9, peak)
    assert mfu is None and err is not None and "peak measurement failed" in err


def test_matmul_kernels_compute_the_product() -> None:
    a_b = {name: k() for name, k in matmul_kernels(64).items()}
    assert "torch.mm" in a_b
    ref = a_b["torch.mm"]
    for out in a_b.values():
        assert out.shape == (64, 64) and torch.allclose(out, ref, rtol=1e-4, atol=1e-3)


def test_bench_train_tiny_reports_mfu_at_most_one() -> None:
    r = bench_train(preset="cpu-quick", steps=2, batch=4, num_classes=10, warmup=1, matmul_n=256,
                    peak_seconds=0.02, peak_runs=3)
    assert r["threads"] == torch.get_num_threads()
    assert len(r["peak_runs_gflops"]) == 3 and all(v > 0 for v in r["peak_runs_gflops"])
    assert r["matmul_peak_flops"] == pytest.approx(max(r["peak_runs_gflops"]) * 1e9, abs=0.06e9)
    for key in ("images_per_s", "achieved_flops", "train_flops_per_image", "matmul_peak_flops", "mfu_best"):
        assert key in r
    if r["mfu"] is None:
        assert r["mfu_error"]
    else:
        assert 0 < r["mfu"] <= 1 and r["mfu_error"] is None
        assert r["mfu"] == pytest.approx(r["achieved_flops"] / r["matmul_peak_flops"])
