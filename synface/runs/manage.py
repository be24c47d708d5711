"""Archiving, unarchiving and deleting run folders: only finished, stopped or failed runs of this
workspace's runs/, never a link, never a folder that holds data a run uses, never a folder a
trainer holds (whatever its status says). No Streamlit here.

Why the lock as well as the status: a run is "created" from the moment its folder exists until its
trainer writes "running", and a trainer holds the folder's lock from its first step; moving the
folder meanwhile would leave the trainer writing into a folder that is gone. So a move or deletion
takes the folder's lock itself (a trainer that starts meanwhile is refused) and refuses a held one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from synface.data.errors import DataError
from synface.data.synth_set import CARD_NAME, MANIFEST_NAME
from synface.runs.registry import ARCHIVE_DIR, find_run, runs_dir
from synface.runs.run import ACTIVE_STATES, Run, RunLocked

__all__ = ["archive_run", "unarchive_run", "delete_run"]

#: deletions pass through <workspace>/runs/<_TRASH_DIR>
_TRASH_DIR = "_trash"
#: files that mark a dataset folder: a run folder holding one is never deleted
_DATASET_MARKERS = (CARD_NAME, MANIFEST_NAME, "benchmark.json", "source.json", "pairs.txt", "people.txt")


def _removable(run: Run, root: str | Path | None, verb: str) -> Path:
    """The runs/ folder that holds `run`, after checking it may be moved or deleted: a folder of this
    workspace's runs/ (or its archive), not a link, not active or queued, not held by a trainer.
    ValueError naming why not."""
    base = runs_dir(root).resolve()
    path = run.path
    if path.is_symlink():
        raise ValueError(f"cannot {verb} run {run.id}: {path} is a link; remove the link yourself")
    if path.resolve().parent not in (base, base / ARCHIVE_DIR):
        raise ValueError(f"cannot {verb} run folder {path}: only runs inside {base} are managed here")
    state = run.status().get("status")
    if state in (*ACTIVE_STATES, "queued"):
        pid = run.raw_status().get("pid")
        raise ValueError(f"cannot {verb} run {run.id}: it is {state}{f' (pid {pid})' if pid else ''}; "
                         f"stop it first (python -m synface runs stop {run.id}) and wait until it has stopped")
    holder = run.locked_by()
    if holder is not None:
        raise ValueError(_held_message(run, verb, holder.get("pid"), state))
    return base


def _held_message(run: Run, verb: str, pid: object, state: object) -> str:
    return (f"cannot {verb} run {run.id}: training process {pid or 'unknown'} holds its folder (status {state!r}); "
            f"stop it first (python -m synface runs stop {run.id}) and wait until it has stopped")


@contextlib.contextmanager
def _holding(run: Run, verb: str) -> Iterator[None]:
    """The run folder's trainer lock for the length of a move or deletion: a trainer that starts
    meanwhile is refused, and one that took the folder first makes this a ValueError naming it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(run.lock())
        except RunLocked:
            who = run.locked_by() or {}
            raise ValueError(_held_message(run, verb, who.get("pid"), run.status().get("status"))) from None
        yield


def _move(run: Run, dest_dir: Path, what: str, check_only: bool = False) -> Run:
    dest = dest_dir / run.id
    if dest.exists():
        raise FileExistsError(f"cannot {what} run {run.id}: {dest} already exists")
    if check_only:
        return run
    dest_dir.mkdir(parents=True, exist_ok=True)
    with _holding(run, what):
        os.rename(run.path, dest)  # same file system: atomic, readers see the run in one place or the other
    return Run(dest)


def archive_run(run: Run | str | Path, root: str | Path | None = None, check_only: bool = False) -> Run:
    """Move a finished, stopped or failed run into runs/_archive (hidden from lists and tables, kept).
    `check_only` raises what the move would and moves nothing (a batch is refused whole)."""
    run = run if isinstance(run, Run) else find_run(run, root)
    base = _removable(run, root, "archive")
    if run.path.resolve().parent == base / ARCHIVE_DIR:
        return run
    return _move(run, base / ARCHIVE_DIR, "archive", check_only)


def unarchive_run(run: Run | str | Path, root: str | Path | None = None, check_only: bool = False) -> Run:
    """Move an archived run back into runs/ (listed and counted again)."""
    run = run if isinstance(run, Run) else find_run(run, root)
    base = _removable(run, root, "unarchive")
    if run.path.resolve().parent == base:
        return run
    return _move(run, base, "unarchive", check_only)


def delete_run(run: Run | str | Path, root: str | Path | None = None, check_only: bool = False) -> Path:
    """Delete one run folder (config, metrics, evaluations, checkpoints, log) and nothing else; returns its path.

    Datasets are referenced by path from config.json and live elsewhere, so they stay. Refused (one
    ValueError) for an active or queued run, a folder a trainer holds, a folder outside the
    workspace's runs/, a link, or a folder that holds a dataset or a path its config trains or
    evaluates on. The folder is first
    renamed into runs/_trash, so no reader (the run list, the study tables) ever sees half a run.
    `check_only` raises what the deletion would and deletes nothing.
    """
    run = run if isinstance(run, Run) else find_run(run, root)
    base = _removable(run, root, "delete")
    inside = run.path.resolve()
    for marker in _DATASET_MARKERS:
        found = next((p for p in inside.rglob(marker) if not p.is_symlink()), None)
        if found is not None:
            raise ValueError(f"cannot delete run {run.id}: {found} marks a dataset inside the run folder; "
                             f"move it out first (deleting a run never deletes a dataset)")
    try:
        cfg = run.config()
    except (FileNotFoundError, DataError):
        cfg = {}
    used = [cfg.get("data"), cfg.get("real_root")]
    used += [s.get("path") if isinstance(s, dict) else s for s in cfg.get("eval_sets") or []]
    for ref in used:
        if isinstance(ref, str) and ref and Path(ref).resolve().is_relative_to(inside):
            raise ValueError(f"cannot delete run {run.id}: its config uses {ref}, which is inside the run "
                             f"folder; move that data out first (deleting a run never deletes a dataset)")
    if check_only:
        return run.path
    trash = base / _TRASH_DIR / f"{run.id}.{os.getpid()}.{time.time_ns()}"
    trash.parent.mkdir(exist_ok=True)
    with _holding(run, "delete"):
        os.rename(run.path, trash)
    shutil.rmtree(trash)  # rmtree removes links inside, never what they point at
    return run.path
