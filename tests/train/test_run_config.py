"""One config for a new run, whoever launches it (the Train page, `python -m synface train`)."""

from __future__ import annotations

import pytest

from synface.train.config import PRESETS, ConfigError
from synface.train.run_config import run_config


@pytest.fixture()
def dataset(tmp_path):
    folder = tmp_path / "ws" / "datasets" / "syn_small"
    folder.mkdir(parents=True)
    return folder


def test_a_shorter_run_keeps_the_presets_schedule_inside_its_epochs(dataset):
    cfg = run_config("cpu-quick", overrides={"data": str(dataset), "epochs": 3})
    assert cfg.epochs == 3 and cfg.milestones == [m for m in PRESETS["cpu-quick"]["milestones"] if m < 3]
    assert cfg.warmup_epochs == PRESETS["cpu-quick"]["warmup_epochs"]
    one = run_config("paper", overrides={"data": str(dataset), "epochs": 1})
    assert one.milestones == [] and one.warmup_epochs == 0.0
    as_preset = run_config("cpu-quick", overrides={"data": str(dataset)})  # epochs not changed: the preset as it is
    assert as_preset.milestones == PRESETS["cpu-quick"]["milestones"]


def test_what_the_launch_sets_itself_is_kept(dataset, tmp_path):
    cfg = run_config("cpu-quick", overrides={"data": str(dataset), "epochs": 2, "milestones": [5], "warmup_epochs": 0})
    assert cfg.milestones == [5] and cfg.warmup_epochs == 0
    config_file = tmp_path / "run.yaml"
    config_file.write_text("backbone: compact\nepochs: 8\nmilestones: [6, 7]\n")
    from_file = run_config(config_file=config_file, overrides={"data": str(dataset), "epochs": 4})
    assert from_file.epochs == 4 and from_file.milestones == [6, 7]  # a config file's schedule is its own


def test_a_dataset_is_found_by_its_workspace_name(dataset, tmp_path):
    cfg = run_config("cpu-quick", overrides={"data": "syn_small"}, root=tmp_path / "ws")
    assert cfg.data == str(dataset)
    with pytest.raises(ConfigError, match="'data': path not found: no_such_set"):
        run_config("cpu-quick", overrides={"data": "no_such_set"}, root=tmp_path / "ws")


def test_overlap_and_registered_sets(dataset, tmp_path):
    cfg = run_config("cpu-quick", overrides={"data": str(dataset)}, allow_overlap=True, root=tmp_path / "ws")
    assert cfg.allow_overlap is True
    with pytest.raises(ValueError, match="no verification sets are registered"):
        run_config("cpu-quick", overrides={"data": str(dataset)}, eval_names=["all"], root=tmp_path / "ws")
    with pytest.raises(ValueError, match="nosuch"):
        run_config("cpu-quick", overrides={"data": str(dataset)}, real="nosuch", root=tmp_path / "ws")
