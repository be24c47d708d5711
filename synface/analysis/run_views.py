"""Every run of a workspace read once: its summary, config, metrics, evaluations and study tag.

The Results page shows the same runs in several ways (the table, ROC curves, loss and accuracy
curves, config differences, the paper tables and their verdicts); each of those functions takes
these views, so one rerun of the page reads each run's files once instead of once per view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synface.runs.registry import RunSummary, read_config_or_problem, run_folders, runs_dir, summary_of
from synface.runs.run import Run

__all__ = ["RunView", "load_runs", "view_of"]


@dataclass
class RunView:
    """What one run folder held when it was read."""

    run: Run
    summary: RunSummary
    config: dict[str, Any]
    status: dict[str, Any]
    metrics: list[dict[str, Any]]
    evals: dict[str, Any]
    tag: dict[str, Any]

    @property
    def id(self) -> str:
        return self.run.id


def load_runs(root: str | Path | None = None, include_archived: bool = False) -> list[RunView]:
    """Every run folder of the workspace, oldest first (archived ones too with `include_archived`),
    as `synface.runs.registry.list_runs` lists them."""
    return [view_of(Run(folder)) for folder in run_folders(runs_dir(root), include_archived)]


def view_of(run: Run) -> RunView:
    """One run, each of its files read once."""
    config, problem = read_config_or_problem(run)
    status, metrics, tag = run.status(), run.read_metrics(), run.study_tag()
    return RunView(run, summary_of(run, config, problem, metrics, status, tag), config, status, metrics,
                   run.read_eval(), tag)
