"""Run registry: tolerant metrics reading, listing, stop requests, the launch queue, the runs CLI."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

import pytest

from synface.base.workspace import workspace_root
from synface.runs.queue import launch, read_queue, request_stop, run_queue
from synface.runs.registry import create_run, find_run, list_runs
from synface.runs.run import Run

CFG = {"data": "/nowhere", "epochs": 2, "name": "toy"}


def test_workspace_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNFACE_HOME", str(tmp_path / "home"))
    assert workspace_root() == tmp_path / "home"
    assert workspace_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("SYNFACE_HOME")
    from pathlib import Path

    import synface

    assert workspace_root() == Path(synface.__file__).resolve().parents[1] / "workspace"


def test_metrics_with_truncated_last_line(tmp_path):
    run = create_run(CFG, root=tmp_path)
    run.append_metric({"type": "train", "step": 1, "loss": 5.0, "images_per_s": 100.0})
    run.append_metric({"type": "eval", "set": "lfw", "mean_accuracy": 0.9, "std_accuracy": 0.01})
    with open(run.metrics_path, "a") as f:
        f.write('{"type": "train", "step": 2, "lo')  # killed mid-write
    recs = run.read_metrics()
    assert [r["type"] for r in recs] == ["train", "eval"]
    assert run.read_metrics("eval")[0]["mean_accuracy"] == 0.9
    # a later writer appends after the torn line; both good lines still read
    with open(run.metrics_path, "a") as f:
        f.write("\n")
    run.append_metric({"type": "train", "step": 3, "loss": 4.0, "images_per_s": 120.0})
    assert [r.get("step") for r in run.read_metrics("train")] == [1, 3]


def test_create_list_find_and_summaries(tmp_path):
    a = create_run(CFG, name="first", root=tmp_path)
    time.sleep(0.01)
    b = create_run(CFG, name="second run!", root=tmp_path)
    assert re.fullmatch(r"\d{8}-\d{6}-first", a.id) and b.id.endswith("-second-run")
    assert json.loads(a.config_path.read_text())["epochs"] == 2
    b.append_metric({"type": "eval", "set": "lfw", "mean_accuracy": 0.8, "std_accuracy": 0.02})
    b.append_metric({"type": "eval", "set": "lfw", "mean_accuracy": 0.85, "std_accuracy": 0.03})
    b.write_status(status="finished", epoch=2)
    rows = list_runs(tmp_path)
    assert [r.id for r in rows] == sorted([a.id, b.id])
    row = {r.id: r for r in rows}[b.id]
    assert (row.status, row.epoch, row.epochs, row.best_accuracy, row.best_std) == ("finished", 2, 2, 0.85, 0.03)
    assert find_run(b.id, tmp_path).path == b.path and find_run(str(b.path)).path == b.path
    with pytest.raises(FileNotFoundError):
        find_run("nope", tmp_path)
    # a run claiming to run under a dead pid reads as failed
    a.write_status(status="running", pid=2**22 + 12345)
    assert a.status()["status"] == "failed" and "resume" in a.status()["message"]


def test_stop_request(tmp_path):
    run = create_run(CFG, root=tmp_path)
    assert not run.stop_requested()
    request_stop(run.id, tmp_path)
    assert run.stop_requested()


def _sleeper(seconds: float) -> list[str]:
    return [sys.executable, "-c", f"import time; time.sleep({seconds})"]


def test_queue_starts_next_only_when_a_slot_frees(tmp_path, trainer_command):
    trainer_command(_sleeper(1.5))
    first, pid1 = launch(CFG, root=tmp_path, name="a", max_running=1)
    trainer_command(_sleeper(0.1))
    second, pid2 = launch(CFG, root=tmp_path, name="b", max_running=1)
    third, pid3 = launch(CFG, root=tmp_path, name="c", max_running=1)
    assert pid1 and pid2 is None and pid3 is None
    assert [q["run_id"] for q in read_queue(tmp_path)] == [second, third]
    assert Run(tmp_path / "runs" / second).status()["status"] == "queued"
    assert run_queue(tmp_path, max_running=1) == []  # first still sleeping
    request_stop(third, tmp_path)  # a queued run can be cancelled
    assert Run(tmp_path / "runs" / third).status()["status"] == "stopped"
    deadline = time.time() + 20
    started: list[str] = []
    while not started and time.time() < deadline:
        time.sleep(0.1)
        started = run_queue(tmp_path, max_running=1)
    assert started == [second] and read_queue(tmp_path) == []
    assert (tmp_path / "runs" / first / "log.txt").exists()


def test_runs_cli_lists_and_compares(tmp_path, capsys):
    from synface.cli import runs as runs_cli

    a = create_run({**CFG, "lr": 0.1}, name="a", root=tmp_path)
    b = create_run({**CFG, "lr": 0.01}, name="b", root=tmp_path)
    a.append_metric({"type": "eval", "set": "lfw", "mean_accuracy": 0.9, "std_accuracy": 0.01})
    a.append_metric({"type": "train", "step": 1, "loss": 1.0, "images_per_s": 50.0})
    parser = argparse.ArgumentParser()
    runs_cli.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["runs", "--root", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert a.id in out and b.id in out and "90.00 +- 1.00" in out
    args = parser.parse_args(["runs", "--root", str(tmp_path), "compare", a.id, b.id, "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config_differences"] == {"lr": [0.1, 0.01]}


def test_smoke_test_runs_are_listed_only_when_asked_for(tmp_path, capsys):
    from synface.cli.main import main
    from synface.runs.registry import create_run

    kept = create_run({"data": "x", "epochs": 1}, name="mine", root=tmp_path)
    smoke = create_run({"data": "x", "epochs": 1}, name="smoke", root=tmp_path)
    smoke.tag_study("table2", {"ids": 4}, key="k", seed=0, scale="tiny", smoke=True)
    assert smoke.is_smoke() and not kept.is_smoke()
    assert main(["runs", "list", "--root", str(tmp_path), "--json"]) == 0
    assert {r["run_id"] for r in json.loads(capsys.readouterr().out)["rows"]} == {kept.id}
    assert main(["runs", "list", "--smoke", "--root", str(tmp_path), "--json"]) == 0
    assert {r["run_id"] for r in json.loads(capsys.readouterr().out)["rows"]} == {kept.id, smoke.id}
    assert main(["runs", "--root", str(tmp_path), "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["runs"]] == [kept.id]


def test_stopping_an_ended_run_is_refused_and_leaves_no_stop_file(tmp_path, capsys):
    from tests.support import cli_error

    run = create_run(CFG, root=tmp_path)
    for state in ("finished", "failed", "stopped"):
        run.write_status(status=state)
        with pytest.raises(ValueError, match=f"not running .status {state}.; nothing to stop"):
            request_stop(run.id, tmp_path)
        assert not run.stop_requested()
    cli_error(capsys, ["runs", "--root", tmp_path, "stop", run.id], run.id, "nothing to stop")
    assert not run.stop_requested()
