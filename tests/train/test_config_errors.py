"""Training inputs that would allocate gigabytes or train to nan, and checkpoints that cannot be
resumed, are one named line before any work (issue 16 items 3-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synface.train.config import ConfigError, config_from_dict, parse_overrides
from tests.support import cli_error


@pytest.mark.parametrize("override, key", [
    ("lr=nan", "lr"), ("lr=inf", "lr"), ("lr=.inf", "lr"), ("lr=-.inf", "lr"),
    ("head_s=nan", "head_s"), ("head_s=inf", "head_s"), ("head_m=nan", "head_m"), ("weight_decay=inf", "weight_decay"),
    ("embedding_dim=1000000000", "embedding_dim"), ("batch_size=1000000000", "batch_size"),
    ("input_size=100000", "input_size"), ("epochs=10000000", "epochs"),
])
def test_non_finite_and_absurd_values_are_refused(override, key) -> None:
    with pytest.raises(ConfigError, match=f"config '{key}' must be"):
        config_from_dict({"data": "x"}, parse_overrides([override]))


def test_sane_values_still_pass() -> None:
    cfg = config_from_dict({"data": "x"}, parse_overrides(["lr=1e-3", "head_s=64", "embedding_dim=4096"]))
    assert cfg.lr == 1e-3 and cfg.head_s == 64 and cfg.embedding_dim == 4096


def _images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(2):
        (root / f"p{i}").mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / f"p{i}" / f"{k}.jpg")
    return root


@pytest.mark.parametrize("override", ["embedding_dim=1000000000", "lr=nan", "lr=inf", "head_s=nan"])
def test_train_refuses_before_a_run_folder_is_made(capsys, tmp_path, override) -> None:
    data = _images(tmp_path / "data")
    run_dir = tmp_path / "run"
    cli_error(capsys, ["train", "--preset", "cpu-quick", "--set", f"data={data}", "--set", override,
                       "--run-dir", run_dir, "--no-progress"], override.split("=")[0])
    assert not run_dir.exists()


@pytest.mark.parametrize("content, needles", [
    ({"num_classes": 2, "model": {}}, ["lacks 'head', 'optimizer'", "not a resumable synface training checkpoint"]),
    ([1, 2], ["lacks 'model'"]),
    (b"garbage", ["cannot load checkpoint", "not a checkpoint of plain tensors"]),
    (b"", ["cannot load checkpoint", "empty or cut short"]),
])
def test_resume_from_a_checkpoint_without_its_keys(capsys, tmp_path, content, needles) -> None:
    data = _images(tmp_path / "data")
    run = tmp_path / "my-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"name": "r", "data": str(data), "batch_size": 2, "epochs": 1,
                                                 "workers": 0, "channels_last": False, "cache_images": False}))
    last = run / "checkpoints" / "last.pt"
    if isinstance(content, bytes):
        last.write_bytes(content)
    else:
        torch.save(content, last)
    line = cli_error(capsys, ["train", "--resume", run, "--no-progress"], str(last), *needles, stdout_ok=True)
    assert "weights_only=False" not in line  # never advise an unsafe load
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and str(last) in status["message"]
    assert not (run / "metrics.jsonl").read_text().count('"train"')  # no step ran


def test_train_data_by_dataset_name_finds_the_workspace_set(tmp_path, monkeypatch) -> None:
    """`--set data=NAME` means the workspace's dataset NAME (what `generate --name NAME` wrote);
    an existing path and an unknown name are left alone (the latter is then named as not found)."""
    from synface.train.run_config import workspace_dataset

    (tmp_path / "ws" / "datasets" / "Syn_4_2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    overrides = {"data": "Syn_4_2"}
    workspace_dataset(overrides, tmp_path / "ws")
    assert overrides["data"] == str(tmp_path / "ws" / "datasets" / "Syn_4_2")
    (tmp_path / "Syn_4_2").mkdir()  # a folder of that name where the command runs wins
    overrides = {"data": "Syn_4_2"}
    workspace_dataset(overrides, tmp_path / "ws")
    assert overrides["data"] == "Syn_4_2"
    for value in ("nope", "../Syn_4_2", ".."):
        overrides = {"data": value}
        workspace_dataset(overrides, tmp_path / "ws")
        assert overrides["data"] == value
