"""The runs workbench in the library: the results table of real tiny runs, TAR@FAR from eval.json
and the ROC, filters, curves, config differences, and embedding / checkpoint export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synface.analysis.run_results import (
    config_diff,
    display_frame,
    filter_frame,
    filter_options,
    metric_curves,
    results_frame,
    roc_frame,
)
from synface.eval.verification import kfold_verification, tar_at_far_from_roc
from synface.runs.manage import delete_run
from synface.runs.registry import list_runs
from synface.runs.run import Run
from tests.results_support import results_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("results_ws")
    return root, results_workspace(tmp_path_factory, root)


def _row(frame, run_id):
    rows = frame[frame["run_id"] == run_id]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_every_run_is_a_row_with_what_it_trained_on_and_how_it_scored(ws):
    root, ids = ws
    frame = results_frame(root)
    assert set(frame["run_id"]) == set(ids.values())
    a, b = _row(frame, ids["a"]), _row(frame, ids["b"])
    ev = json.loads((root / "runs" / ids["a"] / "eval.json").read_text())["toy"]
    assert a["evaluation"] == "on" and a["eval_set"] == "toy" and a["num_pairs"] == 20
    assert a["acc"] == pytest.approx(100 * ev["mean_accuracy"]) and a["std"] == pytest.approx(100 * ev["std_accuracy"])
    assert a["tar_1e-3"] == pytest.approx(100 * ev["tar_at_far"])  # the exact value eval.json holds
    assert a["tar_1e-4"] <= a["tar_1e-3"] and a["far_floor"] == pytest.approx(1 / ev["num_impostor"])
    assert (a["dataset"], a["face_model"], a["im"], a["backbone"], a["psi"], a["scale"]) == \
        ("Syn_5_6_IM", "builtin", "yes", "compact", "none", "tiny")
    assert b["dataset"] == "Syn_5_6_IM + lfw_like" and b["psi"] == "0.8" and b["scale"] == "custom"

    shown = display_frame(frame).set_index("run")
    assert "TAR@FAR=1e-3 (%)" in shown and "TAR@FAR=1e-4 (%)" in shown
    assert shown.loc[ids["off"], "accuracy (%)"] == "evaluation off"  # no blank, no NaN
    assert shown.loc[ids["stopped"], "accuracy (%)"] == "not evaluated yet"
    assert " ± " in shown.loc[ids["a"], "accuracy (%)"]
    off = [s for s in list_runs(root) if s.id == ids["off"]][0]
    assert off.evaluation == "off" and off.best_accuracy is None


def test_a_stopped_runs_status_and_message_agree(ws):
    root, ids = ws
    status = Run(root / "runs" / ids["stopped"]).status()
    assert status["status"] == "stopped"
    assert f"epoch {status['epoch']} " in status["message"] and f"step {status['step']};" in status["message"]
    summary = [s for s in list_runs(root) if s.id == ids["stopped"]][0]
    assert summary.status == "stopped" and summary.message == status["message"] and summary.epoch == status["epoch"]


def test_tar_at_far_from_the_roc():
    fpr, tpr = [0.0, 0.0, 5e-4, 2e-3, 1.0], [0.0, 0.5, 0.6, 0.8, 1.0]
    assert tar_at_far_from_roc(fpr, tpr, 1e-3) == 0.6
    assert tar_at_far_from_roc(fpr, tpr, 1e-4) == 0.5
    assert tar_at_far_from_roc([], [], 1e-3) is None
    # on continuous scores the full ROC gives what the evaluation computes; a thinned one never more
    rng = np.random.default_rng(0)
    issame = np.r_[np.ones(3000, bool), np.zeros(30000, bool)]
    scores = np.r_[rng.normal(0.6, 0.2, 3000), rng.normal(0.0, 0.2, 30000)]
    folds = np.arange(len(scores)) % 10
    for far in (1e-3, 1e-4):
        result = kfold_verification(scores, issame, folds, far)
        full = result.to_dict(roc_points=None)["roc"]
        thin = result.to_dict(roc_points=50)["roc"]
        assert tar_at_far_from_roc(full["fpr"], full["tpr"], far) == pytest.approx(result.tar_at_far)
        assert tar_at_far_from_roc(thin["fpr"], thin["tpr"], far) <= result.tar_at_far


def test_filters(ws):
    root, ids = ws
    frame = results_frame(root)
    options = filter_options(frame)
    assert options["psi"] == ["0.8", "none"] and "tiny" in options["scale"] and options["backbone"] == ["compact"]
    assert list(filter_frame(frame, {"psi": ["0.8"]})["run_id"]) == [ids["b"]]
    assert list(filter_frame(frame, {"scale": ["tiny"], "status": ["finished"]})["run_id"]) == [ids["a"]]
    assert len(filter_frame(frame, {"psi": [], "dataset": None})) == len(frame)  # no choice keeps every row
    with pytest.raises(ValueError, match="unknown filter 'colour'.*backbone"):
        filter_frame(frame, {"colour": ["red"]})


def test_roc_curves_config_diff_and_curves(ws):
    root, ids = ws
    roc = roc_frame([ids["a"], ids["b"], "20200101-000000-gone"], root)
    assert set(roc["run_id"]) == {ids["a"], ids["b"]} and set(roc["eval_set"]) == {"toy"}
    assert roc["fpr"].between(0, 1).all() and roc["tpr"].between(0, 1).all()
    diff = config_diff([ids["a"], ids["b"]], root).set_index("key")
    assert {"lr", "psi", "real_root"} <= set(diff.index) and "backbone" not in diff.index and "name" not in diff.index
    assert diff.loc["lr", ids["a"]] == "0.05" and diff.loc["lr", ids["b"]] == "0.02"
    loss, acc = metric_curves([ids["a"], ids["b"]], root)
    assert set(loss["run_id"]) == {ids["a"], ids["b"]} and loss["loss"].notna().all()
    assert sorted(acc[acc["run_id"] == ids["a"]]["epoch"]) == [1, 2]  # evaluated after each epoch
    with pytest.raises(FileNotFoundError, match="gone"):
        config_diff([ids["a"], "20200101-000000-gone"], root)


def test_export_embeddings_and_checkpoint(ws, tmp_path):
    import pyarrow.parquet as pq

    from synface.analysis.run_export import export_checkpoint, export_embeddings
    from synface.models.checkpoint import load_checkpoint_model

    root, ids = ws
    seen = []
    info = export_embeddings(ids["a"], tmp_path / "a.npz", root, progress=lambda d, t: seen.append((d, t)))
    assert info["images"] == 40 and info["eval_set"] == "toy" and seen[-1] == (40, 40)
    z = np.load(tmp_path / "a.npz", allow_pickle=False)
    emb = z["embeddings"]
    assert emb.shape == (40, 64) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert np.allclose(z["score"], np.sum(emb[0::2] * emb[1::2], axis=1), atol=1e-5)
    # the exported embeddings score exactly as the run's own last evaluation did
    ev = json.loads((root / "runs" / ids["a"] / "eval.json").read_text())["toy"]
    again = kfold_verification(z["score"].astype(float), z["issame"], z["fold"])
    assert again.mean_accuracy == pytest.approx(ev["mean_accuracy"])
    assert json.loads(str(z["meta"]))["run"] == ids["a"]

    export_embeddings(ids["a"], tmp_path / "a.parquet", root)
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.num_rows == 40 and set(table["side"].to_pylist()) == {"a", "b"}
    assert np.allclose(np.stack(table["embedding"].to_numpy(zero_copy_only=False)), emb)

    out = export_checkpoint(ids["a"], tmp_path / "a.pt", root)
    model, cfg = load_checkpoint_model(out["path"])
    assert cfg["backbone"] == "compact" and model.input_size == 56
    assert out["bytes"] < (root / "runs" / ids["a"] / "checkpoints" / "last.pt").stat().st_size  # no optimiser

    with pytest.raises(ValueError, match="must end in .npz or .parquet"):
        export_embeddings(ids["a"], tmp_path / "a.csv", root)
    with pytest.raises(ValueError, match="evaluation off"):
        export_embeddings(ids["off"], tmp_path / "off.npz", root)
    with pytest.raises(ValueError, match="no evaluation set 'lfw'.*toy"):
        export_embeddings(ids["a"], tmp_path / "x.npz", root, eval_set="lfw")
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "off.npz").exists()


def test_tables_that_counted_a_deleted_run_simply_stop_counting_it(ws, tmp_path):
    import shutil

    from synface.analysis.tables import build_table

    root, ids = ws
    mine = tmp_path / "ws"
    shutil.copytree(root / "runs", mine / "runs")
    cell = {"train": "Syn", "train_set": "Syn_5_6_IM"}
    for seed, name in enumerate("ab"):
        Run(mine / "runs" / ids[name]).tag_study("table1", cell, scale="tiny", seed=seed, key=name)
    assert build_table("table1", mine, scale="tiny")["seeds"].tolist() == [2]
    delete_run(ids["a"], mine)
    assert build_table("table1", mine, scale="tiny")["seeds"].tolist() == [1]
    delete_run(ids["b"], mine)
    assert build_table("table1", mine, scale="tiny").empty
    assert set(results_frame(mine)["run_id"]) == {ids["off"], ids["stopped"]}


def test_the_results_page_reads_each_run_once(ws, monkeypatch):
    """What one rerun of the Results page shows (the table, ROC, curves, config differences, every
    paper table and its verdicts) comes from one read of each run's files."""
    from synface.analysis.run_views import load_runs
    from synface.analysis.tables import STUDIES, build_table, study_rows
    from synface.analysis.verdicts import table_verdicts

    root, ids = ws
    reads: dict[tuple[str, str], int] = {}
    for method in ("read_eval", "read_metrics", "config", "raw_status", "study_tag"):
        original = getattr(Run, method)

        def counted(self, *args, _original=original, _method=method, **kwargs):
            reads[(self.id, _method)] = reads.get((self.id, _method), 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Run, method, counted)
    views = load_runs(root)
    frame = results_frame(views=views)
    chosen = [ids["a"], ids["b"]]
    assert not roc_frame(chosen, root, views=views).empty and not config_diff(chosen, root, views=views).empty
    assert not metric_curves(chosen, root, views=views)[0].empty
    rows = study_rows(root, None, views)
    for table in STUDIES:
        build_table(table, root, rows=rows)
        table_verdicts(table, root, rows=rows)
    assert set(frame["run_id"]) == set(ids.values()) and [r["run_id"] for r in rows] == [ids["a"]]
    assert reads and max(reads.values()) == 1, {k: n for k, n in reads.items() if n > 1}
