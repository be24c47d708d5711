"""Job records are untrusted (synface.base.jobs): a hand-written or stale `jobs/<kind>/<key>.json`
may name any pid, file or exit code. Nothing it names is signalled, read or written unless it is
the job's own: a pid counts only with its start time, and logs and stop files come from the
job's kind and key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synface.base import jobs, processes


def _record(root: Path, kind: str, key: str, **fields) -> Path:
    meta = jobs.job_paths(kind, key, root)[1]
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"kind": kind, "key": key, "argv": ["x"], "started": time.time(), **fields}))
    return meta


@pytest.fixture
def bystander():
    """An unrelated process (not started by the job system) that records any signal it gets."""
    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                             "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(3)))\n"
                             "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


def test_a_reused_pid_is_neither_alive_nor_signalled(tmp_path, bystander) -> None:
    """A record naming a live unrelated process (its start time differs, or is missing) reads
    'not running'; stop sends it nothing, and a new job of that key starts."""
    started = processes.start_time(bystander.pid)
    assert isinstance(started, int)
    cases = {"other-start": {"pid": bystander.pid, "pid_start": started + 1},
             "no-start": {"pid": bystander.pid},
             "own-shell": {"pid": os.getppid(), "pid_start": None},
             "self": {"pid": os.getpid(), "pid_start": "later"},
             "bool": {"pid": True, "pid_start": True}}
    for key, fields in cases.items():
        _record(tmp_path, "demo", key, **fields)
        status = jobs.status("demo", key, tmp_path)
        assert not status["alive"] and status["state"] != "running", key
        jobs.stop("demo", key, tmp_path)
    time.sleep(0.2)
    assert bystander.poll() is None  # never signalled
    again = jobs.start("demo", "other-start", [sys.executable, "-c", "print('{\"fresh\": 1}')"], tmp_path)
    assert again["pid"] != bystander.pid
    # the pid with its true start time is the process: believed alive (stop then would signal it)
    _record(tmp_path, "demo", "true", pid=bystander.pid, pid_start=started)
    assert jobs.status("demo", "true", tmp_path)["alive"]


def test_a_recorded_exit_code_means_ended_whatever_the_pid(tmp_path, bystander) -> None:
    _record(tmp_path, "demo", "done", pid=bystander.pid, pid_start=processes.start_time(bystander.pid), exit_code=0)
    status = jobs.status("demo", "done", tmp_path)
    assert not status["alive"] and status["state"] == "finished"
    jobs.stop("demo", "done", tmp_path)
    time.sleep(0.2)
    assert bystander.poll() is None


def test_a_record_cannot_point_at_files_outside_the_job(tmp_path) -> None:
    """`log` and `stop_file` in a record are ignored: the log read is the kind's own, the stop
    file written is the run's own, and a link planted at the log's name is not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "hostname"
    secret.write_text("error: secret content\n")
    victim = outside / "passwd"
    victim.write_text("root:x:0:0\n")
    ws = tmp_path / "ws"
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    (ws / "runs" / "r1").mkdir(parents=True)
    jobs.start("run", "r1", sleeper, ws)
    meta = jobs.job_paths("run", "r1", ws)[1]
    record = json.loads(meta.read_text())
    record.update(log=str(secret), stop_file=str(victim), log_offset=-5)
    meta.write_text(json.dumps(record))
    status = jobs.status("run", "r1", ws)
    assert status["alive"] and "secret" not in status["tail"] and status["log"] == str(ws / "runs" / "r1" / "log.txt")
    jobs.stop("run", "r1", ws)
    assert victim.read_text() == "root:x:0:0\n" and (ws / "runs" / "r1" / "STOP").is_file()
    jobs.stop("demo", "never", ws)
    # the default log replaced by a link to a file outside, or a FIFO: not read, no hang
    _record(ws, "demo", "linked", pid=None, exit_code=1)
    log = jobs.job_paths("demo", "linked", ws)[0]
    log.symlink_to(secret)
    assert jobs.status("demo", "linked", ws)["tail"] == ""
    _record(ws, "demo", "fifo", pid=None, exit_code=1)
    os.mkfifo(jobs.job_paths("demo", "fifo", ws)[0])
    assert jobs.status("demo", "fifo", ws)["tail"] == ""
    # a STOP name that is a link: replaced, never written through
    (ws / "runs" / "r2").mkdir()
    jobs.start("run", "r2", sleeper, ws)
    (ws / "runs" / "r2" / "STOP").symlink_to(victim)
    jobs.stop("run", "r2", ws)
    assert victim.read_text() == "root:x:0:0\n" and not (ws / "runs" / "r2" / "STOP").is_symlink()
    for key in ("r1", "r2"):
        os.killpg(jobs.status("run", key, ws)["pid"], signal.SIGKILL)


@pytest.mark.parametrize("content", [
    "[]", "5", '"text"', '{"kind": "demo", "key": "odd", "pid": "12", "exit_code": "0", "info": [1], "log_offset": "x"}',
    '{"kind": "demo", "key": "odd", "pid": -1, "pid_start": -1, "started": "yesterday"}',
    '{"kind": "demo", "key": "odd", "pid": 99999999999999999999, "pid_start": 1e300}',
])
def test_hostile_but_valid_json_records_give_a_plain_status(tmp_path, content) -> None:
    meta = jobs.job_paths("demo", "odd", tmp_path)[1]
    meta.parent.mkdir(parents=True)
    meta.write_text(content)
    status = jobs.status("demo", "odd", tmp_path)
    assert not status["alive"] and isinstance(status["info"], dict)
    assert jobs.stop("demo", "odd", tmp_path)["state"] in jobs.STATES
    assert [j["key"] for j in jobs.list_jobs("demo", tmp_path)] in ([], ["odd"])


def test_a_fifo_record_does_not_hang(tmp_path) -> None:
    meta = jobs.job_paths("demo", "pipe", tmp_path)[1]
    meta.parent.mkdir(parents=True)
    os.mkfifo(meta)
    assert jobs.status("demo", "pipe", tmp_path)["state"] == "none"
    assert jobs.list_jobs(None, tmp_path) == []


def test_a_reaper_stamps_only_the_record_of_the_start_it_reaped(tmp_path) -> None:
    """The process of an earlier start ends after a later start of the same key wrote its record
    (a run resumed while its stopped process exits): its exit code must not end the later job."""
    job = jobs.start("build", "k", [sys.executable, "-c", "import time; time.sleep(1.5)"], tmp_path, slot=False)
    meta = jobs.job_paths("build", "k", tmp_path)[1]
    later = {**json.loads(meta.read_text()), "started": time.time() + 5, "pid": None, "pid_start": None}
    meta.write_text(json.dumps(later))  # what the later start wrote, before its pid
    deadline = time.time() + 30
    while processes.child_exit_code(job["pid"]) is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the reaper's update, had it made one
    record = json.loads(meta.read_text())
    assert record["exit_code"] is None and record["ended"] is None and record["started"] == later["started"]
