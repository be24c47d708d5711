"""Which build of its synthetic set a study's run trained on, and whether that build is still there.

Why: a set is named by its recipe, so rebuilding it (newer rendering code, a deleted folder made
again) keeps its name and its runs' keys. Without a record, a study would count runs of the old
build as done and pool them with runs of the new one in one table.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from synface.data.synth_set import SynthSet


def data_id(config: dict) -> str | None:
    """Which build of a run's synthetic set it trained on: a hash of the set's card (config,
    generator and model versions, creation time), so a set rebuilt under the same name (new
    code, a changed option that keeps the name) is told apart. None for real data or a set with
    no readable card."""
    data = config.get("data")
    if not data:
        return None
    card = SynthSet(Path(str(data))).card_or_empty()
    if not card:
        return None
    basis = {k: card.get(k) for k in ("name", "config", "generator_version", "model_version", "created")}
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stale_run(tag: dict, config: dict) -> bool:
    """Whether a finished run trained on another build of its set than the one there now (runs
    tagged before builds were recorded count as current: nothing to compare)."""
    recorded = tag.get("data_id")
    return bool(recorded) and recorded != data_id(config)


def current_rows(root: str | Path | None, scale: str | None) -> tuple[list[dict], list[str]]:
    """The registry's study rows at `scale` (None: every scale) without those of stale runs (trained on an earlier
    build of their synthetic set, see `staleness`), and the stale runs' names: a report of a few
    cells (`--cells`) must not pool the other cells' stale runs either."""
    from synface.analysis import tables  # noqa: PLC0415
    from synface.base.workspace import workspace_root  # noqa: PLC0415
    from synface.runs.run import Run  # noqa: PLC0415

    rows = tables.study_rows(root, scale)
    runs = workspace_root(root) / "runs"
    stale: list[str] = []
    for name in sorted({r["run_id"] for r in rows}):
        run = Run(runs / name)
        try:
            if stale_run(run.study_tag(), run.config()):
                stale.append(name)
        except (OSError, ValueError):  # no readable config: nothing to compare, kept as before
            continue
    return [r for r in rows if r["run_id"] not in stale], stale
