"""Fixtures shared across the test packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from synface.generator import FaceGenerator
from tests.support import HAVE_DLIB, LEARNED_MODEL, LFW_ROOT


@pytest.fixture(scope="session")
def gen() -> FaceGenerator:
    """One CPU generator for the whole session: building the model costs seconds."""
    return FaceGenerator(device="cpu")


@pytest.fixture(scope="session")
def learned_model_workspace(tmp_path_factory) -> Path:
    """A workspace holding one learned face model, 'tiny': the first 12 LFW people, one photo each
    (fitted once per session, 15-40 s). Skips without the LFW copy or dlib. Tests must not write
    into it: copy `face_models/` into their own workspace (`tests.support.copy_models`)."""
    if not ((LFW_ROOT / "images").is_dir() and HAVE_DLIB):
        pytest.skip(f"LFW copy not found at {LFW_ROOT} (set SYNFACE_LFW) or dlib missing")
    from synface.fitting.build import fit_face_model

    ws = tmp_path_factory.mktemp("learned_ws")
    fit_face_model(LFW_ROOT, LEARNED_MODEL, people=12, max_photos_per_person=1, bank=12, workspace=ws)
    return ws
