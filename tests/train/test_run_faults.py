"""Training runs under faults (issue 16 item 5): one trainer per run folder, kill -9 during the final
evaluation and mid-epoch, a torn metrics line, a resume with changed settings, a full disk while a
checkpoint is written. Kills are real (a training subprocess and SIGKILL)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from synface.runs.run import Run, RunLocked
from synface.train.loop import train
from tests.support import REPO, cli_error
from tests.train.test_train import make_synthetic, tiny

#: a training subprocess that pauses (holding its run folder) at a chosen point and says so in a flag file
PAUSING_TRAINER = """
import json, sys, time
from pathlib import Path
cfg, run_dir, where, flag = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])

def pause():
    flag.write_text("paused")
    time.sleep(120)

if where == "eval":
    import synface.eval.run_eval as run_eval
    run_eval.evaluate = lambda *a, **k: pause()
else:
    from synface.runs.run import Run
    append = Run.append_metric
    def append_then_pause(self, record):
        append(self, record)
        if record.get("type") == "train" and record.get("step") == int(where):
            pause()
    Run.append_metric = append_then_pause
from synface.train.loop import train
train(cfg, run_dir)
"""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("syn"), ids=4, per=4)


@pytest.fixture(scope="module")
def toy_bin(synthetic, tmp_path_factory) -> Path:
    """A tiny verification .bin of the synthetic images (same / other identity pairs)."""
    from synface.data.verification_bin import write_bin

    by_id: dict[str, list[Path]] = {}
    for p in sorted(synthetic.glob("*/*.jpg")):
        by_id.setdefault(p.parent.name, []).append(p)
    ids = sorted(by_id)
    images, issame = [], []
    for n in range(16):
        a = ids[n % len(ids)]
        same = n % 2 == 0
        b = a if same else ids[(n + 1) % len(ids)]
        images += [by_id[a][0].read_bytes(), by_id[b][1 + n % 3].read_bytes()]
        issame.append(same)
    path = tmp_path_factory.mktemp("bin") / "toy.bin"
    write_bin(path, images, issame)
    return path


def _pausing(cfg: dict, run_dir: Path, where: str, tmp_path: Path) -> subprocess.Popen:
    """Start PAUSING_TRAINER and wait until it has paused."""
    flag = tmp_path / f"paused-{where}"
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_TRAINER, json.dumps(cfg), str(run_dir), where, str(flag)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while not flag.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"the trainer never paused: {proc.communicate()[1].decode()[-2000:]}")
        time.sleep(0.05)
    return proc


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_a_second_trainer_is_refused_and_a_kill_in_the_final_evaluation_is_recovered(synthetic, toy_bin, tmp_path,
                                                                                    capsys):
    from synface.runs.queue import resume_run
    from synface.studies.plan import finished_runs

    root = tmp_path / "ws"
    run_dir = root / "runs" / "20250101-000000-kill"
    cfg = tiny(synthetic, epochs=1, batch_size=4, steps_per_epoch=2, eval_sets=[{"path": str(toy_bin), "name": "toy"}])
    proc = _pausing(cfg, run_dir, "eval", tmp_path)
    try:
        run = Run(run_dir)
        before = run.raw_status()
        assert before["status"] == "running" and before["pid"] == proc.pid
        # a second trainer on the same folder: refused, naming the first one's pid, and nothing changes
        with pytest.raises(RunLocked, match=f"in use by training process {proc.pid}"):
            train(cfg, run_dir, resume=True)
        cli_error(capsys, ["train", "--resume", run_dir, "--root", root, "--no-progress"],
                  f"training process {proc.pid}", str(run_dir), stdout_ok=True)
        with pytest.raises(RunLocked, match=str(proc.pid)):
            resume_run(run, root)
        after = run.raw_status()
        assert after["status"] == "running" and after["pid"] == proc.pid and after.get("message") == before.get("message")
        assert (run_dir / "checkpoints" / "last.pt").is_file()
    finally:
        _kill(proc)  # kill -9 during the final evaluation
    assert json.loads((run_dir / ".lock").read_text())["pid"] == proc.pid  # a stale lock of a dead pid
    assert run.status()["status"] == "failed" and not (run_dir / "eval.json").exists()
    Run(run_dir).tag_study("table2", {"ids": 4}, key="k-kill", seed=0, scale="tiny", label="kill")
    assert finished_runs(root) == {}

    out = train(cfg, run_dir, resume=True)  # takes the stale lock over and runs the evaluation
    assert out["status"] == "finished" and "toy" in out["eval"]
    held = json.loads((run_dir / "eval.json").read_text())
    assert held["toy"]["step"] == 2 and "roc" in held["toy"]
    assert [r["step"] for r in _lines(run_dir) if r["type"] == "eval"] == [2]
    assert run.raw_status()["status"] == "finished"
    assert finished_runs(root) == {"k-kill": run_dir}  # reproduce counts the run
    assert run.locked_by() is None


def test_a_kill_mid_epoch_leaves_every_step_once_in_metrics(synthetic, tmp_path):
    run_dir = tmp_path / "mid"
    cfg = tiny(synthetic, epochs=2, batch_size=4, steps_per_epoch=3, log_every=1)
    proc = _pausing(cfg, run_dir, "5", tmp_path)  # epoch 2, after its second step; last.pt is at step 3
    _kill(proc)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"type": "train", "step": 6, "lo')  # and a line torn by the kill
    assert [r["step"] for r in Run(run_dir).read_metrics("train")] == [1, 2, 3, 4, 5]
    out = train(cfg, run_dir, resume=True)
    assert out["status"] == "finished" and out["global_step"] == 6
    steps = [r["step"] for r in Run(run_dir).read_metrics("train")]
    assert steps == [1, 2, 3, 4, 5, 6]  # none twice, none missing
    assert all(line.strip().startswith("{") and line.strip().endswith("}")
               for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip())


def test_a_torn_last_line_never_swallows_the_next_record(tmp_path):
    run = Run(tmp_path)
    run.append_metric({"type": "train", "step": 1, "loss": 5.0})
    with open(run.metrics_path, "a") as f:
        f.write('{"type": "train", "step": 2, "lo')  # a writer killed mid-line
    run.append_metric({"type": "train", "step": 3, "loss": 4.0})
    run.append_metric({"type": "eval", "step": 3, "set": "x"})
    assert [r.get("step") for r in run.read_metrics()] == [1, 3, 3]
    assert run.prune_metrics(1) == 3  # the torn line and both records after step 1
    assert [r.get("step") for r in run.read_metrics()] == [1]
    assert run.metrics_path.read_text().endswith("}\n")


def test_resume_refuses_a_changed_config_and_records_a_runtime_change(synthetic, tmp_path, capsys):
    run_dir = tmp_path / "cfg"
    cfg = tiny(synthetic, epochs=1, batch_size=4, steps_per_epoch=2)
    assert train(cfg, run_dir)["status"] == "finished"
    files = ("config.json", "status.json", "metrics.jsonl")
    before = {name: (run_dir / name).read_bytes() for name in files}
    cli_error(capsys, ["train", "--resume", run_dir, "--set", "lr=0.5", "--no-progress"],
              "'lr' is 0.05 in config.json, not 0.5", "Start a new run", stdout_ok=True)
    cli_error(capsys, ["train", "--resume", run_dir, "--set", "seed=9", "--set", "augment=none", "--no-progress"],
              "'augment'", "'seed'", stdout_ok=True)
    assert {name: (run_dir / name).read_bytes() for name in files} == before  # nothing written
    # a runtime key may change: config.json says so, as version 2, and metrics/status show the change
    from synface.cli.main import main

    assert main(["train", "--resume", str(run_dir), "--set", "log_every=5", "--no-progress"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["log_every"] == 5
    change = [r for r in _lines(run_dir) if r["type"] == "config"]
    assert len(change) == 1 and change[0]["version"] == 2 and change[0]["changes"] == {"log_every": [1, 5]}
    status = json.loads((run_dir / "status.json").read_text())
    assert status["config_version"] == 2 and "log_every: 1 -> 5" in status["config_changes"]


def test_a_full_disk_during_a_checkpoint_fails_the_run_with_the_real_error(synthetic, tmp_path, monkeypatch, capsys):
    """torch.save writes part of the checkpoint, then the disk is full (a patched writer)."""
    saves = {"n": 0}
    save = torch.save

    def full_disk(obj, f, *a, **k):
        saves["n"] += 1
        if saves["n"] < 2:
            return save(obj, f, *a, **k)
        f.write(b"\0" * 4096)  # part of a checkpoint in the temp file (save_checkpoint passes a handle)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    run_dir = tmp_path / "full"
    args = ["train", "--preset", "cpu-quick", "--set", f"data={synthetic}", "--set", "epochs=2", "--set", "batch_size=4",
            "--set", "steps_per_epoch=2", "--set", "embedding_dim=32", "--run-dir", run_dir, "--root", tmp_path / "ws",
            "--no-progress"]
    cli_error(capsys, args, str(run_dir / "checkpoints" / "last.pt"), "No space left on device", stdout_ok=True)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "No space left on device" in status["message"]
    assert "last.pt" in status["message"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]  # no .tmp left
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    kept = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert kept["epoch"] == 1 and kept["global_step"] == 2  # the last good checkpoint
    assert Run(run_dir).status()["status"] == "failed" and Run(run_dir).locked_by() is None
