"""DDP on CPU: two gloo ranks train a few steps; both end with the same weights; only rank 0 writes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from tests.train.test_train import make_synthetic


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, data: str, run_dir: str, out_dir: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from synface.train.ddp import init_distributed, shutdown
    from synface.train.loop import train

    cfg = {"data": data, "backbone": "compact", "embedding_dim": 32, "epochs": 2, "batch_size": 8,
           "steps_per_epoch": 2, "lr": 0.05, "milestones": [10], "log_every": 1, "device": "cpu", "seed": 5}
    result = train(cfg, run_dir, return_model=True)
    # every rank's weights, to compare after the processes end
    out = Path(out_dir)
    torch.save({"status": result["status"], "rank": result["rank"], "steps": result["global_step"]}, out / f"result{rank}.pt")
    torch.save(result["model"].state_dict(), out / f"weights{rank}.pt")
    shutdown(init_distributed("cpu"))


def test_two_gloo_ranks_end_identical(tmp_path):
    data = make_synthetic(tmp_path / "syn", ids=4, per=6)
    run_dir = tmp_path / "run"
    mp.spawn(_rank_main, args=(2, _free_port(), str(data), str(run_dir), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"result{r}.pt") for r in (0, 1))
    assert r0["status"] == r1["status"] == "finished" and r0["steps"] == r1["steps"] == 4
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt") for r in (0, 1))
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.allclose(w0[key].float(), w1[key].float(), atol=1e-6), key
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    for key, value in ckpt["model"].items():
        assert torch.allclose(value.float(), w0[f"backbone.{key}"].float(), atol=1e-6), key
    records = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert sum('"type": "train"' in r for r in records) == 4  # one writer, not two
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]
