"""One process at a time per thing (a run folder, a face model's name): an flock on a lock file
that also holds the holder's pid, host and start.

Why flock: the kernel drops it when its process dies, so the lock of a killed process (a lock file
still naming a dead pid) is simply taken over, never left to block a resume. The pid written into
the file is only what the refusal names; whether the lock is held is the kernel's answer."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from synface.base.files import utc_now

__all__ = ["Locked", "hold", "holder", "holder_text"]


class Locked(ValueError):
    """Another live process holds the lock; the message names its pid."""


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        data = {}
    return data if isinstance(data, dict) else {}


def _open(lock_file: Path, flags: int) -> int:
    """The lock file opened without following a link or blocking on a FIFO; a regular file only."""
    fd = os.open(lock_file, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(22, "is not a regular file (a lock file)", str(lock_file))
    return fd


@contextlib.contextmanager
def hold(lock_file: Path, refusal: Callable[[Mapping[str, Any]], str], error: type[Locked] = Locked) -> Iterator[None]:
    """Hold `lock_file` for this process; `error(refusal(holder))` when a live process holds it."""
    fd = _open(lock_file, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(refusal(_read_holder(fd))) from None
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


def holder(lock_file: Path) -> dict[str, Any] | None:
    """{'pid', 'host', 'since'} of the live process holding `lock_file`, None when it is free."""
    try:
        fd = _open(lock_file, os.O_RDONLY)
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


def holder_text(who: Mapping[str, Any]) -> str:
    """'process 1234' (with ' on HOST' when it is another machine), for a refusal."""
    pid = who.get("pid") or "unknown"
    host = f" on {who['host']}" if who.get("host") not in (None, socket.gethostname()) else ""
    return f"process {pid}{host}"
