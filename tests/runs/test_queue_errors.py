"""A damaged queue.json or run config.json is a named error (file + what is wrong), never a
traceback, a crash of the runs list, or a queue silently emptied (issue 16 item 3)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from synface.data.errors import DataError
from synface.runs.queue import launch, read_queue, request_stop, run_queue
from synface.runs.registry import BROKEN, compare_runs, create_run, list_runs
from synface.runs.run import Run
from tests.support import REPO, cli_error

CFG = {"data": "/nowhere", "epochs": 2, "name": "toy"}


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not valid JSON"),
    ('{"run_id": "x"}', "must be a JSON list of entries, got dict"),
    ("\udcff".encode("utf-8", "surrogateescape"), "cannot read the run queue"),
])
def test_a_damaged_queue_is_named_and_left_alone(tmp_path, capsys, text, needle) -> None:
    path = tmp_path / "runs" / "queue.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = path.read_bytes()
    with pytest.raises(DataError) as info:
        read_queue(tmp_path)
    assert str(path) in str(info.value) and needle in str(info.value)
    with pytest.raises(DataError):
        run_queue(tmp_path, max_running=1)
    cli_error(capsys, ["runs", "--root", tmp_path, "queue", "--max-running", 1], str(path), needle)
    assert path.read_bytes() == before  # not replaced by an empty queue


def test_launch_refuses_a_damaged_queue_before_making_a_run(tmp_path, trainer_command) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "queue.json").write_text("[{]")
    with pytest.raises(DataError, match="queue.json: the run queue is not valid JSON"):
        launch(CFG, root=tmp_path, max_running=1)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["queue.json"]


def test_stopping_a_run_names_a_damaged_queue(tmp_path, capsys) -> None:
    run = create_run(CFG, root=tmp_path)
    (tmp_path / "runs" / "queue.json").write_text("[7")
    cli_error(capsys, ["runs", "--root", tmp_path, "stop", run.id], "queue.json", "not valid JSON")
    assert run.stop_requested()  # the stop itself still landed
    with pytest.raises(DataError):
        request_stop(run, tmp_path)


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object of keys to values, got list"),
    (b"\xff\xfe", "cannot read run config"),
])
def test_a_damaged_run_config_is_named_in_the_runs_list(tmp_path, capsys, text, needle) -> None:
    from synface.cli.main import main

    good = create_run(CFG, name="good", root=tmp_path)
    bad = create_run(CFG, name="bad", root=tmp_path)
    bad.config_path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=needle):
        bad.config()
    rows = {r.id: r for r in list_runs(tmp_path)}  # the list (and the app's table) does not crash
    assert rows[good.id].status == "created" and rows[bad.id].status == BROKEN
    assert rows[bad.id].message.startswith("config.json: ") and needle in rows[bad.id].message
    assert compare_runs([good, bad])["runs"][1]["status"] == BROKEN
    capsys.readouterr()
    assert main(["runs", "--root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert good.id in out and bad.id in out
    assert err.strip().splitlines() == [f"warning: run {bad.id} ({bad.path}): {rows[bad.id].message}"]


def test_hand_edited_counts_do_not_crash_the_summary(tmp_path) -> None:
    run = create_run(CFG, root=tmp_path)
    run.write_config({"epochs": "many", "name": 3})
    run.write_status(epoch="x", progress="half")
    run.append_metric({"type": "eval", "set": "lfw", "mean_accuracy": "high"})
    (row,) = list_runs(tmp_path)
    assert (row.epoch, row.epochs, row.progress, row.best_accuracy) == (0, 0, 0.0, None)


def test_resume_with_a_damaged_config_is_one_line(tmp_path, capsys) -> None:
    run = create_run(CFG, root=tmp_path)
    run.config_path.write_text("{oops")
    cli_error(capsys, ["train", "--resume", run.path, "--root", tmp_path], str(run.config_path), "cannot parse config")
    assert Run(run.path).raw_status()["status"] == "created"


def test_the_real_entry_point_reports_a_damaged_queue_in_one_line(tmp_path) -> None:
    queue = tmp_path / "runs" / "queue.json"
    queue.parent.mkdir(parents=True)
    queue.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "synface", "runs", "--root", str(tmp_path), "queue", "--max-running",
                           "1"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {queue}: the run queue is not valid JSON"), proc.stderr
    assert queue.read_text() == "{not json"


def test_max_running_must_be_positive(tmp_path, capsys) -> None:
    cli_error(capsys, ["runs", "--root", tmp_path, "queue", "--max-running", 0], "--max-running", "got 0")


def _hostile_queue(root, marker, run_id: str) -> None:
    entry = {"run_id": run_id, "argv": ["/bin/sh", "-c", f"touch {marker}"]}
    (root / "runs" / "queue.json").write_text(__import__("json").dumps([entry]))


def test_a_queue_entry_never_chooses_the_command(tmp_path, capsys) -> None:
    """queue.json is data: an entry with an 'argv' (the old format, or a hostile edit) naming a real,
    queued run folder is reported and dropped; nothing it names runs, by `runs queue` or the train
    command's end-of-run start of queued runs."""
    from synface.cli.train import _start_queued

    run = create_run(CFG, root=tmp_path)
    run.write_status(status="queued")
    marker = tmp_path / "marker"
    _hostile_queue(tmp_path, marker, run.id)
    problems: list[str] = []
    assert read_queue(tmp_path, problems) == []
    assert "queue entry 0" in problems[0] and "argv" in problems[0] and "not started" in problems[0]
    code, out, err = _cli(capsys, ["runs", "--root", tmp_path, "queue", "--max-running", 1])
    assert code == 0 and "started: none" in out and "queue entry 0" in err and "argv" in err
    _hostile_queue(tmp_path, marker, run.id)
    _start_queued(run_queue, tmp_path)
    assert "argv" in capsys.readouterr().err
    time.sleep(0.5)
    assert not marker.exists() and read_queue(tmp_path) == []
    assert Run(run.path).raw_status().get("pid") is None  # nothing was started for it


@pytest.mark.parametrize("entry, needle", [
    (5, "is a int, not an object"),
    ({"queued": "x"}, "has no 'run_id' string"),
    ({"run_id": "../../etc"}, "is not allowed"),
    ({"run_id": "nosuch"}, "names no run folder"),
    ({"run_id": "linked"}, "names no run folder"),
    ({"run_id": "noconfig"}, "without a config.json file"),
    ({"run_id": "finished"}, "status is 'finished', not 'queued'"),
    ({"run_id": "good", "command": "x"}, "keys this version does not accept: command"),
])
def test_each_entry_that_does_not_validate_is_named_and_skipped(tmp_path, entry, needle) -> None:
    import json

    good = create_run(CFG, name="good", root=tmp_path)
    good.write_status(status="queued")
    done = create_run(CFG, root=tmp_path)
    done.write_status(status="finished")
    done.path.rename(tmp_path / "runs" / "finished")
    (tmp_path / "runs" / "noconfig").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (tmp_path / "runs" / "linked").symlink_to(outside)
    (tmp_path / "runs" / "queue.json").write_text(json.dumps([entry, {"run_id": good.id}]))
    problems: list[str] = []
    assert read_queue(tmp_path, problems) == [{"run_id": good.id, "queued": ""}]
    assert len(problems) == 1 and "queue entry 0" in problems[0] and needle in problems[0], problems


def _cli(capsys, argv):
    from synface.cli.main import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
