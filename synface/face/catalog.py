"""Which face models a workspace offers: the built-in head, and every learned model fitted into it.

A model is named by a string everywhere (CLI `--model`, the app's pickers, dataset cards):
"builtin" is the zero-data default; any other name is a folder `face_models/<name>/`, and the
folder's name is the model's name (a copied folder is its own model, whatever its card says).
Every listing, show, picker and load checks the folder the same way
(`synface.face.learned.check_model_folder`); a folder that fails is listed as damaged, with the
reason, and can be removed.

Beside the model folders, hidden entries belong to fits: `.<name>.fitting/` is where a fit builds
(and keeps its resumable cache) until it swaps the finished folder in, and `.<name>.lock` is held
by the one process fitting or removing that name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from synface.base import locks
from synface.base.names import check_name, child_path
from synface.base.workspace import workspace_root
from synface.face.learned import CARD_FILE, MODEL_FILE, FaceModelError, LearnedFaceModel, check_model_folder
from synface.face.model_files import SOURCES_FILE, model_version

BUILTIN = "builtin"
MODELS_DIR = "face_models"


class FaceModelBusy(locks.Locked):
    """Another live process is fitting (or removing) this model name; the message names its pid."""


def models_root(workspace: str | Path | None = None) -> Path:
    return workspace_root(workspace) / MODELS_DIR


def model_folder(name: str, workspace: str | Path | None = None) -> Path:
    """The folder of learned model `name` (checked: one safe path component)."""
    if name == BUILTIN:
        raise FaceModelError("'builtin' is the built-in head, not a learned model folder")
    return child_path(models_root(workspace), check_name(name, "face model name"), "face model name")


def staging_folder(name: str, workspace: str | Path | None = None) -> Path:
    """Where a fit of `name` builds its new folder (and its cache) before swapping it in."""
    return model_folder(name, workspace).with_name(f".{name}.fitting")


@contextlib.contextmanager
def hold_name(name: str, workspace: str | Path | None = None, doing: str = "fitted") -> Iterator[None]:
    """Hold model name `name` for this process (a fit or a removal); FaceModelBusy naming the pid
    of the live process that holds it otherwise (the kernel frees the lock of a killed one)."""
    folder = model_folder(name, workspace)
    folder.parent.mkdir(parents=True, exist_ok=True)

    def refusal(who) -> str:
        return (f"face model {name!r} is being {doing} by {locks.holder_text(who)}; a second fit or removal of it "
                "is refused. Wait for it to end, or stop it")

    with locks.hold(folder.with_name(f".{name}.lock"), refusal, FaceModelBusy):
        yield


def _stamp(folder: Path) -> tuple:
    """What a check of `folder` depends on: each file's size, modification time and inode."""
    out: list[Any] = [folder.is_symlink()]
    for file in (CARD_FILE, MODEL_FILE, SOURCES_FILE):
        try:
            st = os.lstat(folder / file)
            out.append((st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


@lru_cache(maxsize=256)
def _checked(folder: str, stamp: tuple) -> tuple[dict | None, str | None]:
    """(card, None) of a folder that passes the check, with `version` the model's own (its folder's
    name and its arrays' digest, as generation records it); (None, the reason) otherwise."""
    try:
        files = check_model_folder(folder)
    except FaceModelError as exc:
        return None, str(exc)
    return {**files.card, "version": model_version(Path(folder).name, files.arrays)}, None


def list_models(workspace: str | Path | None = None) -> list[dict]:
    """Every learned model folder of the workspace, in name order: its card with `name` = the
    folder's name, or, for a folder that does not pass the check, {"name", "damaged": True,
    "error": the reason}."""
    root = models_root(workspace)
    out = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder.is_dir() or folder.is_symlink()):
                continue  # a fit's staging folder or lock
            card, problem = _checked(str(folder), _stamp(folder))
            if card is None:  # then problem says why
                out.append({"name": folder.name, "damaged": True, "error": problem})
            else:
                out.append({**card, "name": folder.name, "card_name": card.get("name")})
    return out


def model_names(workspace: str | Path | None = None) -> list[str]:
    """"builtin" first, then the learned models that pass the check."""
    return [BUILTIN] + [c["name"] for c in list_models(workspace) if not c.get("damaged")]


def damaged_models(workspace: str | Path | None = None) -> list[dict]:
    """{"name", "error"} of each model folder that does not pass the check."""
    return [{"name": c["name"], "error": c["error"]} for c in list_models(workspace) if c.get("damaged")]


def model_card(name: str, workspace: str | Path | None = None) -> dict:
    """The checked card of learned model `name`; a FaceModelError naming what is wrong otherwise."""
    folder = _existing(name, workspace)
    card, problem = _checked(str(folder), _stamp(folder))
    if card is None:  # then problem says why
        raise FaceModelError(problem)
    return card


def remove_model(name: str, workspace: str | Path | None = None) -> Path:
    """Delete learned model `name` (its folder: a damaged one, say); FaceModelBusy while a fit of
    that name runs. The folder is first renamed aside, so a kill never leaves half a model under
    its name. Returns the folder that was removed."""
    folder = _existing(name, workspace)
    with hold_name(name, workspace, doing="fitted or removed"):
        if folder.is_symlink():
            folder.unlink()
            return folder
        aside = folder.with_name(f".{name}.removing")
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(folder, aside)
        shutil.rmtree(aside)
    return folder


def _existing(name: str, workspace: str | Path | None) -> Path:
    folder = model_folder(name, workspace)
    if not os.path.lexists(folder):
        known = ", ".join(model_names(workspace))
        raise FaceModelError(f"no face model {name!r} in {models_root(workspace)} (known: {known}); "
                             "fit one with `python -m synface face-model fit --photos DIR --name NAME`")
    return folder


@lru_cache(maxsize=4)
def _load(folder: str, stamp: tuple) -> LearnedFaceModel:
    return LearnedFaceModel(folder)


def load_model(name: str | None, workspace: str | Path | None = None) -> LearnedFaceModel | None:
    """The model called `name`: None for the built-in head (FaceGenerator's default), else the
    learned model, or a FaceModelError naming what is wrong. Loads are cached per file version."""
    if name in (None, "", BUILTIN):
        return None
    folder = _existing(name, workspace)
    return _load(str(folder), _stamp(folder))
