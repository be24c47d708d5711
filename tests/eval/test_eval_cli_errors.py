"""`eval`: bad options and files that are not checkpoints are one named line (issue 16 items 3-4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support import cli_error


@pytest.fixture
def lfw(tmp_path: Path) -> Path:
    (tmp_path / "lfw").mkdir()
    return tmp_path / "lfw"


@pytest.mark.parametrize("option, value, needle", [
    ("--center-crop", "0", "(0, 1], got 0"), ("--center-crop", "1.5", "got 1.5"), ("--center-crop", "nan", "got nan"),
    ("--far", "0", "(0, 1), got 0"), ("--far", "1", "got 1"), ("--far", "-0.1", "got -0.1"), ("--far", "nan", "got nan"),
    ("--batch", "0", "got 0"), ("--batch", "-5", "got -5"),
])
def test_eval_refuses_out_of_range_options(capsys, tmp_path, lfw, option, value, needle) -> None:
    cli_error(capsys, ["eval", "--checkpoint", tmp_path / "c.pt", "--lfw", lfw, option, value], option, needle)


@pytest.mark.parametrize("content, needles", [
    ({"foo": 1}, ["not a synface training checkpoint", "'model', 'config'"]),
    ([1, 2], ["lacks 'model', 'config'"]),
    ({"model": {}, "config": {}}, ["names no known backbone", "got None"]),
    ({"model": {}, "config": {"backbone": "compact", "embedding_dim": "big"}}, ["'embedding_dim'", "'big'"]),
    ({"model": {"x": torch.zeros(1)}, "config": {"backbone": "compact"}},
     ["do not fit CompactNet", "missing (e.g. ", "1 unexpected (e.g. x)"]),
    (b"garbage", ["cannot load checkpoint", "not a checkpoint of plain tensors"]),
])
def test_eval_names_a_checkpoint_without_the_expected_keys(capsys, tmp_path, lfw, content, needles) -> None:
    path = tmp_path / "c.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    line = cli_error(capsys, ["eval", "--checkpoint", path, "--lfw", lfw], str(path), *needles)
    assert "weights_only=False" not in line and len(line) < 400


def test_eval_names_a_missing_checkpoint_and_a_folder(capsys, tmp_path, lfw) -> None:
    cli_error(capsys, ["eval", "--checkpoint", tmp_path / "none.pt", "--lfw", lfw], "checkpoint not found",
              str(tmp_path / "none.pt"))
    cli_error(capsys, ["eval", "--checkpoint", tmp_path, "--lfw", lfw], str(tmp_path), "is a folder")
