"""The run registry: the run folders of a workspace, created, found, listed, summarised, compared.

    <workspace>/runs/<run-id>/           one run (`synface.runs.run.Run`); id = UTC start + short name
    <workspace>/runs/queue.json          runs waiting for a free slot (`synface.runs.queue`)
    <workspace>/runs/_archive/<run-id>/  archived runs: kept, but not listed by default and not
                                         counted by the study tables (which read runs/ only)

The workspace is $SYNFACE_HOME, else `workspace/` beside the package's parent folder (where
app.py lives), or an explicit `root`. Starting runs is `synface.runs.queue`'s, archiving and
deleting them `synface.runs.manage`'s. No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from synface.base.files import publish_folder, utc_now
from synface.base.names import check_name, child_path
from synface.base.workspace import workspace_root
from synface.data.errors import DataError
from synface.runs.run import Run

__all__ = ["RunSummary", "create_run", "find_run", "list_runs", "summarize", "summary_of", "read_config_or_problem",
           "compare_runs", "config_differences", "runs_dir",
           "run_folders", "BROKEN", "ARCHIVE_DIR"]

#: the summary status of a run whose config.json does not parse (its message says why)
BROKEN = "broken"
#: archived runs live in <workspace>/runs/<ARCHIVE_DIR>/<run-id>
ARCHIVE_DIR = "_archive"


def runs_dir(root: str | Path | None) -> Path:
    """<workspace>/runs of the workspace `root` (None: the default workspace)."""
    return workspace_root(root) / "runs"


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
    #: a run of reproduce's smoke test (`Run.is_smoke`): lists hide it unless asked
    smoke: bool = False

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
    base = runs_dir(root)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    names = (child_path(base, f"{stamp}-{_slug(name)}{'' if i == 0 else f'-{i + 1}'}", "run id").name for i in range(1000))
    return Run(publish_folder(base, names, lambda folder: _fill_new_run(Run(folder), cfg, name)))


def _fill_new_run(run: Run, cfg: dict[str, Any], name: str) -> Run:
    run.checkpoints.mkdir(exist_ok=True)
    run.write_config(cfg)
    run.write_status(status="created", created=utc_now(), name=name, progress=0.0)
    return run


def find_run(ref: str | Path, root: str | Path | None = None) -> Run:
    """A run by folder path, id, or unique id suffix/prefix within the workspace.

    A folder path (the user's own choice) may be anywhere; an id is a single safe name, so it can
    only ever pick a folder directly inside <workspace>/runs.
    """
    path = Path(ref)
    if path.is_dir() and (path / "config.json").exists():
        return Run(path)
    base = runs_dir(root)
    text = str(ref)
    if "/" in text or "\\" in text or os.sep in text:
        raise FileNotFoundError(f"no run folder {text} (no config.json there); give a run folder or a run id")
    run_id = check_name(text, "run id")
    for folder in (base, base / ARCHIVE_DIR):
        if (folder / run_id).is_dir() and not run_id.startswith("_"):
            return Run(child_path(folder, run_id, "run id"))
    hits = [p for p in run_folders(base, archived=True) if p.name.startswith(run_id) or p.name.endswith(run_id)]
    if len(hits) == 1:
        return Run(hits[0])
    if not hits:
        raise FileNotFoundError(f"no run {run_id!r} in {base} (deleted? archived runs are searched too)")
    raise ValueError(f"run {run_id!r} is ambiguous: {', '.join(p.name for p in hits)}")


def read_config_or_problem(run: Run) -> tuple[dict[str, Any], str]:
    """(config.json, '') of a run; ({}, what is wrong) when it does not parse, ({}, '') when there is none."""
    try:
        return run.config(), ""
    except FileNotFoundError:
        return {}, ""
    except DataError as exc:  # shown in the runs table (which names the run), never a crash of the list
        return {}, f"{run.config_path.name}: {exc.message}"


def summarize(run: Run) -> RunSummary:
    """Status, progress, best verification accuracy (first eval set) and recent throughput."""
    cfg, problem = read_config_or_problem(run)
    return summary_of(run, cfg, problem, run.read_metrics())


def summary_of(run: Run, cfg: Mapping[str, Any], problem: str, metrics: Sequence[Mapping[str, Any]],
               status: Mapping[str, Any] | None = None, tag: Mapping[str, Any] | None = None) -> RunSummary:
    """`summarize` from a config, metrics, status and study tag already read (`read_config_or_problem`,
    `Run.read_metrics`, `Run.status`, `Run.study_tag`): a caller that shows more of each run reads
    each file once."""
    st = run.status() if status is None else status
    smoke = run.is_smoke(tag)
    evals = [r for r in metrics if r.get("type") == "eval"]
    trains = [r for r in metrics if r.get("type") == "train"]
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
        evaluation="on" if problem or cfg.get("eval_sets") or evals else "off", smoke=smoke,
    )


def run_folders(base: Path, archived: bool = False) -> list[Path]:
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
    return [summarize(Run(p)) for p in run_folders(runs_dir(root), include_archived)]


def config_differences(configs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """key -> each config's value, for the keys whose values differ (the run name aside)."""
    keys = sorted({k for c in configs for k in c})
    return {k: [c.get(k) for c in configs] for k in keys
            if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1 and k != "name"}


def compare_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """Config keys that differ between runs, and each run's summary (whose message names a config
    that does not parse; it counts as empty here)."""
    configs = [read_config_or_problem(r)[0] for r in runs]
    return {"runs": [summarize(r).to_dict() for r in runs], "config_differences": config_differences(configs)}
