"""`real add`, `train --real/--eval/--allow-overlap` and `eval --run`: registered sets scored for every run,
and every refusal one named line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from synface.cli.main import main
from tests.data.identity_sets import PEOPLE, bad_bins, make_bin, make_lfw
from tests.support import cli_error


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace with an LFW copy registered to train on fold 1 (test: pairs folds 2-3) and two .bin sets."""
    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    lfw = make_lfw(tmp_path / "lfw")
    assert main(["real", "add", str(lfw), "--train-folds", "1", "--no-align"]) == 0
    for name in ("cfp_fp", "agedb_30"):
        assert main(["real", "add", str(make_bin(tmp_path / f"{name}.bin", pairs=20, seed=len(name)))]) == 0
    return home


def _finished_run(home, data: str) -> str:
    """A finished run of the compact backbone (untrained weights) whose training data is `data`."""
    from synface.runs.registry import create_run
    from synface.models.backbones import build_backbone

    cfg = {"data": data, "backbone": "compact", "embedding_dim": 16, "name": "done"}
    run = create_run(cfg, root=home)
    torch.save({"model": build_backbone("compact", 16).state_dict(), "config": cfg, "input_size": 56},
               run.last_checkpoint)
    run.write_status(status="finished", epoch=3, step=30)
    return run.id


def test_real_add_asks_for_lfw_training_folds_and_names_bad_bins(tmp_path, ws, capsys):
    cli_error(capsys, ["real", "add", make_lfw(tmp_path / "lfw2")], "3 people.txt folds", "--train-folds")
    for path in bad_bins(tmp_path / "bad").values():
        cli_error(capsys, ["real", "add", path], str(path), "not an insightface verification .bin")
    assert main(["real", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sets"]
    assert [s["name"] for s in listed] == ["agedb_30", "cfp_fp", "lfw"] and listed[2]["train_folds"] == [0]


def test_eval_run_scores_every_registered_set_into_the_run(tmp_path, ws, capsys):
    train = tmp_path / "train"
    shutil.copytree(tmp_path / "lfw" / "images" / PEOPLE[0], train / PEOPLE[0])  # a fold-1 person: not tested
    run_id = _finished_run(ws, str(train))
    assert main(["eval", "--run", run_id, "--device", "cpu", "--json"]) == 0
    results = json.loads(capsys.readouterr().out.splitlines()[-1])["results"]
    assert [r["set"] for r in results] == ["agedb_30", "cfp_fp", "lfw"]
    assert results[2]["pairs"] == 4 and results[0]["folds"] == 10
    stored = json.loads((ws / "runs" / run_id / "eval.json").read_text())
    assert set(stored) == {"agedb_30", "cfp_fp", "lfw"} and stored["lfw"]["scored_by"] == "eval"
    assert stored["cfp_fp"]["epoch"] == 3 and "roc" in stored["cfp_fp"]
    metrics = [json.loads(line) for line in (ws / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    assert sorted(m["set"] for m in metrics if m["type"] == "eval") == ["agedb_30", "cfp_fp", "lfw"]
    # named sets only
    assert main(["eval", "--run", run_id, "--sets", "cfp_fp", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("cfp_fp: ")


def test_eval_run_refuses_an_overlap_unless_accepted(tmp_path, ws, capsys):
    run_id = _finished_run(ws, str(tmp_path / "lfw" / "images"))  # trained on every LFW person
    cli_error(capsys, ["eval", "--run", run_id, "--sets", "lfw", "--device", "cpu"], "'lfw' shares 4 people",
              "4 of 4 pairs", "Cid_Moe", "--allow-overlap")
    assert not (ws / "runs" / run_id / "eval.json").exists()
    assert main(["eval", "--run", run_id, "--sets", "lfw", "--device", "cpu", "--allow-overlap"]) == 0
    stored = json.loads((ws / "runs" / run_id / "eval.json").read_text())["lfw"]
    assert stored["identity_overlap"].startswith("evaluation set 'lfw' shares 4 people")
    assert "warning: identity overlap accepted" in capsys.readouterr().err


def test_eval_names_what_it_cannot_score(tmp_path, ws, capsys):
    run_id = _finished_run(ws, str(tmp_path / "nowhere"))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x80\x02K\x05.")  # a pickle of the number 5
    cli_error(capsys, ["eval", "--run", run_id, "--bin", junk, "--device", "cpu"], "evaluation set 'junk' cannot be scored",
              str(junk), "expected a pickled (bins, issame_list)")
    cli_error(capsys, ["eval", "--run", run_id, "--lfw", make_lfw(tmp_path / "nopairs", pairs=False)], "no pairs.txt")
    cli_error(capsys, ["eval", "--run", run_id, "--sets", "nope"], "no real set named 'nope'")
    cli_error(capsys, ["eval", "--run", "missing-run"], "missing-run")
    (ws / "runs" / run_id / "status.json").write_text(json.dumps({"status": "queued"}))
    cli_error(capsys, ["eval", "--run", run_id], f"run {run_id} is queued")


def test_train_checks_before_the_run_folder_and_records_an_accepted_overlap(tmp_path, ws, capsys):
    base = ["train", "--preset", "cpu-quick", "--set", f"data={tmp_path / 'lfw' / 'images'}", "--no-progress"]
    cli_error(capsys, base + ["--eval", "lfw"], "identity overlap", "'lfw' shares 4 people", "pass --allow-overlap")
    cli_error(capsys, base + ["--set", f"eval_sets=[{str(tmp_path / 'lfw' / 'images')!r}]"], "cannot be scored",
              "no pairs.txt")
    cli_error(capsys, base + ["--real", "cfp_fp"], "real set 'cfp_fp' has no training people")
    cli_error(capsys, ["train", "--resume", "x", "--eval", "all"], "a resumed run keeps its config")
    assert not (ws / "runs").exists()
    # the registered LFW's training people (fold 1) with its test pairs and the .bin sets: clean, and it trains
    train = ["train", "--preset", "cpu-quick", "--set", f"data={ws / 'real_train' / 'lfw'}", "--set", "batch_size=4",
             "--set", "steps_per_epoch=1", "--set", "epochs=1", "--set", "milestones=[]", "--set", "embedding_dim=16",
             "--set", "warmup_epochs=0", "--eval", "all", "--no-progress", "--json"]
    assert main(train) == 0
    out, err = capsys.readouterr()
    run = ws / "runs" / next(p.name for p in (ws / "runs").iterdir())
    assert json.loads(out.splitlines()[-1])["status"] == "finished"
    check = json.loads((run / "identity_check.json").read_text())
    assert check["summary"].startswith("no identity overlap found (1 of 3") and not check["overridden"]
    assert "note: evaluation set 'agedb_30' cannot be checked" in err
    assert set(json.loads((run / "eval.json").read_text())) == {"agedb_30", "cfp_fp", "lfw"}
