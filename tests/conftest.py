"""Fixtures shared across the test packages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synface.generator import FaceGenerator
from tests.support import HAVE_DLIB, LEARNED_MODEL, LFW_ROOT, REPO


@pytest.fixture(scope="session")
def gen() -> FaceGenerator:
    """One CPU generator for the whole session: building the model costs seconds."""
    return FaceGenerator(device="cpu")


@pytest.fixture(autouse=True)
def data_dirs(monkeypatch, tmp_path_factory):
    """The app reads only the workspace and $SYNFACE_DATA_DIRS: app tests may read their own
    temporary folders and the LFW copy."""
    import os

    monkeypatch.setenv("SYNFACE_DATA_DIRS", os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(LFW_ROOT)]))


@pytest.fixture
def trainer_command(monkeypatch):
    """Set the command a queued or launched run starts with (a sleeper, an exit code) instead of
    `python -m synface train`: call the returned function with an argv. Starts as a no-op process."""
    import synface.runs.queue as queue

    def use(argv: list[str]) -> None:
        monkeypatch.setattr(queue, "train_argv", lambda run, root: list(argv))

    use([sys.executable, "-c", "pass"])
    return use


@pytest.fixture(scope="session")
def learned_model_workspace(tmp_path_factory) -> Path:
    """A workspace holding one learned face model, 'tiny': the first 12 people of LFW folds 1-3 (so
    LFW folds 4-5 test people it never saw), one photo each (fitted once per session). It is fitted
    the hard way: a fit in a subprocess is killed after its first landmark chunk (in the fit's
    staging folder), then the same fit resumes here; `fit_record.json` in the workspace
    says what the kill left and what the resume did (tests/fitting checks it). Skips without the
    LFW copy or dlib. Tests must not write into it: copy `face_models/` into their own workspace
    (`tests.support.copy_models`)."""
    if not ((LFW_ROOT / "images").is_dir() and HAVE_DLIB):
        pytest.skip(f"LFW copy not found at {LFW_ROOT} (set SYNFACE_LFW) or dlib missing")
    from synface.face.catalog import list_models, staging_folder
    from synface.fitting.build import fit_face_model

    ws = tmp_path_factory.mktemp("learned_ws")
    args = dict(people=12, folds=[1, 2, 3], max_photos_per_person=1, bank=12, chunk=4, framing_renders=60)
    code = ("from synface.fitting.build import fit_face_model; "
            f"fit_face_model({str(LFW_ROOT)!r}, {LEARNED_MODEL!r}, workspace={str(ws)!r}, workers=1, **{args!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = staging_folder(LEARNED_MODEL, ws) / "cache"  # where a fit builds until it swaps the model in
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(cache.glob("landmarks-*.npz")):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("landmarks-*.npz")}
    record = {"before": before, "finished_before": (ws / "face_models" / LEARNED_MODEL / "model.npz").exists(),
              "offered_before": [c["name"] for c in list_models(ws)], "stages": []}
    fit_face_model(LFW_ROOT, LEARNED_MODEL, workspace=ws, progress=lambda stage, d, t: record["stages"].append(stage), **args)
    done = ws / "face_models" / LEARNED_MODEL / "cache"
    record["after"] = {p.name: p.stat().st_mtime_ns for p in done.glob("landmarks-*.npz")}
    (ws / "fit_record.json").write_text(json.dumps(record))
    return ws
