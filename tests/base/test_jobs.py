"""The one job system (synface.base.jobs): start, follow, stop and list detached commands, with
per-stage progress read from their tqdm bars, and finished / failed / stopped told apart."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from synface.base import jobs

#: a command that draws two tqdm-style bars (\r updates), then prints its result as one JSON line
BARS = (
    "import json, sys\n"
    "for stage, total in (('first', 3), ('second stage', 2)):\n"
    "    for done in range(total + 1):\n"
    "        sys.stderr.write(f'\\r{stage}: {100 * done // total:3d}%|##  | {done}/{total} [00:00<00:00]')\n"
    "    sys.stderr.write('\\n')\n"
    "print(json.dumps({'made': 5}))\n"
)
SLEEP = [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"]


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _ended(kind: str, key: str, root) -> dict:
    deadline = time.time() + 30
    while time.time() < deadline:
        status = jobs.status(kind, key, root)
        if not status["alive"]:
            # the reaper thread stamps the exit code a moment after the process is seen gone (a
            # loaded machine, e.g. CI beside a training run, has taken over 5 s)
            grace = time.time() + 20
            while status.get("exit_code") is None and time.time() < grace:
                time.sleep(0.05)
                status = jobs.status(kind, key, root)
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {kind}/{key} did not end")


def test_a_job_reports_its_stages_result_and_exit_code(tmp_path) -> None:
    assert jobs.status("demo", "a", tmp_path)["state"] == "none"
    started = jobs.start("demo", "a", _py(BARS), tmp_path, info={"what": "bars"})
    assert started["pid"] and started["info"] == {"what": "bars"}
    done = _ended("demo", "a", tmp_path)
    assert done["state"] == "finished" and done["exit_code"] == 0 and done["result"] == {"made": 5}
    assert done["stages"] == {"first": (3, 3), "second stage": (2, 2)} and list(done["stages"]) == ["first", "second stage"]
    assert (tmp_path / "jobs" / "demo" / "a.log").is_file() and (tmp_path / "jobs" / "demo" / "a.json").is_file()

    jobs.start("demo", "bad", _py("import sys; print('error: no such thing', file=sys.stderr); sys.exit(2)"), tmp_path)
    bad = _ended("demo", "bad", tmp_path)
    assert bad["state"] == "failed" and bad["exit_code"] == 2 and bad["error"] == "error: no such thing"
    jobs.start("demo", "quiet", _py("raise SystemExit(1)"), tmp_path)
    assert _ended("demo", "quiet", tmp_path)["state"] == "failed"  # a nonzero exit fails even without a word
    jobs.start("demo", "killed", _py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), tmp_path)
    killed = _ended("demo", "killed", tmp_path)
    assert killed["state"] == "stopped" and killed["exit_code"] == -signal.SIGKILL

    assert [j["key"] for j in jobs.list_jobs("demo", tmp_path)] == ["killed", "quiet", "bad", "a"]
    assert {j["kind"] for j in jobs.list_jobs(None, tmp_path)} == {"demo"}


def test_a_stopped_job_reads_stopped_and_a_live_key_is_not_started_twice(tmp_path) -> None:
    first = jobs.start("demo", "long", SLEEP, tmp_path)
    again = jobs.start("demo", "long", _py("print('second')"), tmp_path)
    assert again["alive"] and again["pid"] == first["pid"]  # the live job, not a second one
    worker = jobs.start("demo", "group", _py("import subprocess, sys, time\n"
                                              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                                              "print(child.pid, flush=True); time.sleep(60)"), tmp_path)
    deadline = time.time() + 20
    while not jobs.status("demo", "group", tmp_path)["tail"] and time.time() < deadline:
        time.sleep(0.05)
    grandchild = int(jobs.status("demo", "group", tmp_path)["tail"].split()[0])
    for key in ("long", "group"):
        assert jobs.stop("demo", key, tmp_path)["stop_requested"]
    assert _ended("demo", "long", tmp_path)["state"] == "stopped"
    group = _ended("demo", "group", tmp_path)
    assert group["state"] == "stopped" and group["exit_code"] == -signal.SIGTERM and worker["pid"]
    deadline = time.time() + 10
    while time.time() < deadline and _running(grandchild):
        time.sleep(0.05)
    assert not _running(grandchild)  # the worker it forked went with it (its process group)
    assert jobs.stop("demo", "long", tmp_path)["state"] == "stopped"  # stopping an ended job changes nothing
    restarted = jobs.start("demo", "long", _py("print('{\"again\": 1}')"), tmp_path)
    assert restarted["pid"] != first["pid"]
    finished = _ended("demo", "long", tmp_path)
    assert finished["state"] == "finished" and finished["result"] == {"again": 1} and not finished["stop_requested"]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_run_job_logs_into_its_run_folder_and_stops_through_its_stop_file(tmp_path) -> None:
    """A training run's job: log and STOP come from its id (runs/<id>/), as Run names them."""
    from synface.runs.registry import Run

    run = Run(tmp_path / "runs" / "run1")
    run.path.mkdir(parents=True)
    assert jobs.job_paths("run", "run1", tmp_path)[0] == run.log_path and jobs.stop_path("run", "run1", tmp_path) == run.stop_path
    run.log_path.write_text("error: an earlier attempt failed\n")
    code = ("import pathlib, time\n"
            f"flag = pathlib.Path({str(run.stop_path)!r})\n"
            "while not flag.exists(): time.sleep(0.02)\n"
            "print('saved a checkpoint, stopping', flush=True)\n")
    jobs.start("run", "run1", _py(code), tmp_path)
    jobs.stop("run", "run1", tmp_path)
    status = _ended("run", "run1", tmp_path)
    assert run.stop_path.is_file() and status["exit_code"] == 0 and status["state"] == "stopped"
    assert status["error"] is None  # the earlier attempt's lines are not this job's
    log = run.log_path.read_text()
    assert log.startswith("error: an earlier attempt failed\n") and "saved a checkpoint" in log


def test_keys_and_kinds_never_leave_the_jobs_folder(tmp_path) -> None:
    for key in ("..", "../escape", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="job name"):
            jobs.start("demo", key, _py("pass"), tmp_path)
    with pytest.raises(ValueError, match="job kind"):
        jobs.status("../demo", "a", tmp_path)
    assert not any(tmp_path.rglob("*.json"))


def test_stage_progress_reads_the_last_update_of_each_bar() -> None:
    text = ("generate Syn_3_2:   0%|          | 0/610 [00:00<?, ?img/s]\rgenerate Syn_3_2:  41%|####      | 250/610 "
            "[00:01<00:02, 137.34img/s]\nsource-distance check:  50%|#####     | 1/2 [00:01<00:01]\nnot a bar: 3/4\n")
    assert jobs.parse_stages(text) == {"generate Syn_3_2": (250, 610), "source-distance check": (1, 2)}


#: a job that takes a slot the way `python -m synface` does, then works for a while
SLOT_WORK = ("import sys, time\n"
             "sys.path.insert(0, {repo!r})\n"
             "from synface.base.jobs import take_slot\n"
             "take_slot(poll_s=0.05)\n"
             "print('working', flush=True)\n"
             "time.sleep({seconds})\n")


def test_jobs_share_the_workspace_slots_and_wait_for_one(tmp_path, monkeypatch) -> None:
    """Three jobs, two slots: the third waits (saying so) until one ends; then it works."""
    from tests.support import REPO

    monkeypatch.setenv("SYNFACE_MAX_JOBS", "2")
    for key, seconds in (("a", 60), ("b", 1.0), ("c", 0)):
        jobs.start("demo", key, _py(SLOT_WORK.format(repo=str(REPO), seconds=seconds)), tmp_path)
        deadline = time.time() + 20
        while time.time() < deadline and not (jobs.status("demo", key, tmp_path)["waiting"] if key == "c" else
                                              "working" in jobs.status("demo", key, tmp_path)["tail"]):
            time.sleep(0.05)
    waiting = jobs.status("demo", "c", tmp_path)
    assert waiting["alive"] and waiting["waiting"] and "waiting for a free job slot (2 jobs" in waiting["tail"]
    done = _ended("demo", "c", tmp_path)  # b's slot freed after a second
    assert done["state"] == "finished" and "working" in done["tail"] and not done["waiting"]
    assert jobs.status("demo", "a", tmp_path)["alive"]
    jobs.stop("demo", "a", tmp_path)
    assert _ended("demo", "a", tmp_path)["state"] == "stopped"


def test_alive_jobs_are_bounded(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(jobs, "MAX_ALIVE", 2)
    jobs.start("demo", "one", SLEEP, tmp_path)
    jobs.start("demo", "two", SLEEP, tmp_path)
    with pytest.raises(ValueError, match="2 background jobs are running or waiting .at most 2."):
        jobs.start("demo", "three", SLEEP, tmp_path)
    assert jobs.status("demo", "three", tmp_path)["state"] == "none"
    for key in ("one", "two"):
        jobs.stop("demo", key, tmp_path)
        _ended("demo", key, tmp_path)
