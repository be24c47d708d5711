"""A run folder a trainer holds is never archived or deleted, whatever its status says, and a run
folder that is gone is never re-created (it would be a run without its config, in no list)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from synface.eval.verification import kfold_verification
from synface.runs.manage import archive_run, delete_run, unarchive_run
from synface.runs.registry import create_run, list_runs
from synface.runs.run import Run
from synface.train.loop import train
from tests.train.test_train import make_synthetic, tiny


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), ids=4, per=4)


def test_a_held_folder_is_refused_whatever_its_status(tmp_path):
    run = create_run({"name": "r"}, root=tmp_path)
    with run.lock():  # a trainer that has just started: status still 'created'
        for status in ("created", "finished", "stopped", "failed"):
            run.write_status(status=status)
            for verb in (delete_run, archive_run):
                with pytest.raises(ValueError, match=f"training process {os.getpid()} holds its folder"):
                    verb(run.id, tmp_path)
            with pytest.raises(ValueError, match="holds its folder"):
                delete_run(run.id, tmp_path, check_only=True)
    assert run.config_path.is_file() and [s.id for s in list_runs(tmp_path)] == [run.id]
    archived = archive_run(run.id, tmp_path)  # free again: it moves
    with archived.lock():
        with pytest.raises(ValueError, match="holds its folder"):
            unarchive_run(archived.id, tmp_path)
    back = unarchive_run(archived.id, tmp_path)
    assert delete_run(back, tmp_path) == run.path and not run.path.exists()


def test_a_trainer_that_takes_the_folder_during_a_move_keeps_it(tmp_path, monkeypatch):
    """The checks saw a free folder; a trainer took it before the rename: the move holds the lock
    itself, so it is refused instead of moving the folder from under the trainer."""
    run = create_run({"name": "r"}, root=tmp_path)
    monkeypatch.setattr(Run, "locked_by", lambda self: None)
    with run.lock():
        for verb in (delete_run, archive_run):
            with pytest.raises(ValueError, match="holds its folder"):
                verb(run.id, tmp_path)
    assert run.config_path.is_file()


def test_writes_into_a_folder_that_is_gone_do_not_re_create_it(tmp_path):
    run = create_run({"name": "r"}, root=tmp_path)
    shutil.rmtree(run.path)
    same = np.repeat([True, False], 40)
    result = kfold_verification(np.where(same, 1.0, 0.0) + np.linspace(0, 0.5, 80), same, np.arange(80) % 2)
    writes = [lambda: run.write_status(status="running"), lambda: run.append_metric({"type": "train"}),
              lambda: run.write_config({"name": "r"}), lambda: run.tag_study("table1", {}),
              lambda: run.write_file("identity_check.json", {}),
              lambda: run.record_eval("lfw", result, epoch=1, step=1), lambda: run.lock().__enter__()]
    for write in writes:
        with pytest.raises(FileNotFoundError, match="the run folder is gone") as info:
            write()
        assert info.value.filename == str(run.path) and not run.path.exists()


def test_a_trainer_refuses_a_folder_deleted_before_it_started(synthetic, tmp_path):
    cfg = tiny(synthetic, epochs=1, steps_per_epoch=1, batch_size=4)
    run = create_run(cfg, root=tmp_path)
    delete_run(run.id, tmp_path)  # status 'created', no trainer yet: the deletion is allowed
    for resume in (False, True):
        with pytest.raises(FileNotFoundError, match="the run folder is gone"):
            train(cfg, run.path, resume=resume, make_folder=False)
    assert not run.path.exists() and list_runs(tmp_path) == []
    assert train(cfg, tmp_path / "new", make_folder=True)["status"] == "finished"  # a new folder by path is made


def test_a_folder_removed_under_a_running_trainer_fails_the_run_and_stays_gone(synthetic, tmp_path):
    cfg = tiny(synthetic, epochs=2, steps_per_epoch=2, batch_size=4)
    run = create_run(cfg, root=tmp_path)

    def remove_by_hand(step: int, total: int) -> None:
        if step == 1:
            shutil.rmtree(run.path)

    with pytest.raises(FileNotFoundError, match="the run folder is gone") as info:
        train(cfg, run.path, progress=remove_by_hand, make_folder=False)
    assert info.value.filename == str(run.path) and not run.path.exists()


def test_the_runs_verbs_name_the_trainer_that_holds_the_folder(tmp_path, capsys):
    from tests.support import cli_error

    run = create_run({"name": "r"}, root=tmp_path)
    with run.lock():
        cli_error(capsys, ["runs", "--root", tmp_path, "delete", run.id], f"training process {os.getpid()}",
                  "holds its folder")
        cli_error(capsys, ["runs", "--root", tmp_path, "archive", run.id], "holds its folder")
    assert run.config_path.is_file()
