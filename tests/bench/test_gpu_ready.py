"""The GPU checks are ready to run (issue 18 item 6): `bench train --device`, one-line errors without
CUDA, and every command of ../shared/gpu_check.sh parses with this command line."""

from __future__ import annotations

import re
import shlex

import pytest
import torch

from synface.bench.train import bench_train
from tests.support import REPO, cli_error

GPU_CHECK = REPO.parent / "shared" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("argv", [["bench", "train", "--preset", "paper", "--device", "cuda", "--json"],
                                  ["bench", "render", "--device", "cuda", "--json"],
                                  ["bench", "train", "--device", "cuda:1"]])
def test_cuda_without_a_gpu_is_one_line(capsys, argv):
    cli_error(capsys, argv, "no CUDA GPU")


def test_bench_train_names_its_device():
    r = bench_train(preset="cpu-quick", steps=1, batch=2, num_classes=4, warmup=0, matmul_n=64, device="cpu",
                    peak_seconds=0.01, peak_runs=2)
    assert r["device"] == "cpu" and r["device_name"] and r["amp"] == "off"
    with pytest.raises(ValueError, match="--batch must be >= 1"):
        bench_train(batch=-1, device="cpu")


def _gpu_check_commands() -> list[list[str]]:
    if not GPU_CHECK.is_file():
        return []
    out = []
    for line in GPU_CHECK.read_text().splitlines():
        m = re.search(r"python3 -m synface (.+)$", line)
        if m:
            out.append(shlex.split(m.group(1).replace('"$out', '"/tmp/out')))
    return out


@pytest.mark.skipif(not GPU_CHECK.is_file(), reason=f"{GPU_CHECK} not found")
def test_every_gpu_check_command_parses():
    from synface.cli.main import build_parser

    commands = _gpu_check_commands()
    assert {tuple(c[:2]) for c in commands} >= {("bench", "render"), ("bench", "train")}
    for argv in commands:
        args = build_parser().parse_args(argv)  # an unknown option exits 2 here
        assert callable(args.func), argv
