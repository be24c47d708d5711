"""The queue checks a run before it makes its folder: scorable evaluation sets, no identity overlap."""

from __future__ import annotations

import json
import shutil

import pytest

from synface.data.errors import DataError
from synface.data.identity_overlap import IdentityOverlapError
from synface.runs.queue import launch, launch_run_subprocess, read_queue
from tests.data.identity_sets import PEOPLE, make_bin, make_lfw

@pytest.fixture
def sets(tmp_path):
    lfw = make_lfw(tmp_path / "lfw")
    train = tmp_path / "train"
    for name in PEOPLE[:2]:
        shutil.copytree(lfw / "images" / name, train / name)
    return lfw, train


def _runs(root):
    return sorted(p.name for p in (root / "runs").iterdir() if p.is_dir()) if (root / "runs").is_dir() else []


def test_an_overlap_is_refused_before_anything_is_written(tmp_path, sets, trainer_command):
    lfw, train = sets
    cfg = {"data": str(train), "epochs": 1, "name": "leaky", "eval_sets": [{"path": str(lfw), "name": "lfw"}]}
    ws = tmp_path / "ws"
    with pytest.raises(IdentityOverlapError, match=r"'lfw' shares 2 people .*2 of 6 pairs on them: Ann_Lee, Bob_Ray.*"
                                                   r"I accept identity overlap"):
        launch(cfg, root=ws, max_running=1)
    with pytest.raises(IdentityOverlapError):
        launch_run_subprocess(cfg, root=ws)
    assert _runs(ws) == [] and read_queue(ws) == []


def test_an_accepted_overlap_is_recorded_in_the_run(tmp_path, sets, trainer_command):
    lfw, train = sets
    cfg = {"data": str(train), "epochs": 1, "allow_overlap": True, "eval_sets": [{"path": str(lfw), "name": "lfw"}]}
    run_id, _ = launch(cfg, root=tmp_path, max_running=1)
    folder = tmp_path / "runs" / run_id
    check = json.loads((folder / "identity_check.json").read_text())
    assert check["overridden"] and check["sets"][0]["shared"] == PEOPLE[:2] and check["sets"][0]["pairs_on_train"] == 2
    assert json.loads((folder / "status.json").read_text())["identity_overlap"].startswith("identity overlap accepted")
    assert json.loads((folder / "config.json").read_text())["allow_overlap"] is True


def test_clean_runs_record_what_could_not_be_checked(tmp_path, sets, trainer_command):
    lfw, train = sets
    b = make_bin(tmp_path / "cfp_fp.bin")
    cfg = {"data": str(train), "epochs": 1, "eval_sets": [{"path": str(lfw), "folds": [1, 2]}, str(b)]}
    run_id, _ = launch(cfg, root=tmp_path, max_running=1)
    check = json.loads((tmp_path / "runs" / run_id / "identity_check.json").read_text())
    assert not check["overridden"] and check["summary"].startswith("no identity overlap found (1 of 2")
    assert check["notes"] == ["evaluation set 'cfp_fp' cannot be checked: a .bin holds images only, no names"]
    assert "identity_overlap" not in json.loads((tmp_path / "runs" / run_id / "status.json").read_text())


def test_an_unscorable_set_is_named_before_training(tmp_path, sets, trainer_command):
    _, train = sets
    nopairs = make_lfw(tmp_path / "nopairs", pairs=False)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 100)
    for spec, needle in ((str(nopairs), "evaluation set 'nopairs' cannot be scored: .*no pairs.txt"),
                         ({"path": str(junk), "name": "mine"}, f"evaluation set 'mine' cannot be scored: {junk}")):
        with pytest.raises(DataError, match=needle):
            launch({"data": str(train), "eval_sets": [spec]}, root=tmp_path / "ws", max_running=1)
    assert _runs(tmp_path / "ws") == []
