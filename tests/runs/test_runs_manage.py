"""Archiving and deleting runs (library and `python -m synface runs`): active runs are refused,
only the run folder ever goes, and whatever referred to a deleted run keeps working."""

from __future__ import annotations

import hashlib
import json
import os
import socket

import pytest

from synface.cli.main import main
from synface.analysis.run_results import results_frame
from synface.runs.manage import archive_run, delete_run, unarchive_run
from synface.runs.registry import ARCHIVE_DIR, find_run, list_runs
from synface.runs.run import Run
from tests.results_support import results_workspace, template_datasets
from tests.support import cli_error


@pytest.fixture
def ws(tmp_path_factory, tmp_path):
    return tmp_path, results_workspace(tmp_path_factory, tmp_path)


def _digest() -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in template_datasets()}


def test_archive_hides_a_run_and_unarchive_brings_it_back(ws):
    root, ids = ws
    moved = archive_run(ids["b"], root)
    assert moved.path == root / "runs" / ARCHIVE_DIR / ids["b"] and (moved.path / "eval.json").is_file()
    assert ids["b"] not in [s.id for s in list_runs(root)]
    assert [s.archived for s in list_runs(root, include_archived=True) if s.id == ids["b"]] == [True]
    assert ids["b"] not in set(results_frame(root)["run_id"])
    assert ids["b"] in set(results_frame(root, include_archived=True)["run_id"])
    assert find_run(ids["b"], root).path == moved.path  # archived runs are still found by id
    back = unarchive_run(ids["b"], root)
    assert back.path == root / "runs" / ids["b"] and ids["b"] in [s.id for s in list_runs(root)]


def test_delete_removes_only_the_run_folder(ws):
    root, ids = ws
    before = _digest()
    assert before  # the datasets the runs trained on exist
    path = delete_run(ids["a"], root)
    assert not path.exists() and ids["a"] not in [s.id for s in list_runs(root, include_archived=True)]
    assert _digest() == before  # every dataset file is still there, unchanged
    assert not any((root / "runs" / "_trash").iterdir())
    with pytest.raises(FileNotFoundError, match="no run"):
        find_run(ids["a"], root)


def test_delete_and_archive_refuse_what_they_must_not_touch(ws, tmp_path_factory):
    root, ids = ws
    run = Run(root / "runs" / ids["b"])
    run.write_status(status="running", pid=os.getpid(), host=socket.gethostname())
    for verb in (delete_run, archive_run):
        with pytest.raises(ValueError, match=f"it is running \\(pid {os.getpid()}\\); stop it first"):
            verb(ids["b"], root)
    run.write_status(status="queued", pid=None)
    with pytest.raises(ValueError, match="it is queued"):
        delete_run(ids["b"], root)
    assert (run.path / "config.json").is_file()
    run.write_status(status="finished")

    (run.path / "data").mkdir()
    (run.path / "data" / "dataset.json").write_text("{}")
    with pytest.raises(ValueError, match="marks a dataset inside the run folder"):
        delete_run(ids["b"], root)
    (run.path / "data" / "dataset.json").unlink()
    cfg = run.config()
    run.write_config({**cfg, "real_root": str(run.path / "data")})
    with pytest.raises(ValueError, match="its config uses .*inside the run folder"):
        delete_run(ids["b"], root)
    assert run.path.is_dir()

    elsewhere = tmp_path_factory.mktemp("elsewhere") / "myrun"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match="only runs inside"):
        delete_run(elsewhere, root)
    link = root / "runs" / "20990101-000000-link"
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="is a link"):
        delete_run(link.name, root)
    assert (elsewhere / "config.json").is_file()


def test_runs_cli_filter_compare_archive_delete_export(ws, capsys, tmp_path_factory):
    root, ids = ws
    out_dir = tmp_path_factory.mktemp("exports")
    assert main(["runs", "list", "--root", str(root), "--filter", "psi=0.8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["run_id"] for r in rows] == [ids["b"]] and rows[0]["tar_1e-3"] is not None
    assert main(["runs", "--root", str(root), "list", "--filter", "status=finished", "--csv", str(out_dir / "r.csv")]) == 0
    text = capsys.readouterr().out
    assert "TAR@FAR=1e-4 (%)" in text and "evaluation off" in text and ids["stopped"] not in text
    assert ids["off"] in (out_dir / "r.csv").read_text()
    assert main(["runs", "--root", str(root)]) == 0
    assert "evaluation off" in capsys.readouterr().out

    assert main(["runs", "compare", ids["a"], ids["b"], "--root", str(root)]) == 0
    text = capsys.readouterr().out
    assert "psi: null | 0.8" in text and "TAR@FAR=1e-3 (%)" in text

    assert main(["runs", "export", ids["a"], "--root", str(root), "--embeddings", str(out_dir / "e.npz"),
                 "--checkpoint", str(out_dir / "c.pt")]) == 0
    assert "40 embeddings (toy, dim 64)" in capsys.readouterr().out
    assert (out_dir / "e.npz").is_file() and (out_dir / "c.pt").is_file()

    assert main(["runs", "archive", ids["off"], "--root", str(root)]) == 0
    assert main(["runs", "delete", ids["a"], "--root", str(root)]) == 0
    assert "datasets it used are untouched" in capsys.readouterr().out
    cli_error(capsys, ["runs", "compare", ids["a"], ids["b"], "--root", root], "no run", ids["a"])
    cli_error(capsys, ["runs", "list", "--filter", "colour=red", "--root", root], "unknown key 'colour'")
    cli_error(capsys, ["runs", "list", "--filter", "psi", "--root", root], "KEY=VALUE")
    cli_error(capsys, ["runs", "export", ids["b"], "--root", root], "--embeddings")
    Run(root / "runs" / ids["b"]).write_status(status="running", pid=os.getpid(), host=socket.gethostname())
    cli_error(capsys, ["runs", "delete", ids["b"], "--root", root], "is running", "stop it first")
    # a batch with one refused run is refused whole: the other run stays
    cli_error(capsys, ["runs", "delete", ids["stopped"], ids["b"], "--root", root], "is running")
    cli_error(capsys, ["runs", "archive", ids["stopped"], ids["b"], "--root", root], "is running")
    assert (root / "runs" / ids["stopped"] / "config.json").is_file()
