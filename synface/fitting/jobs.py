"""Face-model fits as background jobs: `python -m synface face-model fit` started and followed
through the one job system (`synface.base.jobs`, kind "fit", keyed by the model's name).

The app starts a fit with `launch_fit` (it survives the app's reruns and restarts, like training
runs) and polls `fit_status`, which gives the job's state with the fit's stage progress (the
command's bars, `face-model <stage>: ...| done/total [elapsed<left, ...]`) and its card (the result
line). `estimate_fit` says how long a new fit will take from the rates the last finished fit of
the workspace measured (each stage's elapsed time in its log), never from a constant. No Streamlit here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from synface.base import jobs
from synface.base.files import read_regular
from synface.base.names import check_name
from synface.base.processes import synface_argv
from synface.base.workspace import workspace_root

KIND = "fit"
#: the fit's stages, in order (synface.fitting.build reports them)
STAGES = ("landmarks", "geometry", "reflectance", "fill", "contexts", "framing")
_PREFIX = "face-model "


def fit_argv(photos: str | Path, name: str, workspace: str | Path | None = None, people: int | None = None,
             max_photos_per_person: int | None = None, folds: Sequence[int] | None = None) -> list[str]:
    """`python -m synface face-model fit ...` for these settings (`folds`: LFW people.txt folds, 1-based)."""
    argv = synface_argv("face-model", "fit", "--photos", str(photos), "--name", name,
                        "--workspace", str(workspace_root(workspace).resolve()))
    if people:
        argv += ["--people", str(int(people))]
    if folds:
        argv += ["--folds", ",".join(str(int(f)) for f in folds)]
    if max_photos_per_person:
        argv += ["--max-photos-per-person", str(int(max_photos_per_person))]
    return argv


def launch_fit(photos: str | Path, name: str, workspace: str | Path | None = None, people: int | None = None,
               max_photos_per_person: int | None = None, argv: Sequence[str] | None = None,
               folds: Sequence[int] | None = None) -> dict[str, Any]:
    """Start a fit of model `name` from the photo folder `photos` (only the people of LFW `folds`,
    1-based, when given); a live fit of that name is returned instead of starting a second one.
    `argv` replaces the command (tests)."""
    name = check_name(str(name).strip(), "face model name")
    if name == "builtin":
        raise ValueError("'builtin' is the built-in head's name; choose another name for the learned model")
    photos = Path(photos).expanduser().resolve()  # the job runs in the repository root
    if not photos.is_dir():
        raise FileNotFoundError(f"photo folder {photos} does not exist")
    if people is not None and people < 0:
        raise ValueError(f"people must be a positive number (0: all), got {people}")
    command = list(argv) if argv is not None else fit_argv(photos, name, workspace, people, max_photos_per_person,
                                                           folds)
    jobs.start(KIND, name, command, workspace_root(workspace),
               info={"photos": str(photos), "folds": list(folds) if folds else None})
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


# ----------------------------------------------------------------------------- time estimate

_TIMED_BAR = re.compile(r"^\s*face-model (\w+):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)\s*\[(\d+(?::\d+){1,2})<")


def _seconds(clock: str) -> int:
    """tqdm's 'MM:SS' or 'H:MM:SS' as seconds."""
    total = 0
    for part in clock.split(":"):
        total = 60 * total + int(part)
    return total


def stage_times(text: str) -> dict[str, tuple[int, float]]:
    """stage -> (units, elapsed seconds) of the last update of each stage's bar in a fit's log."""
    out: dict[str, tuple[int, float]] = {}
    for line in re.split(r"[\r\n]+", text):
        match = _TIMED_BAR.search(line)
        if match:
            out[match.group(1)] = (int(match.group(3)), float(_seconds(match.group(4))))
    return out


@dataclass(frozen=True)
class FitRates:
    """What one finished fit measured: seconds per listed photo of each stage that scales with the
    photos, and the seconds that do not (start-up, the once-per-model landmark calibration, the
    framing stage's fixed number of renders, saving): its wall time less the scaling stages."""

    name: str
    photos: int
    per_photo: dict[str, float]
    fixed_s: float

    def seconds(self, photos: int) -> float:
        return photos * sum(self.per_photo.values()) + self.fixed_s


def measured_rates(workspace: str | Path | None = None) -> FitRates | None:
    """The rates of the newest finished fit of the workspace whose log times every stage (None:
    no fit has finished here yet)."""
    for job in jobs.list_jobs(KIND, workspace_root(workspace)):
        if job["state"] != "finished" or not job.get("log"):
            continue
        try:  # a regular file only (a link or FIFO at the log's name is never followed), its end at most
            text = read_regular(job["log"], tail=jobs.LOG_READ_BYTES).decode("utf-8", errors="replace")
        except (OSError, ValueError):
            continue
        times = stage_times(text)
        photos = times.get("landmarks", (0, 0.0))[0]
        if photos <= 0 or any(stage not in times for stage in STAGES):
            continue
        per_photo = {stage: times[stage][1] / photos for stage in STAGES if stage != "framing"}
        scaled = sum(times[stage][1] for stage in per_photo)
        try:  # the job's end as its reaper saw it, else its log's last write (the card line)
            ended = float(job.get("ended") or Path(job["log"]).stat().st_mtime)
            wall = ended - float(job["started"])
        except (OSError, TypeError, ValueError):
            wall = 0.0
        return FitRates(job["key"], photos, per_photo, max(times["framing"][1], wall - scaled))
    return None


def estimate_fit(photos: int, workspace: str | Path | None = None) -> tuple[float, FitRates] | None:
    """(seconds, the rates used) for a fit of `photos` photos; None before any fit has finished here."""
    rates = measured_rates(workspace)
    return None if rates is None else (rates.seconds(photos), rates)
