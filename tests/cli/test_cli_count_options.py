"""Counts of 0 or less, absurd seeds and output files under a regular file are refused before
any work, naming the option (faults the fault audit (tests/audit) found); a face model whose
model file is damaged is not shown as if it were usable, and never unpickled."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from synface.runs.registry import create_run
from tests.support import cli_error


@pytest.mark.parametrize("argv, option", [
    (["bench", "render", "--batch", "0"], "--batch"),
    (["bench", "render", "--batch", "-5"], "--batch"),
    (["bench", "render", "--repeats", "0"], "--repeats"),
    (["bench", "generate", "--images", "0"], "--images"),
    (["bench", "generate", "--samples", "0"], "--samples"),
    (["bench", "train", "--steps", "0"], "--steps"),
    (["bench", "spread", "--draws", "-1"], "--draws"),
    (["reproduce", "table3", "--lfw", "x", "--seeds", "0"], "--seeds"),
    (["reproduce", "table3", "--lfw", "x", "--seeds", "1000000", "--dry-run"], "--seeds"),
])
def test_counts_are_refused_naming_the_option(capsys, argv, option) -> None:
    line = cli_error(capsys, argv, option)
    assert "positive integer" in line or "at most" in line


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("a regular file")
    return path


def test_output_files_under_a_regular_file_are_refused_first(capsys, tmp_path, afile) -> None:
    root = tmp_path / "ws"
    run = create_run({"data": "/nowhere", "epochs": 1, "name": "toy"}, root=root)
    (tmp_path / "lfw").mkdir()
    cli_error(capsys, ["eval", "--checkpoint", tmp_path / "c.pt", "--lfw", tmp_path / "lfw", "--out", afile / "r.json"],
              "--out", f"{afile} is a file, not a folder")
    cli_error(capsys, ["runs", "--root", root, "export", run.id, "--embeddings", afile / "e.npz"], "--embeddings",
              str(afile))
    cli_error(capsys, ["runs", "--root", root, "export", run.id, "--embeddings", tmp_path / "e.npz", "--batch", "0"],
              "--batch")
    cli_error(capsys, ["runs", "--root", root, "list", "--csv", afile / "r.csv"], "--csv", str(afile))
    cli_error(capsys, ["face-model", "preview", "m", "--out", afile / "p.png", "--workspace", root], "--out", str(afile))
    assert afile.read_text() == "a regular file"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("kind", ["garbage", "pickle", "missing"])
def test_show_refuses_a_model_whose_file_is_damaged(capsys, tmp_path, kind) -> None:
    folder = tmp_path / "ws" / "face_models" / "m"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"name": "m", "kind": "learned"}))
    marker = tmp_path / "payload-ran"
    if kind == "garbage":
        (folder / "model.npz").write_bytes(b"PK\x03\x04garbage")
    elif kind == "pickle":
        evil = np.empty(1, dtype=object)
        evil[0] = _Payload(marker)
        np.savez(folder / "model.npz", format=np.array([2]), payload=evil)
        assert pickle.dumps(evil[0])  # the payload is real: unpickling it would create the marker
    cli_error(capsys, ["face-model", "show", "m", "--workspace", tmp_path / "ws"], "model.npz")
    assert not marker.exists()
