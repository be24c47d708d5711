"""Background jobs: every long piece of work the app starts (dataset builds, real-set registration,
training runs, face-model fits, reproduce) is one detached `python -m synface ...` process, started,
followed and stopped the same way.

A job is named by its kind and a key (a dataset, run or model name: a checked name, so it never
leaves its folder). Its files sit in `<workspace>/jobs/<kind>/`: `<key>.json` (command, pid, start
time, a stop request, the exit code) and, unless the caller names another log (a run's log.txt),
`<key>.log`. Following a job reads its state from the process and its log: the last update of each
tqdm bar the command draws (`desc: 47%|###   | 64/135 ...`) is that stage's (done, total), an
`error: ...` line is how the command reports a failure, and its last JSON-object line is its result.
The exit code is recorded by the thread that reaps the process when this process started it; a job
another process started (an app restarted meanwhile) is judged from its log alone.

Jobs the app starts share a few slots (`max_jobs()`, the machine's cores unless $SYNFACE_MAX_JOBS
says otherwise): a job's process takes a slot (a file lock, released when it ends, however it
ends) before it starts its work, and waits, saying so in its log, while every slot is busy. So
eight clicks start eight processes, but only as many work at once as there are cores; at most
MAX_ALIVE jobs may be running or waiting. Training runs keep their own queue (`synface.runs.queue`).

Stopping sends SIGTERM to the job's process group (the job and any worker processes it forked), or,
for a job that stops itself cleanly (a training run saves a checkpoint first), writes its stop file;
either way the request is recorded, so the job then reads "stopped", not "failed". No Streamlit here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from synface.base import processes
from synface.base.files import read_json, write_json
from synface.base.names import check_name, child_path
from synface.base.workspace import workspace_root

__all__ = ["STATES", "JOBS_DIR", "JobBusy", "job_file", "job_paths", "list_jobs", "parse_stages", "start", "status", "stop",
           "wait_ended"]

JOBS_DIR = "jobs"
#: what `status(...)["state"]` can be
STATES = ("none", "running", "finished", "failed", "stopped")
_BAR = re.compile(r"^\s*(.*?):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")
_META_LOCK = threading.Lock()  # the reaper thread and a stop request both update a job's meta file
#: set in a job's environment: the folder of its slot locks and how many there are
SLOT_DIR_ENV, SLOT_COUNT_ENV = "SYNFACE_JOB_SLOT_DIR", "SYNFACE_JOB_SLOT_COUNT"
#: jobs that may be alive (working or waiting for a slot) at once
MAX_ALIVE = 16
WAITING_LINE = "waiting for a free job slot"
STARTING_LINE = "got a job slot: starting"
_HELD_SLOTS: list = []  # the open slot lock of this process, held until it exits


class JobBusy(ValueError):
    """A job of that kind and key still runs (one asked to stop, still exiting): a new one is not
    started in its place, and the live one is not taken for the new one either."""


def max_jobs() -> int:
    """How many jobs the app starts may work at once: $SYNFACE_MAX_JOBS, else the machine's cores."""
    env = os.environ.get("SYNFACE_MAX_JOBS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, os.cpu_count() or 1)


def take_slot(poll_s: float = 0.5) -> None:
    """In a job's process, before its work: wait until one of the slots named in its environment is
    free and hold it until the process ends (the kernel releases the lock, even after kill -9).
    Does nothing in a process started otherwise; the variables are removed so the job's own
    children never wait for a second slot."""
    folder = os.environ.pop(SLOT_DIR_ENV, None)
    count_text = os.environ.pop(SLOT_COUNT_ENV, "")
    if not folder or not count_text.isdigit() or int(count_text) < 1:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    announced = False
    while True:
        for k in range(int(count_text)):
            handle = open(Path(folder) / f"slot-{k}.lock", "a")  # noqa: SIM115 - held for the process's life
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            _HELD_SLOTS.append(handle)
            if announced:
                print(STARTING_LINE, file=sys.stderr, flush=True)
            return
        if not announced:
            print(f"{WAITING_LINE} ({count_text} jobs may work at once)", file=sys.stderr, flush=True)
            announced = True
        time.sleep(poll_s)


def job_paths(kind: str, key: str, workspace: str | Path | None = None) -> tuple[Path, Path]:
    """(default log, meta file) of job `kind`/`key`; ValueError (naming it) for a key that is not a plain name."""
    base = child_path(workspace_root(workspace) / JOBS_DIR, check_name(kind, "job kind"), "job kind")
    return child_path(base, f"{check_name(key, f'{kind} job name')}.log", f"{kind} job name"), \
        child_path(base, f"{key}.json", f"{kind} job name")


def job_file(kind: str, key: str, suffix: str, workspace: str | Path | None = None) -> Path:
    """`<workspace>/jobs/<kind>/<key><suffix>`: a file a job's command reads (a build's config, say)."""
    return job_paths(kind, key, workspace)[1].with_name(f"{key}{suffix}")


@contextlib.contextmanager
def _starting(folder: Path) -> Iterator[None]:
    """One start at a time per kind, across processes: two clicks never start two jobs of one key."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _update(meta: Path, pid: int | None = None, **fields: Any) -> None:
    """Merge `fields` into a job's meta file; with `pid`, only while the file is still that
    process's (a reaper must not stamp its exit code on the job started after it)."""
    with _META_LOCK:
        info = read_json(meta, default=None)
        if isinstance(info, dict) and (pid is None or info.get("pid") in (None, pid)):
            info.update(fields)
            write_json(meta, info)


def start(kind: str, key: str, argv: Sequence[str], workspace: str | Path | None = None, log: str | Path | None = None,
          stop_file: str | Path | None = None, info: dict[str, Any] | None = None, slot: bool = True,
          wait_s: float | None = None) -> dict[str, Any]:
    """Start `argv` detached as job `kind`/`key` and return its status; a live job of that kind and
    key is returned instead of starting a second one (`wait_s` None).

    `wait_s`: a new job is wanted, never the live one (a resume must not take a stopping job's
    process for its own): a live job of that key is waited for up to `wait_s` seconds, then JobBusy
    naming its pid when it still runs.

    `log`: where its output goes (appended; only what this job writes is read back), default a fresh
    `<key>.log` beside the meta file. `stop_file`: a file the command watches to stop itself cleanly
    (`stop` then writes it instead of signalling). `info`: extra fields the caller reads back.
    `slot`: the job waits for one of the workspace's `max_jobs()` slots (a `python -m synface`
    command takes it at start); False for work that is scheduled elsewhere (the run queue).
    ValueError when MAX_ALIVE jobs are running or waiting already."""
    default_log, meta = job_paths(kind, key, workspace)
    if wait_s is not None:
        wait_ended(kind, key, workspace, wait_s)
    with _starting(meta.parent):
        current = status(kind, key, workspace)
        if current["alive"]:
            if wait_s is not None:
                raise JobBusy(f"{kind} job {key} is still running (process {current['pid']}, still alive after "
                              f"{wait_s:g} s); try again once it has exited")
            return current
        alive = sum(1 for job in list_jobs(workspace=workspace) if job["alive"])
        if alive >= MAX_ALIVE:
            raise ValueError(f"{alive} background jobs are running or waiting (at most {MAX_ALIVE}); wait for one to "
                             "end or stop one")
        env = {SLOT_DIR_ENV: str(workspace_root(workspace) / JOBS_DIR / ".slots"),
               SLOT_COUNT_ENV: str(max_jobs())} if slot else {}
        _spawn(kind, key, argv, meta, Path(log) if log is not None else None, default_log, stop_file, info, env)
    return status(kind, key, workspace)


def _spawn(kind: str, key: str, argv: Sequence[str], meta: Path, log: Path | None, default_log: Path,
           stop_file: str | Path | None, info: dict[str, Any] | None, env: dict[str, str]) -> None:
    log_path = log if log is not None else default_log
    if log is None:
        log_path.write_text("")
    offset = log_path.stat().st_size if log_path.exists() else 0
    record = {"kind": kind, "key": key, "argv": [str(a) for a in argv], "log": str(log_path), "log_offset": offset,
              "stop_file": None if stop_file is None else str(stop_file), "info": dict(info or {}),
              "started": time.time(), "pid": None, "stop_requested": None, "exit_code": None, "ended": None}
    write_json(meta, record)

    spawned: list[int] = []

    def reaped(code: int) -> None:
        with contextlib.suppress(OSError):
            _update(meta, spawned[0] if spawned else None, exit_code=code, ended=time.time())

    try:
        proc = processes.spawn_detached(record["argv"], log_path, on_exit=reaped, env=env)
        spawned.append(proc.pid)
    except BaseException:
        meta.unlink(missing_ok=True)  # nothing started: no job to follow
        raise
    with _META_LOCK:  # the reaper may already have written the exit code of a job that ended at once
        record = read_json(meta, default=record)
        record["pid"] = proc.pid
        write_json(meta, record)


def parse_stages(text: str) -> dict[str, tuple[int, int]]:
    """stage -> (done, total) of the last update of each tqdm bar in a log, in the order they first appear."""
    stages: dict[str, tuple[int, int]] = {}
    for line in re.split(r"[\r\n]+", text):
        match = _BAR.search(line)
        if match and match.group(1):
            stages[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return stages


def _read_log(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, offset))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _result(lines: list[str]) -> dict[str, Any] | None:
    for line in reversed(lines):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
    return None


def _state(alive: bool, stop_requested: Any, code: int | None, error: str | None, result: Any) -> str:
    if alive:
        return "running"
    if stop_requested:
        return "failed" if error and code is not None and code > 0 else "stopped"
    if code is not None:
        if code == 0:
            return "finished"
        return "failed" if code > 0 or error else "stopped"  # a signal nobody here sent, without a word
    return "failed" if error else "finished" if result is not None else "stopped"


def _none(kind: str, key: str) -> dict[str, Any]:
    return {"kind": kind, "key": key, "state": "none", "alive": False, "waiting": False, "pid": None, "stages": {}, "error": None,
            "result": None, "exit_code": None, "log": None, "tail": "", "info": {}, "started": None, "ended": None,
            "stop_requested": None, "argv": None}


def status(kind: str, key: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """Where job `kind`/`key` stands: `state` (one of STATES), `alive`, `waiting` (alive, for a job slot), `pid`, `stages` (stage ->
    (done, total)), `error` (its last `error:` line), `result` (its last JSON-object line), `exit_code`
    (when known), `log`, `tail` (its last lines), `info`, `started`, `ended`, `stop_requested`."""
    _, meta = job_paths(kind, key, workspace)
    info = read_json(meta, default=None) if meta.is_file() else None
    if not isinstance(info, dict) or info.get("kind") != kind or info.get("key") != key:
        return _none(kind, key)  # none, or another file of the folder (a build's config)
    pid = info.get("pid")
    alive = processes.pid_alive(pid)
    code = processes.child_exit_code(pid)
    if code is None:
        code = info.get("exit_code")
    log = Path(info.get("log") or job_paths(kind, key, workspace)[0])
    text = _read_log(log, int(info.get("log_offset") or 0))
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    error = next((line for line in reversed(lines) if line.startswith("error:")), None)
    result = _result(lines)
    waiting = alive and text.rfind(WAITING_LINE) > text.rfind(STARTING_LINE)
    return {"kind": kind, "key": key, "state": _state(alive, info.get("stop_requested"), code, error, result),
            "alive": alive, "waiting": waiting, "pid": pid, "stages": parse_stages(text), "error": error, "result": result,
            "exit_code": code, "log": str(log), "tail": "\n".join(lines[-8:]), "info": info.get("info") or {},
            "started": info.get("started"), "ended": info.get("ended"), "stop_requested": info.get("stop_requested"),
            "argv": info.get("argv")}


def stop(kind: str, key: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """Ask a running job to stop (its stop file, else SIGTERM to its process group) and record the
    request; a job that is not running is left as it is. Returns its status."""
    _, meta = job_paths(kind, key, workspace)
    current = status(kind, key, workspace)
    if not current["alive"]:
        return current
    _update(meta, stop_requested=time.time())
    info = read_json(meta, default={}) or {}
    if info.get("stop_file"):
        Path(info["stop_file"]).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")
    else:
        pid = int(current["pid"])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:  # its own session: the job and the workers it forked
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
    return status(kind, key, workspace)


def wait_ended(kind: str, key: str, workspace: str | Path | None = None, timeout_s: float = 30.0,
               poll_s: float = 0.1) -> dict[str, Any]:
    """Wait (at most `timeout_s`) until job `kind`/`key` no longer runs; returns its status then
    (`alive` still True when it outlived the wait)."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    current = status(kind, key, workspace)
    while current["alive"] and time.monotonic() < deadline:
        time.sleep(poll_s)
        current = status(kind, key, workspace)
    return current


def list_jobs(kind: str | None = None, workspace: str | Path | None = None) -> list[dict[str, Any]]:
    """The status of every job (of one kind, or all kinds) in the workspace, newest first."""
    base = workspace_root(workspace) / JOBS_DIR
    if kind:
        kinds = [check_name(kind, "job kind")]
    else:
        kinds = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []
    found = []
    for k in kinds:
        folder = base / k
        if folder.is_dir():
            for meta in folder.glob("*.json"):
                with contextlib.suppress(ValueError):
                    job = status(k, meta.stem, workspace)
                    if job["state"] != "none":
                        found.append(job)
    return sorted(found, key=lambda s: s.get("started") or 0.0, reverse=True)
