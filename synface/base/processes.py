"""Detached worker processes: started in their own session so they outlive the app's reruns."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

from synface.base.workspace import REPO_ROOT

#: children `spawn_detached` started in this process, by pid: their reaper threads own waitpid,
#: so `pid_alive` and `child_exit_code` read the Popen instead of racing them for the exit status
_CHILDREN: dict[int, subprocess.Popen] = {}


def pid_alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie (reaps our own finished children)."""
    if not pid or pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.returncode is None
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def start_time(pid: int | None) -> int | None:
    """When process `pid` started (field 22 of /proc/PID/stat, clock ticks since boot), None when
    there is no such process. Why: a pid alone names a process only until it ends; the kernel
    then gives the number to a new process. The pair (pid, start time) names one process for good,
    so a recorded pid is believed only when its start time still matches."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # fields after the name start at field 3: field 22 is index 19
    except (OSError, IndexError, ValueError):
        return None


def same_process(pid: object, started: object) -> bool:
    """True while `pid` is alive and is the process that started at `started` (`start_time`):
    a file that records a pid is trusted only together with its start time."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(started, int) or isinstance(started, bool):
        return False
    return start_time(pid) == started and pid_alive(pid)


def synface_argv(*args: str) -> list[str]:
    """`python -m synface <args>` with this interpreter."""
    return [sys.executable, "-m", "synface", *args]


def child_exit_code(pid: int | None) -> int | None:
    """The exit status of a child `spawn_detached` started in this process once it has ended
    (negative: the signal that ended it); None while it runs or when it is not our child."""
    child = _CHILDREN.get(pid) if pid else None
    return None if child is None else child.returncode


def spawn_detached(argv: Sequence[str], log_path: str | Path, on_exit: Callable[[int], None] | None = None,
                   env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `argv` in its own session (its pid is its process group), stdout and stderr appended
    to `log_path`.

    The repository is put first on PYTHONPATH so the worker runs this checkout's code. A daemon
    thread waits on the child, so one that ends (a failed run, say) is reaped at once and never
    stays a zombie of a long-lived parent such as the app's server; it then calls
    `on_exit(returncode)`. `env`: variables added to this process's environment. The returned
    Popen carries `start_time` (`start_time(pid)`, read while the pid is surely the child's)."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYTHONUNBUFFERED", "1")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(REPO_ROOT), env=env, start_new_session=True, close_fds=True)
    _CHILDREN[proc.pid] = proc
    proc.start_time = start_time(proc.pid)  # type: ignore[attr-defined]  # read before the reaper can free the pid
    threading.Thread(target=_reap, args=(proc, on_exit), name=f"reap-{proc.pid}", daemon=True).start()
    return proc


def _reap(proc: subprocess.Popen, on_exit: Callable[[int], None] | None) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        proc.wait()
    if on_exit is not None and proc.returncode is not None:
        on_exit(proc.returncode)


def default_signals() -> None:
    """Worker start: default SIGTERM/SIGINT handling.

    Why: a forked worker inherits its parent's handlers. Under Streamlit the inherited SIGTERM
    handler only asks the server to shut down, so a pool's terminate() never ended the workers
    and a job hung at N/N."""
    import signal  # noqa: PLC0415

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ordered_pool_map(fn, tasks: list, workers: int):
    """Yield fn(task) in task order, from `workers` forked processes (in-process for one worker
    or one task); the pool's workers reset their signal handlers (`default_signals`)."""
    import multiprocessing  # noqa: PLC0415

    if workers <= 1 or len(tasks) < 2:
        yield from map(fn, tasks)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    pool = multiprocessing.get_context(method).Pool(workers, initializer=default_signals)
    try:
        yield from pool.imap(fn, tasks)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
