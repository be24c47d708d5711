"""Background jobs: every long piece of work the app starts (dataset builds, real-set registration,
training runs, face-model fits, reproduce) is one detached `python -m synface ...` process, started,
followed and stopped the same way.

A job is named by its kind and a key (a dataset, run or model name: a checked name, so it never
leaves its folder). Its record sits in `<workspace>/jobs/<kind>/<key>.json` (command, pid and the
pid's start time, a stop request, the exit code); its log is `<key>.log` beside it, except for
kinds that write into a folder of their own (a training run: `runs/<key>/log.txt`, stopped through
`runs/<key>/STOP`). Those paths come from the kind and key alone, never from the record: every
file the tool reads is untrusted, its own job records too, so a record can neither point the app
at another file to read or write nor at a process to signal. Following a job reads its state from
the process and its log: the last update of each tqdm bar the command draws (`desc: 47%|###   |
64/135 ...`) is that stage's (done, total), an `error: ...` line is how the command reports a
failure, and its last JSON-object line is its result.

A recorded exit code means the job ended, whatever its pid does now. Otherwise the recorded pid
counts as the job only while its start time (`processes.start_time`, taken at spawn) still matches:
pids are reused, and a reused one must neither keep a job "running" nor receive its stop signal.
The exit code is recorded by the thread that reaps the process when this process started it; a job
another process started (an app restarted meanwhile) is judged from its pid, start time and log.

Jobs the app starts share a few slots (`max_jobs()`, the machine's cores unless $SYNFACE_MAX_JOBS
says otherwise): a job's process takes a slot (a file lock, released when it ends, however it
ends) before it starts its work, and waits, saying so in its log, while every slot is busy. So
eight clicks start eight processes, but only as many work at once as there are cores; at most
MAX_ALIVE jobs may be running or waiting. Training runs keep their own queue (`synface.runs.queue`).

Stopping sends SIGTERM to the job's process group (the job and any worker processes it forked), or,
for a kind that stops itself cleanly (a training run saves a checkpoint first), writes its stop
file; either way the request is recorded, so the job then reads "stopped", not "failed". No
Streamlit here.
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
from synface.base.files import read_regular, write_bytes, write_json
from synface.base.names import check_name, child_path
from synface.base.workspace import workspace_root

__all__ = ["STATES", "JOBS_DIR", "OWN_FOLDER_KINDS", "JobBusy", "job_file", "job_paths", "list_jobs", "parse_stages",
           "start", "status", "stop", "stop_path", "wait_ended"]

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
#: kinds whose job writes into a folder of its own, `<workspace>/<folder>/<key>/`: (folder, log
#: file, stop file). A training run logs to its run folder's log.txt and stops itself (after a
#: checkpoint) when its STOP file appears (synface.runs.registry.Run names the same files).
OWN_FOLDER_KINDS = {"run": ("runs", "log.txt", "STOP")}
#: the most of a job's log that status() reads (its end): a log is untrusted and may be huge
LOG_READ_BYTES = 4 << 20


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
    """(log, meta file) of job `kind`/`key`, from the kind and key alone; ValueError (naming it)
    for a kind or key that is not a plain name."""
    root = workspace_root(workspace)
    base = child_path(root / JOBS_DIR, check_name(kind, "job kind"), "job kind")
    meta = child_path(base, f"{check_name(key, f'{kind} job name')}.json", f"{kind} job name")
    if kind in OWN_FOLDER_KINDS:
        folder, log_name, _ = OWN_FOLDER_KINDS[kind]
        return child_path(root / folder, key, f"{kind} job name") / log_name, meta
    return child_path(base, f"{key}.log", f"{kind} job name"), meta


def stop_path(kind: str, key: str, workspace: str | Path | None = None) -> Path | None:
    """The file whose appearance stops job `kind`/`key` cleanly, None for kinds stopped by a signal."""
    if kind not in OWN_FOLDER_KINDS:
        return None
    folder, _, stop_name = OWN_FOLDER_KINDS[kind]
    return child_path(workspace_root(workspace) / folder, check_name(key, f"{kind} job name"), f"{kind} job name") / stop_name


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


def _read_meta(meta: Path) -> Any:
    """The JSON of a job record (a regular file of at most 1 MB), None when there is none."""
    try:
        return json.loads(read_regular(meta, limit=1 << 20))
    except (OSError, ValueError):
        return None


def _update(meta: Path, started: float | None = None, **fields: Any) -> None:
    """Merge `fields` into a job's record; with `started`, only while the record is still the one
    written at that start (a reaper must not stamp its exit code on the job started after it)."""
    with _META_LOCK:
        info = _read_meta(meta)
        if isinstance(info, dict) and (started is None or info.get("started") == started):
            info.update(fields)
            write_json(meta, info)


def start(kind: str, key: str, argv: Sequence[str], workspace: str | Path | None = None,
          info: dict[str, Any] | None = None, slot: bool = True, wait_s: float | None = None) -> dict[str, Any]:
    """Start `argv` detached as job `kind`/`key` and return its status; a live job of that kind and
    key is returned instead of starting a second one (`wait_s` None).

    `wait_s`: a new job is wanted, never the live one (a resume must not take a stopping job's
    process for its own): a live job of that key is waited for up to `wait_s` seconds, then JobBusy
    naming its pid when it still runs.

    Its output goes to the kind's log (`job_paths`: appended; only what this job writes is read
    back). `info`: extra fields the caller reads back. `slot`: the job waits for one of the
    workspace's `max_jobs()` slots (a `python -m synface` command takes it at start); False for
    work that is scheduled elsewhere (the run queue). ValueError when MAX_ALIVE jobs are running or
    waiting already."""
    log, meta = job_paths(kind, key, workspace)
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
        _spawn(kind, key, argv, meta, log, info, env)
    return status(kind, key, workspace)


def _spawn(kind: str, key: str, argv: Sequence[str], meta: Path, log: Path, info: dict[str, Any] | None,
           env: dict[str, str]) -> None:
    if kind not in OWN_FOLDER_KINDS:
        write_bytes(log, b"")  # a fresh log (replacing whatever sits at that name, never writing through it)
    elif log.parent.is_symlink() or not log.parent.is_dir() or log.is_symlink() or (log.exists() and not log.is_file()):
        raise ValueError(f"{log} is not a regular file in a folder of this workspace (a link or a FIFO?); "
                         f"cannot start job {kind}/{key}")
    offset = log.stat().st_size if log.is_file() else 0
    record: dict[str, Any] = {"kind": kind, "key": key, "argv": [str(a) for a in argv], "log_offset": offset,
              "info": dict(info or {}), "started": time.time(), "pid": None, "pid_start": None,
              "stop_requested": None, "exit_code": None, "ended": None}
    write_json(meta, record)
    started = record["started"]

    def reaped(code: int) -> None:
        with contextlib.suppress(OSError):  # this start's record only, never a later start's
            _update(meta, started, exit_code=code, ended=time.time())

    try:
        proc = processes.spawn_detached(record["argv"], log, on_exit=reaped, env=env)
    except BaseException:
        meta.unlink(missing_ok=True)  # nothing started: no job to follow
        raise
    with _META_LOCK:  # the reaper may already have written the exit code of a job that ended at once
        current = _read_meta(meta)
        record = current if isinstance(current, dict) else record
        record["pid"] = proc.pid
        record["pid_start"] = getattr(proc, "start_time", None)
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
    """The job's part of its log (from `offset`, at most the last LOG_READ_BYTES of it); '' when
    it is missing or not a regular file (a link or a FIFO planted at its name is never followed)."""
    try:
        data = read_regular(path, start=offset, tail=LOG_READ_BYTES)
    except (OSError, ValueError):
        return ""
    return data.decode("utf-8", errors="replace")


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


def _int(value: Any) -> int | None:
    """A recorded number, or None when the record holds anything else (bools included)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _record(kind: str, key: str, meta: Path) -> dict[str, Any] | None:
    """The job record, or None when there is none (or the file is another of the folder's files,
    a build's config): a record is untrusted, so only fields of the expected types are used."""
    info = _read_meta(meta)
    if not isinstance(info, dict) or info.get("kind") != kind or info.get("key") != key:
        return None
    argv = info.get("argv")
    return {"pid": _int(info.get("pid")), "pid_start": _int(info.get("pid_start")),
            "exit_code": _int(info.get("exit_code")), "log_offset": max(0, _int(info.get("log_offset")) or 0),
            "info": info["info"] if isinstance(info.get("info"), dict) else {},
            "started": _number(info.get("started")), "ended": _number(info.get("ended")),
            "stop_requested": _number(info.get("stop_requested")),
            "argv": [str(a) for a in argv] if isinstance(argv, list) else None}


def _alive(record: dict[str, Any]) -> bool:
    """Whether the job's process still runs: never once an exit code is recorded, and only while
    the recorded pid is the process that was started (same start time)."""
    if record["exit_code"] is not None:
        return False
    pid = record["pid"]
    if pid is None:
        return False
    own = processes.child_exit_code(pid)
    if own is not None:
        return False
    return processes.same_process(pid, record["pid_start"])


def status(kind: str, key: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """Where job `kind`/`key` stands: `state` (one of STATES), `alive`, `waiting` (alive, for a job slot), `pid`, `stages` (stage ->
    (done, total)), `error` (its last `error:` line), `result` (its last JSON-object line), `exit_code`
    (when known), `log`, `tail` (its last lines), `info`, `started`, `ended`, `stop_requested`."""
    log, meta = job_paths(kind, key, workspace)
    record = _record(kind, key, meta)
    if record is None:
        return _none(kind, key)
    pid = record["pid"]
    alive = _alive(record)
    code = record["exit_code"]
    if code is None and record["pid_start"] is not None:
        code = processes.child_exit_code(pid)  # our own child, ended before its reaper wrote the record
    text = _read_log(log, record["log_offset"])
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    error = next((line for line in reversed(lines) if line.startswith("error:")), None)
    result = _result(lines)
    waiting = alive and text.rfind(WAITING_LINE) > text.rfind(STARTING_LINE)
    return {"kind": kind, "key": key, "state": _state(alive, record["stop_requested"], code, error, result),
            "alive": alive, "waiting": waiting, "pid": pid, "stages": parse_stages(text), "error": error, "result": result,
            "exit_code": code, "log": str(log), "tail": "\n".join(lines[-8:]), "info": record["info"],
            "started": record["started"], "ended": record["ended"], "stop_requested": record["stop_requested"],
            "argv": record["argv"]}


def stop(kind: str, key: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """Ask a running job to stop (its kind's stop file, else SIGTERM to its process group) and
    record the request; a job that is not running (or whose recorded pid is now another process)
    is left as it is, and nothing is signalled. Returns its status."""
    _, meta = job_paths(kind, key, workspace)
    record = _record(kind, key, meta)
    if record is None or not _alive(record):
        return status(kind, key, workspace)
    _update(meta, stop_requested=time.time())
    flag = stop_path(kind, key, workspace)
    if flag is not None:
        if flag.parent.is_dir() and not flag.parent.is_symlink():
            write_bytes(flag, (time.strftime("%Y-%m-%dT%H:%M:%S") + "\n").encode())  # replaces a link, never writes through it
    else:
        _terminate(record["pid"], record["pid_start"])
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


def _terminate(pid: int, started: int | None) -> None:
    """SIGTERM to the job's process group (its own session: the job and the workers it forked),
    after checking once more, just before, that `pid` is still the process that was started."""
    if not processes.same_process(pid, started):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)


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
