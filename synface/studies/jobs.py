"""Reproduce as a background job the app can start, follow and stop (the one job system,
`synface.base.jobs`, kind "reproduce", keyed by study and scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synface.base import jobs
from synface.base.processes import synface_argv
from synface.base.workspace import workspace_root
from synface.studies.plan import DEFAULT_SEEDS, make_plan
from synface.studies.report import results_dir

KIND = "reproduce"


def job_key(name: str, scale: str, model: str = "builtin") -> str:
    """The job's key: one study at one scale runs once at a time."""
    from synface.analysis.tables import study_key  # noqa: PLC0415

    return f"{study_key(name, model)}-{scale}"


def launch_reproduce(name: str, scale: str, lfw: str | Path, root: str | Path | None = None,
                     out_dir: str | Path | None = None, seeds: int = DEFAULT_SEEDS, model: str = "builtin") -> dict[str, Any]:
    """Start `reproduce` as a detached job (survives app reruns); a live one of this study and scale
    is returned instead of starting a second. Its status (`synface.base.jobs.status`)."""
    make_plan(name, scale, lfw, root, seeds, model=model)  # validate arguments before starting anything
    argv = synface_argv("reproduce", name, "--scale", scale, "--lfw", str(lfw), "--root", str(workspace_root(root)),
                        "--out", str(results_dir(root) if out_dir is None else out_dir), "--seeds", str(seeds), "--model", model, "--no-progress")
    return jobs.start(KIND, job_key(name, scale, model), argv, workspace_root(root))


def reproduce_status(name: str, scale: str, root: str | Path | None = None, model: str = "builtin") -> dict[str, Any]:
    """The background reproduce job's status: state, pid, whether it is alive, its log and last lines."""
    return jobs.status(KIND, job_key(name, scale, model), workspace_root(root))
