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

requires_lfw = pytest.mark.skipif(
    not ((LFW_ROOT / "images").is_dir() and HAVE_DLIB),
    reason=f"LFW copy not found at {LFW_ROOT} (set SYNFACE_LFW) or dlib missing",
)
