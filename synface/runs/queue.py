"""The run queue: runs wait in queue.json and start as detached processes when a slot frees.

The app and the CLI start runs through `launch`, which survives the app's reruns and restarts;
`run_queue` starts queued runs when fewer than `max_running` are alive. A queue entry names a run
(its id, a plain name inside `<workspace>/runs/`) and nothing else: the command that trains it is
built here, from the run folder, never read from the file, so a hand-written or hostile queue.json
can delay or drop runs but never choose what runs. An entry that does not validate is reported and
dropped, never started. A started run is a job of
the one job system (`synface.base.jobs`, kind "run", keyed by its run id, its output in the run's
log.txt, stopped through its STOP file so it saves a checkpoint first); status.json stays the run's
own account of where it is. No Streamlit here.

Before a run folder is made, `launch_check` makes sure every evaluation set can be scored and that
no evaluation set tests people the run trains on (unless the config accepts it); the run keeps
what was checked in `identity_check.json`. (`synface.train.launch_checks.preflight` adds the checks
that need the training layer; its callers pass its report to `launch`.)

A stopped run's trainer writes 'stopped' seconds before its process exits: `run_state` says
'stopping' until it has, and `resume_run` waits for it instead of taking its pid for the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any, Sequence

from synface.base import jobs
from synface.base.processes import synface_argv
from synface.base.files import locked, utc_now, write_json
from synface.base.names import child_path
from synface.base.workspace import workspace_root
from synface.data.errors import DataError
from synface.data.identity_overlap import REPORT_FILE, OverlapReport, check_launch
from synface.runs.registry import create_run, find_run


#: how a refused overlap is accepted, for runs launched by the app
from synface.runs.run import ACTIVE_STATES, FINAL_STATES, Run, RunLocked


#: how a refused overlap is accepted, for runs launched by the app
APP_OVERRIDE = "tick 'I accept identity overlap' (config allow_overlap: true)"


def launch_check(config: Any, root: str | Path | None = None, override_hint: str = APP_OVERRIDE) -> OverlapReport:
    """Every evaluation set of `config` scorable and none on training people (or the overlap
    accepted); a DataError or IdentityOverlapError (ValueErrors) naming the set otherwise."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return check_launch(values, workspace_root(root), override_hint)


def record_check(run: Run, report: OverlapReport) -> None:
    """Keep the launch check in the run folder; an accepted overlap also goes into status.json."""
    run.write_file(REPORT_FILE, report.to_dict())
    if report.overlapping:
        run.write_status(identity_overlap=report.summary())


def _queue_path(root: Path) -> Path:
    return root / "runs" / "queue.json"


def _queue_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """Serialises every read-modify-write of queue.json (the app, the CLI, ending runs)."""
    return locked(root / "runs" / ".queue.lock")


#: the keys a queue entry may have
ENTRY_KEYS = {"run_id", "queued"}


def _read_entries(path: Path) -> list[Any]:
    """The JSON list in queue.json ([] when there is none); a DataError naming the file when it is
    not readable as one (left alone, so a damaged queue is reported, not silently emptied)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DataError("the run queue is not a regular file; delete it", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the run queue ({exc}); fix or delete it", path=path) from None
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"the run queue is not valid JSON ({exc}); fix or delete it", path=path) from None
    if not isinstance(data, list):
        raise DataError(f"the run queue must be a JSON list of entries, got {type(data).__name__}; fix or delete it",
                        path=path)
    return data


def entry_problem(entry: Any, root: Path) -> str:
    """Why a queue entry cannot be started ('' when it can): it must be {"run_id": NAME, "queued":
    TIME} naming a run folder of this workspace (a real folder, not a link) with a config.json
    file, waiting in the queue."""
    if not isinstance(entry, dict):
        return f"is a {type(entry).__name__}, not an object with a 'run_id'"
    run_id = entry.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        return "has no 'run_id' string"
    extra = sorted(str(k) for k in set(entry) - ENTRY_KEYS)
    if extra:
        return f"({run_id[:100]!r}) has keys this version does not accept: {', '.join(extra)[:200]}"
    try:
        folder = child_path(root / "runs", run_id, "queued run id")
    except ValueError as exc:
        return f"({run_id[:100]!r}): {exc}"
    if folder.is_symlink() or not folder.is_dir():
        return f"({run_id}) names no run folder in {root / 'runs'}"
    config = folder / "config.json"
    if config.is_symlink() or not config.is_file():
        return f"({run_id}) names a run folder without a config.json file"
    state = Run(folder).raw_status().get("status")
    if state != "queued":
        return f"({run_id}) names a run whose status is {state!r}, not 'queued'"
    return ""


def read_queue(root: str | Path | None = None, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """The entries of queue.json that can be started ([] when there is none), in queue order.

    A file that is not a JSON list is a DataError naming it (and is left as it is). An entry that
    does not validate (`entry_problem`) is left out; with `problems`, a line naming it and why is
    appended there for the caller to report."""
    root = workspace_root(root)
    path = _queue_path(root)
    entries = []
    for i, entry in enumerate(_read_entries(path)):
        problem = entry_problem(entry, root)
        if problem:
            if problems is not None:
                problems.append(f"{path}: queue entry {i} {problem}; skipped, not started")
            continue
        entries.append({"run_id": entry["run_id"], "queued": str(entry.get("queued", ""))[:40]})
    return entries


def default_max_running() -> int:
    """$SYNFACE_MAX_RUNS, else one run per GPU, else 1 (two runs on one CPU only slow each other)."""
    env = os.environ.get("SYNFACE_MAX_RUNS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - torch missing or broken CUDA: stay conservative
        return 1


def train_argv(run: Run, root: Path) -> list[str]:
    """`python -m synface train ...` for a run folder: the only command a queued run starts with."""
    return synface_argv("train", "--config", str(run.config_path), "--run-dir", str(run.path), "--root", str(root),
                        "--no-progress")


#: the job kind of training runs
KIND = "run"


def _job_root(run: Run, root: str | Path | None) -> Path:
    """The workspace whose jobs/ folder follows this run: the one its runs/ folder sits in."""
    return run.path.parent.parent if run.path.parent.name == "runs" else workspace_root(root)


def _spawn(run: Run, argv: Sequence[str], root: str | Path | None = None, wait_s: float = 0.0) -> int:
    """Start `argv` as the run's job, output to its log.txt; returns its pid. The job system derives
    the run's log and STOP file from its id (`jobs.OWN_FOLDER_KINDS`), so only a run folder
    directly inside a workspace's runs/ can be a background job. A process of the run still alive
    (one that has written 'stopped' and not yet exited) is waited for up to `wait_s`, then JobBusy:
    its pid is never recorded as the new process's."""
    job_root = _job_root(run, root)
    if run.path.parent.name != "runs" or jobs.job_paths(KIND, run.id, job_root)[0] != run.log_path:
        raise ValueError(f"run {run.path} is not in a workspace's runs/ folder; only those start in the background "
                         "(unarchive it, or train it with python -m synface train --resume)")
    job = jobs.start(KIND, run.id, argv, job_root, slot=False, wait_s=wait_s)  # the queue schedules runs itself
    run.write_status(status="starting", pid=job["pid"], host=socket.gethostname(), launched=utc_now(),
                     message="process started; loading the data and the model")  # not a stopped run's old message
    return job["pid"]


def _prepare(config: Any, root: Path, name: str | None) -> Run:
    return create_run(config, name=name, root=root)


def launch_run_subprocess(config: Any, root: str | Path | None = None, name: str | None = None) -> tuple[str, int]:
    """Create a run and start `python -m synface train` for it in the background, now.

    config: a TrainConfig, a dict, or a YAML/JSON path. Returns (run id, pid).
    """
    root = workspace_root(root)
    report = launch_check(config, root)
    run = _prepare(config, root, name)
    record_check(run, report)
    return run.id, _spawn(run, train_argv(run, root), root)


def _active_count(root: Path) -> int:
    base = root / "runs"
    if not base.is_dir():
        return 0
    return sum(1 for p in base.iterdir() if p.is_dir() and Run(p).status().get("status") in ACTIVE_STATES)


def launch(config: Any, root: str | Path | None = None, name: str | None = None,
           max_running: int | None = None, checked: OverlapReport | None = None) -> tuple[str, int | None]:
    """Check, create a run and queue it; it starts at once when a slot is free. Returns (run id, pid or None).

    `checked`: the report of the launch checks the caller has just run on this config
    (`synface.train.launch_checks.preflight`, which checks the data too); else the identity
    check runs here."""
    root = workspace_root(root)
    report = checked if checked is not None else launch_check(config, root)  # refused before a run folder is made
    _read_entries(_queue_path(root))  # a damaged queue too
    run = _prepare(config, root, name)
    record_check(run, report)
    with _queue_lock(root):
        queue = read_queue(root)
        queue.append({"run_id": run.id, "queued": utc_now()})
        run.write_status(status="queued", position=len(queue))
        write_json(_queue_path(root), queue)
    run_queue(root, max_running)
    pid = run.raw_status().get("pid")
    return run.id, pid if run.raw_status().get("status") in ACTIVE_STATES else None


def run_queue(root: str | Path | None = None, max_running: int | None = None,
              problems: list[str] | None = None) -> list[str]:
    """Start queued runs while fewer than `max_running` are active; returns the ids started.

    Each start is `train_argv` of a validated run folder; entries that do not validate are dropped
    from the queue (with `problems`, a line for each). Safe to call from many processes (file
    lock); the app calls it on each refresh and a training process calls it when it ends.
    """
    root = workspace_root(root)
    limit = default_max_running() if max_running is None else max_running
    started: list[str] = []
    if not _queue_path(root).exists():
        return started
    with _queue_lock(root):
        queue = read_queue(root, problems)
        active = _active_count(root)
        while queue and active < limit:
            entry = queue.pop(0)
            run = Run(root / "runs" / entry["run_id"])
            if run.stop_requested():
                continue
            try:
                _spawn(run, train_argv(run, root), root)
            except jobs.JobBusy:  # an earlier process of this run is still exiting: next time
                queue.insert(0, entry)
                break
            started.append(run.id)
            active += 1
        write_json(_queue_path(root), queue)
        for i, entry in enumerate(queue):
            Run(root / "runs" / entry["run_id"]).write_status(position=i + 1)
    return started


def request_stop(run: Run | str | Path, root: str | Path | None = None) -> Run:
    """Ask a run to stop: the loop sees STOP between steps, saves a resumable checkpoint, exits 'stopped'.

    A queued run is removed from the queue and marked stopped at once. A run that has ended
    (finished, failed or stopped, and no process holds its folder) is a ValueError naming its
    state: a STOP file left in it would only stop its next resume.
    """
    run = run if isinstance(run, Run) else find_run(run, root)
    state = run.status().get("status")
    if state in FINAL_STATES and run.locked_by() is None:
        raise ValueError(f"run {run.id} is not running (status {state}); nothing to stop")
    if not jobs.stop(KIND, run.id, _job_root(run, root))["alive"]:  # a live job has its STOP file written
        run.write_stop()  # queued, created, or trained by a process the job system did not start: the loop reads it
    queue_root = run.path.parent.parent
    if run.path.parent.name != "runs" or not _queue_path(queue_root).exists():
        return run
    with _queue_lock(queue_root):
        queue = read_queue(queue_root)
        kept = [q for q in queue if q["run_id"] != run.id]
        if len(kept) != len(queue):
            write_json(_queue_path(queue_root), kept)
            run.write_status(status="stopped", message="removed from the queue before it started")
    return run


#: how long a resume waits for a stopped run's process to exit (it writes 'stopped', then ends)
RESUME_WAIT_S = 60.0


def resume_run(run: Run, root: str | Path | None = None, wait_s: float = RESUME_WAIT_S) -> int:
    """Continue a stopped or failed run from checkpoints/last.pt as a detached process; its pid.

    RunLocked (naming the pid) while a live process still trains in the folder: its status stays
    its own. A stopped run's process writes 'stopped' and releases the folder seconds before it
    exits; a resume in that window waits (up to `wait_s`) for it to exit and then starts a new
    process, never taking the old one for it (RunLocked when it outlives the wait)."""
    run.check_unlocked()
    job_root = _job_root(run, root)
    if jobs.wait_ended(KIND, run.id, job_root, wait_s)["alive"]:
        raise RunLocked(f"run {run.id} is still stopping: its process has not exited after {wait_s:g} s; "
                        "resume it once it has")
    run.check_unlocked()  # nobody took the folder meanwhile
    argv = synface_argv("train", "--resume", str(run.path), "--root", str(workspace_root(root)), "--no-progress")
    try:
        return _spawn(run, argv, root)
    except jobs.JobBusy as exc:
        raise RunLocked(str(exc)) from None


def run_state(run: Run, root: str | Path | None = None) -> dict[str, Any]:
    """`Run.status()` plus what the run's process is doing: `process_alive` (its job's process, or
    a trainer holding the folder, still runs), `stopping` (a stop was asked, or 'stopped' written,
    and that process has not exited yet: the checkpoint is saved once it has) and `resumable` (a
    stopped or failed run with a checkpoint and no process left)."""
    data = dict(run.status())
    state = data.get("status")
    alive = run.locked_by() is not None or jobs.status(KIND, run.id, _job_root(run, root))["alive"]
    data["process_alive"] = alive
    data["stopping"] = alive and (state == "stopped" or (state in ACTIVE_STATES and run.stop_requested()))
    data["resumable"] = not alive and state in ("stopped", "failed") and run.last_checkpoint.is_file()
    return data
