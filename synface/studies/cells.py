"""A study's plan cut to some of its cells (`reproduce --cells`): a long study a few cells at a time."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from synface.studies.plan import Plan


def restrict_cells(plan: Plan, patterns: Sequence[str]) -> Plan:
    """The plan cut to the runs whose cell label contains one of `patterns` (case-insensitive; a
    pattern that is a whole label keeps that cell alone) and the datasets those runs read, so a long study can be run a few cells at a time; the report
    still shows every finished cell. A pattern that matches no cell is refused with the labels."""
    wanted = [p.strip().lower() for p in patterns if p.strip()]
    if not wanted:
        return plan
    labels = list(dict.fromkeys(run.label for run in plan.runs))
    unknown = [p for p in wanted if not any(p in label.lower() for label in labels)]
    if unknown:
        raise ValueError(f"--cells {', '.join(map(repr, unknown))} matches no cell of {plan.name}; its cells: "
                         + "; ".join(labels))
    exact = {p for p in wanted if any(p == label.lower() for label in labels)}  # a whole label: that cell alone
    runs = [run for run in plan.runs
            if any((run.label.lower() == p) if p in exact else (p in run.label.lower()) for p in wanted)]
    used: set[str] = set()
    for run in runs:
        used.update(str(run.config[k]) for k in ("data", "real_root") if run.config.get(k))
        used.update(str(e.get("path")) for e in run.config.get("eval_sets") or [])
    datasets = [d for d in plan.datasets if d.path in used]
    return replace(plan, datasets=datasets, runs=runs)
