"""Face-model fits as background jobs: `python -m synface face-model fit` started and followed
through the one job system (`synface.base.jobs`, kind "fit", keyed by the model's name).

The app starts a fit with `launch_fit` (it survives the app's reruns and restarts, like training
runs) and polls `fit_status`, which gives the job's state with the fit's stage progress (the
command's bars, `face-model <stage>: ...| done/total`) and its card (the result line). No Streamlit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from synface.base import jobs
from synface.base.names import check_name
from synface.base.processes import synface_argv
from synface.base.workspace import workspace_root

KIND = "fit"
#: the fit's stages, in order (synface.fitting.build reports them)
STAGES = ("landmarks", "geometry", "reflectance", "fill", "contexts", "framing")
_PREFIX = "face-model "


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
    command = list(argv) if argv is not None else fit_argv(photos, name, workspace, people, max_photos_per_person)
    jobs.start(KIND, name, command, workspace_root(workspace), info={"photos": str(photos)})
    return fit_status(name, workspace)


def _fit_stages(stages: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """A job's bar stages ('face-model landmarks', ...) as the fit's own stage names."""
    return {stage[len(_PREFIX):]: value for stage, value in stages.items() if stage.startswith(_PREFIX)}


def parse_progress(text: str) -> dict[str, tuple[int, int]]:
    """stage -> (done, total) of the last bar update of each stage in a fit's log."""
    return _fit_stages(jobs.parse_stages(text))


def _fit_view(job: dict[str, Any], name: str) -> dict[str, Any]:
    return {**job, "name": name, "stages": _fit_stages(job["stages"]), "card": job["result"],
            "photos": job["info"].get("photos")}


def fit_status(name: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """A fit job's state (`synface.base.jobs.status`): `state` is 'none', 'running', 'finished',
    'failed' or 'stopped'; `stages` maps each fit stage to (done, total); `card` is the fitted
    model's card, `error` its error line."""
    name = check_name(name, "face model name")
    return _fit_view(jobs.status(KIND, name, workspace_root(workspace)), name)


def stop_fit(name: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """Stop a running fit (it reads 'stopped'; a new fit of that name starts over)."""
    name = check_name(name, "face model name")
    return _fit_view(jobs.stop(KIND, name, workspace_root(workspace)), name)


def fit_jobs(workspace: str | Path | None = None) -> list[str]:
    """Names of the fit jobs started in this workspace, newest first."""
    return [job["key"] for job in jobs.list_jobs(KIND, workspace_root(workspace))]
