"""Face-model fits as background jobs: `python -m synface face-model fit` started detached, followed
through its log.

The app starts a fit with `launch_fit` (it survives the app's reruns and restarts, like training
runs) and polls `fit_status`, which reads the stage progress the command's bars write to the log
(`face-model <stage>: ...| done/total`), and whether it ended with its card (finished) or an
`error:` line. Files: `<workspace>/face_model_fits/<name>.log` and `<name>.json` (pid, command,
start time). No Streamlit here.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Sequence

from synface.base.names import check_name, child_path
from synface.base.processes import pid_alive, spawn_detached, synface_argv
from synface.base.workspace import workspace_root

JOBS_DIR = "face_model_fits"
#: the fit's stages, in order (synface.fitting.build reports them)
STAGES = ("landmarks", "geometry", "reflectance", "fill")
_BAR = re.compile(r"face-model (\w+):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")


def _paths(name: str, workspace: str | Path | None) -> tuple[Path, Path]:
    base = workspace_root(workspace) / JOBS_DIR
    return child_path(base, f"{name}.log", "face model name"), child_path(base, f"{name}.json", "face model name")


def fit_argv(photos: str | Path, name: str, workspace: str | Path | None = None, people: int | None = None,
             max_photos_per_person: int | None = None) -> list[str]:
    """`python -m synface face-model fit ...` for these settings."""
    argv = synface_argv("face-model", "fit", "--photos", str(photos), "--name", name,
                        "--workspace", str(workspace_root(workspace).resolve()))
    if people:
        argv += ["--people", str(int(people))]
    if max_photos_per_person:
        argv += ["--max-photos-per-person", str(int(max_photos_per_person))]
    return argv


def launch_fit(photos: str | Path, name: str, workspace: str | Path | None = None, people: int | None = None,
               max_photos_per_person: int | None = None, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Start a fit of model `name` from the photo folder `photos`; a live fit of that name is
    returned instead of starting a second one. `argv` replaces the command (tests)."""
    name = check_name(str(name).strip(), "face model name")
    if name == "builtin":
        raise ValueError("'builtin' is the built-in head's name; choose another name for the learned model")
    photos = Path(photos).expanduser().resolve()  # the job runs in the repository root
    if not photos.is_dir():
        raise FileNotFoundError(f"photo folder {photos} does not exist")
    if people is not None and people < 0:
        raise ValueError(f"people must be a positive number (0: all), got {people}")
    status = fit_status(name, workspace)
    if status.get("alive"):
        return status
    log, meta = _paths(name, workspace)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")  # a fresh log: the progress read back is this fit's
    command = list(argv) if argv is not None else fit_argv(photos, name, workspace, people, max_photos_per_person)
    proc = spawn_detached(command, log)
    meta.write_text(json.dumps({"name": name, "pid": proc.pid, "argv": command, "photos": str(photos),
                                "started": time.time()}))
    return fit_status(name, workspace)


def parse_progress(text: str) -> dict[str, tuple[int, int]]:
    """stage -> (done, total) of the last bar update of each stage in a fit's log."""
    stages: dict[str, tuple[int, int]] = {}
    for line in re.split(r"[\r\n]+", text):
        match = _BAR.search(line)
        if match:
            stages[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return stages


def fit_status(name: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """A fit job's state: `state` is 'none', 'running', 'finished', 'failed' or 'stopped' (killed
    without a word); `stages` maps each stage to (done, total); `error` holds its error line."""
    log, meta = _paths(check_name(name, "face model name"), workspace)
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {"name": name, "state": "none", "alive": False, "stages": {}}
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    alive = pid_alive(info.get("pid"))
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    error = next((line for line in reversed(lines) if line.startswith("error:")), None)
    card = None
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                card = json.loads(line)
            except ValueError:
                continue
            break
    state = "running" if alive else "failed" if error else "finished" if card is not None else "stopped"
    return {"name": name, "state": state, "alive": alive, "pid": info.get("pid"), "started": info.get("started"),
            "photos": info.get("photos"), "stages": parse_progress(text), "error": error, "card": card,
            "log": str(log), "tail": "\n".join(lines[-4:])}


def fit_jobs(workspace: str | Path | None = None) -> list[str]:
    """Names of the fit jobs started in this workspace, newest first."""
    base = workspace_root(workspace) / JOBS_DIR
    if not base.is_dir():
        return []
    metas = sorted(base.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.stem for p in metas]
