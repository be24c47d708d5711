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


def cli_error(capsys: pytest.CaptureFixture, argv: list[str], *needles: str, stdout_ok: bool = False) -> str:
    """Run `python -m synface ARGV` in-process; it must fail the way every bad input fails: exit code
    2, exactly one line on stderr (`error: ...`, containing each of `needles`; a progress bar of work
    that had started may precede it), no traceback and nothing on stdout (unless `stdout_ok`: `train`
    prints its run folder first). Returns that line."""
    from synface.cli.main import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    lines = [line for line in err.split("\n") if line.strip() and "\r" not in line and "%|" not in line]  # no bars
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and (stdout_ok or out == ""), (out, err)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
