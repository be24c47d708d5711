"""The run registry on disk: one folder per training run, readable while the run is writing it.

    <workspace>/runs/<run-id>/           run id = UTC timestamp + short name (sorts by start)
        config.json                      the TrainConfig
        metrics.jsonl                    append-only: train / eval / status records
        status.json                      written atomically: status, pid, progress, ETA
        eval.json                        latest evaluation of each verification set
        checkpoints/last.pt              end of the last epoch (or where a stop landed)
        log.txt                          stdout/stderr of a background run
        STOP                             present = the loop stops at the next step
        .lock                            held (flock) by the training process; holds its pid
    <workspace>/runs/queue.json          runs waiting for a free slot
    <workspace>/runs/_archive/<run-id>/  archived runs: kept, but not listed by default and not
                                         counted by the study tables (which read runs/ only)

The workspace is $SYNFACE_HOME, else `workspace/` beside the package's parent folder (where
app.py lives), or an explicit `root`. Starting runs is `synface.runs.queue`'s. No Streamlit here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from synface.base.files import append_line, publish_folder, read_json, read_regular, write_bytes, write_json
from synface.base.names import check_name, child_path
from synface.base.processes import pid_alive
from synface.base.workspace import workspace_root
from synface.data.errors import DataError
from synface.runs import run_lock
from synface.runs.run_lock import RunLocked

__all__ = ["Run", "RunSummary", "create_run", "find_run", "list_runs", "summarize", "compare_runs", "iso_time",
           "read_config_file", "archive_run", "unarchive_run", "delete_run", "ACTIVE_STATES", "FINAL_STATES",
           "BROKEN", "ARCHIVE_DIR", "RunLocked"]

ACTIVE_STATES = ("starting", "running")
FINAL_STATES = ("finished", "failed", "stopped")
#: the summary status of a run whose config.json does not parse (its message says why)
BROKEN = "broken"
#: archived runs live in <workspace>/runs/<ARCHIVE_DIR>/<run-id>; deletions pass through _TRASH_DIR
ARCHIVE_DIR = "_archive"
_TRASH_DIR = "_trash"
#: files that mark a dataset folder: a run folder holding one is never deleted
_DATASET_MARKERS = ("dataset.json", "manifest.parquet", "benchmark.json", "source.json", "pairs.txt", "people.txt")


def _runs_dir(root: str | Path | None) -> Path:
    return workspace_root(root) / "runs"


def _now() -> float:
    return time.time()


def iso_time(ts: float) -> str:
    """UTC timestamp as ISO 8601 (what status.json and the queue record)."""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Run:
    """One run folder; every method re-reads the disk, so any process may use it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def stop_path(self) -> Path:
        return self.path / "STOP"

    @property
    def lock_path(self) -> Path:
        return self.path / run_lock.LOCK_NAME

    # -- the trainer's lock (synface.runs.run_lock)
    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the folder for one training process; RunLocked naming the holder's pid otherwise."""
        return run_lock.hold(self.path)

    def locked_by(self) -> dict[str, Any] | None:
        """{'pid', 'host', 'since'} of the live process training here, None when there is none."""
        return run_lock.holder(self.path)

    def check_unlocked(self) -> None:
        """RunLocked when a live process trains in this folder (before starting a second one)."""
        holder = self.locked_by()
        if holder is not None:
            raise RunLocked(run_lock.locked_message(self.path, holder))

    def config(self) -> dict[str, Any]:
        """config.json; FileNotFoundError when there is none, a DataError naming the file and what
        is wrong when it does not parse or holds no JSON object."""
        return read_config_file(self.config_path)

    def write_config(self, config: Mapping[str, Any]) -> None:
        write_json(self.config_path, dict(config))

    # -- metrics
    def append_metric(self, record: Mapping[str, Any]) -> None:
        """One JSON line (`append_line`: a torn last line never swallows this record)."""
        append_line(self.metrics_path, json.dumps(dict(record), allow_nan=True))

    def _lines(self) -> list[tuple[bytes, dict[str, Any] | None]]:
        """(line, record or None when the line is not a JSON object: cut short by kill -9, torn)."""
        try:
            data = self.metrics_path.read_bytes()
        except OSError:
            return []
        out = []
        for raw in filter(bytes.strip, data.split(b"\n")):
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                rec = None
            out.append((raw, rec if isinstance(rec, dict) else None))
        return out

    def prune_metrics(self, step: int, evals_at_step: bool = False) -> int:
        """Drop the train and eval records after global step `step` (and the eval records at it, with
        `evals_at_step`), and unreadable lines; returns how many went. Status records stay.

        Why: a run killed after its last checkpoint logged steps the resume trains again; without
        this, metrics.jsonl would hold those steps twice."""
        def stale(rec: dict[str, Any] | None) -> bool:
            at, kind = (rec or {}).get("step"), (rec or {}).get("type")
            return rec is None or kind in ("train", "eval") and isinstance(at, (int, float)) and (
                at > step or (kind == "eval" and evals_at_step and at == step))

        lines = self._lines()
        kept = [raw for raw, rec in lines if not stale(rec)]
        if len(kept) < len(lines):
            write_bytes(self.metrics_path, b"".join(raw + b"\n" for raw in kept))
        return len(lines) - len(kept)

    def read_metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """All readable records (optionally of one `type`); a partial or garbled line is skipped."""
        return [rec for _, rec in self._lines() if rec is not None and (kind is None or rec.get("type") == kind)]

    # -- status
    def raw_status(self) -> dict[str, Any]:
        data = read_json(self.status_path, {})
        return data if isinstance(data, dict) else {}

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into status.json (atomic replace) and stamp `updated`."""
        data = self.raw_status()
        data.update(fields)
        data["updated"] = _iso(_now())
        write_json(self.status_path, data)
        return data

    def status(self) -> dict[str, Any]:
        """status.json, with an active run whose process is gone reported as failed."""
        data = self.raw_status()
        if not data:
            data = {"status": "unknown" if not self.config_path.exists() else "created"}
        state = data.get("status")
        same_host = data.get("host") in (None, socket.gethostname())
        if state in ACTIVE_STATES and same_host and not pid_alive(data.get("pid")):
            data = dict(data, status="failed",
                        message=f"training process {data.get('pid')} ended without reporting (killed?); "
                                f"resume with: python -m synface train --resume {self.id}")
        return data

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def read_eval(self) -> dict[str, Any]:
        data = read_json(self.eval_path, {})
        return data if isinstance(data, dict) else {}


def read_config_file(path: Path) -> dict[str, Any]:
    """A run's config.json as a dict (see `Run.config`)."""
    try:
        text = read_regular(path, limit=16 << 20, follow_links=True).decode("utf-8")  # never blocks on a FIFO
    except FileNotFoundError:
        raise FileNotFoundError(f"no config.json in {path.parent}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read run config ({exc})", path=path) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"run config is not valid JSON ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise DataError(f"run config must be a JSON object of keys to values, got {type(data).__name__}", path=path)
    return data


def _int(value: Any) -> int:
    """A count from a hand-editable file: 0 for anything that is not one."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return out if out == out else 0.0


@dataclass
class RunSummary:
    """One row of the runs table."""

    id: str
    name: str
    status: str
    epoch: int
    epochs: int
    progress: float
    best_set: str | None
    best_accuracy: float | None
    best_std: float | None
    images_per_s: float | None
    started: str | None
    message: str
    path: str
    archived: bool = False
    #: "on" when the config names evaluation sets, "off" when it names none (no accuracy to show)
    evaluation: str = "on"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _slug(name: str) -> str:
    """A run name as the free-text label's safe part: only [A-Za-z0-9_.-], never '.', '..' or empty."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.")
    return slug[:40] or "run"


def _config_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config must be a TrainConfig or a mapping (load a config file first), got {type(config).__name__}")


def create_run(config: Any, name: str | None = None, root: str | Path | None = None,
               run_dir: str | Path | None = None) -> Run:
    """A new run folder with config.json and status 'created'; the id sorts by UTC start time.

    In the workspace's runs/ the folder is filled under a hidden name and renamed to its id only
    once both files are written, so a kill never leaves a run folder without them (the hidden
    folders of killed creators are removed by the next create)."""
    cfg = _config_dict(config)
    name = name or cfg.get("name") or "run"
    cfg["name"] = name
    if run_dir is not None:
        path = Path(run_dir)
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"run folder {path} exists and is not empty (use --resume to continue it)")
        path.mkdir(parents=True, exist_ok=True)
        return _fill_new_run(Run(path), cfg, name)
    base = _runs_dir(root)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    names = (child_path(base, f"{stamp}-{_slug(name)}{'' if i == 0 else f'-{i + 1}'}", "run id").name for i in range(1000))
    return Run(publish_folder(base, names, lambda folder: _fill_new_run(Run(folder), cfg, name)))


def _fill_new_run(run: Run, cfg: dict[str, Any], name: str) -> Run:
    run.checkpoints.mkdir(exist_ok=True)
    run.write_config(cfg)
    run.write_status(status="created", created=_iso(_now()), name=name, progress=0.0)
    return run


def find_run(ref: str | Path, root: str | Path | None = None) -> Run:
    """A run by folder path, id, or unique id suffix/prefix within the workspace.

    A folder path (the user's own choice) may be anywhere; an id is a single safe name, so it can
    only ever pick a folder directly inside <workspace>/runs.
    """
    path = Path(ref)
    if path.is_dir() and (path / "config.json").exists():
        return Run(path)
    base = _runs_dir(root)
    text = str(ref)
    if "/" in text or "\\" in text or os.sep in text:
        raise FileNotFoundError(f"no run folder {text} (no config.json there); give a run folder or a run id")
    run_id = check_name(text, "run id")
    for folder in (base, base / ARCHIVE_DIR):
        if (folder / run_id).is_dir() and not run_id.startswith("_"):
            return Run(child_path(folder, run_id, "run id"))
    hits = [p for p in _run_folders(base, archived=True) if p.name.startswith(run_id) or p.name.endswith(run_id)]
    if len(hits) == 1:
        return Run(hits[0])
    if not hits:
        raise FileNotFoundError(f"no run {run_id!r} in {base} (deleted? archived runs are searched too)")
    raise ValueError(f"run {run_id!r} is ambiguous: {', '.join(p.name for p in hits)}")


def summarize(run: Run) -> RunSummary:
    """Status, progress, best verification accuracy (first eval set) and recent throughput."""
    st = run.status()
    problem = ""
    try:
        cfg = run.config()
    except FileNotFoundError:
        cfg = {}
    except DataError as exc:  # shown in the runs table (which names the run), never a crash of the list
        cfg, problem = {}, f"{run.config_path.name}: {exc.message}"
    evals = run.read_metrics("eval")
    trains = run.read_metrics("train")
    best_set = best_acc = best_std = None
    if evals:
        best_set = evals[0].get("set")
        same = [e for e in evals if e.get("set") == best_set and isinstance(e.get("mean_accuracy"), (int, float))]
        if same:
            top = max(same, key=lambda e: e["mean_accuracy"])
            best_acc, best_std = top["mean_accuracy"], top.get("std_accuracy")
    ips = None
    recent = [t["images_per_s"] for t in trains[-10:] if isinstance(t.get("images_per_s"), (int, float))]
    if recent:
        ips = sorted(recent)[len(recent) // 2]
    return RunSummary(
        id=run.id, name=str(st.get("name") or cfg.get("name") or ""), status=BROKEN if problem else str(st.get("status")),
        epoch=_int(st.get("epoch")), epochs=_int(cfg.get("epochs")) or _int(st.get("epochs")),
        progress=_float(st.get("progress")), best_set=best_set, best_accuracy=best_acc, best_std=best_std,
        images_per_s=ips, started=st.get("started"), message=problem or str(st.get("message") or ""),
        path=str(run.path), archived=run.path.parent.name == ARCHIVE_DIR,
        evaluation="on" if problem or cfg.get("eval_sets") or evals else "off",
    )


def _run_folders(base: Path, archived: bool = False) -> list[Path]:
    """Run folders (with a config.json) in `base`, and in its archive when `archived`, oldest first.
    A folder whose name starts with '_' or '.' (the archive, the trash) is never a run."""
    out: list[Path] = []
    for folder in (base, base / ARCHIVE_DIR) if archived else (base,):
        if folder.is_dir():
            out += [p for p in folder.iterdir()
                    if p.is_dir() and not p.name.startswith(("_", ".")) and (p / "config.json").exists()]
    return sorted(out, key=lambda p: p.name)


def list_runs(root: str | Path | None = None, include_archived: bool = False) -> list[RunSummary]:
    """Every run folder of the workspace, oldest first (archived ones too with `include_archived`)."""
    return [summarize(Run(p)) for p in _run_folders(_runs_dir(root), include_archived)]


def compare_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """Config keys that differ between runs, and each run's summary."""
    configs = []
    for r in runs:
        try:
            configs.append(r.config())
        except (FileNotFoundError, DataError):  # the summary's message names what is wrong
            configs.append({})
    keys = sorted({k for c in configs for k in c})
    differ = {k: [c.get(k) for c in configs] for k in keys
              if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1 and k != "name"}
    return {"runs": [summarize(r).to_dict() for r in runs], "config_differences": differ}


# ----------------------------------------------------------------------------- archive and delete


def _removable(run: Run, root: str | Path | None, verb: str) -> Path:
    """The runs/ folder that holds `run`, after checking it may be moved or deleted: a folder of this
    workspace's runs/ (or its archive), not a link, not active or queued. ValueError naming why not."""
    base = _runs_dir(root).resolve()
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
    return base


def _move(run: Run, dest_dir: Path, what: str, check_only: bool = False) -> Run:
    dest = dest_dir / run.id
    if dest.exists():
        raise FileExistsError(f"cannot {what} run {run.id}: {dest} already exists")
    if check_only:
        return run
    dest_dir.mkdir(parents=True, exist_ok=True)
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
    ValueError) for an active or queued run, a folder outside the workspace's runs/, a link, or a
    folder that holds a dataset or a path its config trains or evaluates on. The folder is first
    renamed into runs/_trash, so no reader (the run list, the study tables) ever sees half a run.
    `check_only` raises what the deletion would and deletes nothing.
    """
    import shutil  # noqa: PLC0415

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
    os.rename(run.path, trash)
    shutil.rmtree(trash)  # rmtree removes links inside, never what they point at
    return run.path



