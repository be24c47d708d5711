"""Which face models a workspace offers: the built-in head, and every learned model fitted into it.

A model is named by a string everywhere (CLI `--model`, the app's pickers, dataset cards):
"builtin" is the zero-data default; any other name is a folder `face_models/<name>/`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from synface.base.names import check_name, child_path
from synface.base.workspace import workspace_root
from synface.face.learned import MODEL_FILE, FaceModelError, LearnedFaceModel, check_format, read_card
from synface.face.model import MorphableModel

BUILTIN = "builtin"
MODELS_DIR = "face_models"


def models_root(workspace: str | Path | None = None) -> Path:
    return workspace_root(workspace) / MODELS_DIR


def model_folder(name: str, workspace: str | Path | None = None) -> Path:
    """The folder of learned model `name` (checked: one safe path component)."""
    if name == BUILTIN:
        raise FaceModelError("'builtin' is the built-in head, not a learned model folder")
    return child_path(models_root(workspace), check_name(name, "face model name"), "face model name")


def list_models(workspace: str | Path | None = None) -> list[dict]:
    """Cards of the finished learned models (a folder without a model file is an unfinished fit)."""
    root = models_root(workspace)
    out = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and (folder / MODEL_FILE).is_file():
                try:
                    card = read_card(folder)
                    check_format(folder)
                except FaceModelError as exc:
                    card = {"name": folder.name, "error": str(exc)}
                out.append({"name": folder.name, **card})
    return out


def model_names(workspace: str | Path | None = None) -> list[str]:
    """"builtin" first, then the learned models that load."""
    return [BUILTIN] + [c["name"] for c in list_models(workspace) if "error" not in c]


@lru_cache(maxsize=4)
def _load(folder: str, stamp: float) -> LearnedFaceModel:
    return LearnedFaceModel(folder)


def load_model(name: str | None, workspace: str | Path | None = None) -> MorphableModel | None:
    """The model called `name`: None for the built-in head (FaceGenerator's default), else the
    learned model, or a FaceModelError naming what is wrong. Loads are cached per file version."""
    if name in (None, "", BUILTIN):
        return None
    folder = model_folder(name, workspace)
    if not folder.is_dir():
        known = ", ".join(model_names(workspace))
        raise FaceModelError(f"no face model {name!r} in {models_root(workspace)} (known: {known}); "
                             "fit one with `python -m synface face-model fit --photos DIR --name NAME`")
    path = folder / MODEL_FILE
    stamp = path.stat().st_mtime if path.is_file() else 0.0
    return _load(str(folder), stamp)
