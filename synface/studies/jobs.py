"""Reproduce as a background job the app can start, follow and stop."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from synface.studies.plan import DEFAULT_SEEDS, make_plan
from synface.studies.report import results_dir


def _job_paths(name: str, scale: str, root: str | Path | None, model: str = "builtin") -> tuple[Path, Path]:
    from synface.analysis.tables import study_key  # noqa: PLC0415
    from synface.base.workspace import workspace_root  # noqa: PLC0415

    base = workspace_root(root) / "reproduce"
    stem = f"{study_key(name, model)}-{scale}"
    return base / f"{stem}.log", base / f"{stem}.json"


def launch_reproduce(name: str, scale: str, lfw: str | Path, root: str | Path | None = None,
                     out_dir: str | Path | None = None, seeds: int = DEFAULT_SEEDS, model: str = "builtin") -> dict[str, Any]:
    """Start `reproduce` as a detached process (survives app reruns); refuses a second live one."""
    from synface.base.processes import pid_alive, spawn_detached, synface_argv  # noqa: PLC0415
    from synface.base.workspace import workspace_root  # noqa: PLC0415

    make_plan(name, scale, lfw, root, seeds, model=model)  # validate arguments before starting anything
    status = reproduce_status(name, scale, root, model)
    if status.get("alive"):
        return status
    log, meta = _job_paths(name, scale, root, model)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = synface_argv("reproduce", name, "--scale", scale, "--lfw", str(lfw), "--root", str(workspace_root(root)),
                        "--out", str(results_dir(root) if out_dir is None else out_dir), "--seeds", str(seeds), "--model", model, "--no-progress")
    proc = spawn_detached(argv, log)
    meta.write_text(json.dumps({"pid": proc.pid, "argv": argv, "started": time.time()}))
    return {"pid": proc.pid, "alive": pid_alive(proc.pid), "log": str(log)}


def reproduce_status(name: str, scale: str, root: str | Path | None = None, model: str = "builtin") -> dict[str, Any]:
    """pid, whether it is alive, and the log's last lines of a background reproduce job."""
    from synface.base.processes import pid_alive  # noqa: PLC0415

    log, meta = _job_paths(name, scale, root, model)
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {"alive": False}
    tail = ""
    try:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
    except OSError:
        pass
    return {"pid": info.get("pid"), "alive": pid_alive(info.get("pid")), "log": str(log), "tail": tail}
