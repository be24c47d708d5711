"""One training process per run folder: an flock on `<run>/.lock`, which also holds the holder's pid.

Why flock: the kernel drops it when its process dies, so the lock of a killed trainer (a .lock
file still naming a dead pid) is simply taken over, never left to block a resume. No Streamlit here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any, Iterator, Mapping

from synface.base.files import utc_now

__all__ = ["RunLocked", "hold", "holder", "locked_message", "folder_gone", "LOCK_NAME"]

LOCK_NAME = ".lock"


class RunLocked(ValueError):
    """Another live process is training in this run folder; the message names its pid."""


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        data = {}
    return data if isinstance(data, dict) else {}


def locked_message(folder: Path, who: Mapping[str, Any]) -> str:
    """The refusal: which folder, which pid (and host when it is another machine), what to do."""
    pid = who.get("pid") or "unknown"
    host = f" on {who['host']}" if who.get("host") not in (None, socket.gethostname()) else ""
    return (f"run folder {folder} is in use by training process {pid}{host}; a second trainer is refused. "
            f"Stop it first (python -m synface runs stop {folder.name}) or wait for it to end")


def folder_gone(folder: Path) -> FileNotFoundError:
    """The error of a write into a run folder that is no longer there: it is never re-created (a run
    folder without its config.json would belong to no list)."""
    return FileNotFoundError(errno.ENOENT, "the run folder is gone (deleted or archived?); it is not re-created",
                             str(folder))


@contextlib.contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold `folder` (which must exist) for this process; RunLocked naming the holder when a live
    process holds it, `folder_gone` when the folder is not there."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise folder_gone(folder) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(locked_message(folder, _read_holder(fd))) from None
        since = utc_now()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode() + b"\n", 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(folder: Path) -> dict[str, Any] | None:
    """{'pid', 'host', 'since'} of the live process holding `folder`, None when it is free."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
