"""Paths and markers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

#: the repository root (app.py, pages/, synface/)
REPO = Path(__file__).resolve().parents[1]
#: the shared LFW copy beside the checkout (SYNFACE_LFW overrides); absent in a user's fresh clone
LFW_ROOT = Path(os.environ.get("SYNFACE_LFW", REPO.parent / "shared" / "data" / "lfw"))
HAVE_DLIB = importlib.util.find_spec("dlib") is not None

#: the learned face model the `learned_model_workspace` fixture (conftest.py) fits
LEARNED_MODEL = "tiny"

requires_lfw = pytest.mark.skipif(
    not ((LFW_ROOT / "images").is_dir() and HAVE_DLIB),
    reason=f"LFW copy not found at {LFW_ROOT} (set SYNFACE_LFW) or dlib missing",
)


def copy_models(workspace: Path, into: Path) -> Path:
    """Copy the learned face models of `workspace` (without their fit caches) into workspace
    `into`; returns `into`."""
    import shutil

    shutil.copytree(workspace / "face_models", into / "face_models", ignore=shutil.ignore_patterns("cache"),
                    dirs_exist_ok=True)
    return into
