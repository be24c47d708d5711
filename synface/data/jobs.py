"""Dataset builds and real-set registrations as background jobs (`synface.base.jobs`): the app starts
`python -m synface generate --config ...` (kind "build", keyed by the set's name) and `python -m
synface real add ...` (kind "register", keyed by the real set's name), and follows them like every
other job. Both commands resume: a stopped build starts again where it stopped. No Streamlit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from synface.base import jobs
from synface.base.files import write_json
from synface.base.names import check_name
from synface.base.processes import synface_argv
from synface.base.workspace import workspace_root

if TYPE_CHECKING:
    from synface.data.synth_config import SynthConfig

BUILD, REGISTER = "build", "register"


def build_stage(name: str) -> str:
    """The progress stage of a build's images (the bar `generate` draws)."""
    return f"generate {name}"


def start_build(config: SynthConfig, out: str | Path, workspace: str | Path | None = None, device: str = "auto",
                argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Build synthetic set `config` into `out` in the background (`generate --config`); a live build
    of that name is returned instead of starting a second. `argv` replaces the command (tests)."""
    root = workspace_root(workspace)
    current = jobs.status(BUILD, config.name, root)
    if current["alive"]:
        return current
    settings = jobs.job_file(BUILD, config.name, ".config.json", root)
    write_json(settings, config.to_dict())
    command = list(argv) if argv is not None else synface_argv(
        "generate", "--config", str(settings), "--out", str(Path(out).absolute()), "--root", str(root.absolute()),
        "--device", device, "--json")
    return jobs.start(BUILD, config.name, command, root, info={"out": str(out), "total": config.num_images})


def build_status(name: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """The build job of set `name` (`synface.base.jobs.status`)."""
    return jobs.status(BUILD, name, workspace_root(workspace))


def images_done(job: dict[str, Any]) -> tuple[int, int]:
    """(images written, images in the set) of a build job, from its progress."""
    total = int(job["info"].get("total") or 0)
    return job["stages"].get(build_stage(job["key"]), (0, total))


def train_folds_option(train_folds: Sequence[int] | None) -> list[str]:
    """`--train-folds` for 0-based training folds (None: the option is not given)."""
    if train_folds is None:
        return []
    return ["--train-folds", ",".join(str(int(f) + 1) for f in train_folds) or "none"]


def start_register(path: str | Path, name: str, align: bool = True, train_folds: Sequence[int] | None = None,
                   workspace: str | Path | None = None, workers: int = 2) -> dict[str, Any]:
    """Register real set `name` from `path` in the background (`real add`, aligning image folders);
    a live registration of that name is returned instead of starting a second."""
    name = check_name(str(name).strip(), "real set name")
    root = workspace_root(workspace)
    command = synface_argv("real", "--root", str(root.absolute()), "add", str(Path(str(path).strip()).expanduser().absolute()),
                           "--name", name, "--workers", str(int(workers)), "--json",
                           *train_folds_option(train_folds), *([] if align else ["--no-align"]))
    return jobs.start(REGISTER, name, command, root, info={"path": str(path)})


def register_status(name: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """The registration job of real set `name` (`synface.base.jobs.status`)."""
    return jobs.status(REGISTER, name, workspace_root(workspace))
