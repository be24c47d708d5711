"""One training process per run folder: an flock on `<run>/.lock`, which also holds the holder's pid
(synface.base.locks). A killed trainer's lock is simply taken over, never left to block a resume.
No Streamlit here.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Any, Iterator, Mapping

from synface.base import locks

__all__ = ["RunLocked", "hold", "holder", "locked_message", "folder_gone", "LOCK_NAME"]

LOCK_NAME = ".lock"


class RunLocked(locks.Locked):
    """Another live process is training in this run folder; the message names its pid."""


def locked_message(folder: Path, who: Mapping[str, Any]) -> str:
    """The refusal: which folder, which pid (and host when it is another machine), what to do."""
    return (f"run folder {folder} is in use by training {locks.holder_text(who)}; a second trainer is refused. "
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
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locks.hold(folder / LOCK_NAME, lambda who: locked_message(folder, who), RunLocked))
        except FileNotFoundError:
            raise folder_gone(folder) from None
        yield


def holder(folder: Path) -> dict[str, Any] | None:
    """{'pid', 'host', 'since'} of the live process holding `folder`, None when it is free."""
    return locks.holder(folder / LOCK_NAME)
