"""A run folder's evaluations and study tag have one writer each: `Run.record_eval`, `Run.tag_study`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synface.eval.verification import VerificationResult, kfold_verification
from synface.runs.registry import create_run
from synface.runs.run import Run


@pytest.fixture()
def result() -> VerificationResult:
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 200)
    return kfold_verification(rng.normal(same * 1.0, 0.5), same, np.arange(400) % 4)


def test_an_evaluation_goes_into_eval_json_and_one_metrics_record(tmp_path, result):
    run = create_run({"name": "r"}, root=tmp_path)
    record = run.record_eval("lfw", result, epoch=2, step=40, source={"scored_by": "eval", "checkpoint": "c.pt"},
                             timing={"seconds": 1.5})
    held = run.read_eval()["lfw"]
    assert (held["epoch"], held["step"], held["scored_by"], held["checkpoint"]) == (2, 40, "eval", "c.pt")
    assert "seconds" not in held and held["fold_accuracies"] == pytest.approx(result.fold_accuracies.tolist())
    assert VerificationResult.from_dict(held).mean_accuracy == pytest.approx(result.mean_accuracy)
    (line,) = run.read_metrics("eval")
    assert line == record and line["seconds"] == 1.5 and line["scored_by"] == "eval" and line["folds"] == 4
    assert line["set"] == "lfw" and line["mean_accuracy"] == pytest.approx(result.mean_accuracy)
    run.record_eval("cfp", result, epoch=3, step=60)  # another set joins, the first stays
    run.record_eval("lfw", result, epoch=3, step=60)  # the same set is replaced
    held = run.read_eval()
    assert sorted(held) == ["cfp", "lfw"] and held["lfw"]["step"] == 60 and "scored_by" not in held["lfw"]
    assert len(run.read_metrics("eval")) == 3


def test_study_tags_collect_cells_and_an_unreadable_tag_reads_as_none(tmp_path):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    assert run.study_tag() == {} and not run.is_tagged()
    run.tag_study("table1", {"train": "Syn"}, key="k1", seed=0, scale="tiny")
    run.tag_study("table2", {"ids": 5}, key="k1", seed=0, scale="tiny")
    tag = run.study_tag()
    assert tag["cells"] == {"table1": {"train": "Syn"}, "table2": {"ids": 5}} and tag["key"] == "k1" and run.is_tagged()
    for damaged in ("[1, 2]", "{not json"):
        run.study_path.write_text(damaged)
        assert run.study_tag() == {} and run.is_tagged()
        run.tag_study("table3", {"method": "Syn"}, key="k2")  # a damaged tag is replaced, not a crash
        assert run.study_tag()["cells"] == {"table3": {"method": "Syn"}}
    assert json.loads(run.study_path.read_text())["key"] == "k2"
