"""reproduce: plans (--dry-run), the synthetic benchmark builder, and a micro end-to-end table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from synface.analysis import tables
from synface.data.benchmark import build_synthetic_benchmark
from synface.data.lfw import LFWLayout, lfw_verification_pairs, read_pairs, read_people
from synface.studies import plan as rp
from synface.studies.cells import restrict_cells
from synface.studies.run import execute, reproduce

LFW_FOLDS, LFW_N = 5, 2


@pytest.fixture(scope="module")
def fake_lfw(tmp_path_factory):
    """A 5-fold LFW-layout folder of rendered faces (the benchmark builder doubles as its maker)."""
    out = tmp_path_factory.mktemp("lfw") / "lfw"
    build_synthetic_benchmark(out, folds=LFW_FOLDS, pairs_per_fold=LFW_N, seed=7)
    return out


def _parser() -> argparse.ArgumentParser:
    from synface.cli.reproduce import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="verb", required=True))
    return parser


@pytest.mark.parametrize("table", rp.TABLES)
def test_dry_run_plans(table, fake_lfw, tmp_path, capsys):
    args = _parser().parse_args(["reproduce", table, "--scale", "cpu", "--lfw", str(fake_lfw),
                                 "--root", str(tmp_path), "--dry-run", "--json"])
    assert args.func(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["runs"] and plan["datasets"] and plan["estimate_s"]["total"] > 0
    assert {r["seed"] for r in plan["runs"]} == set(range(rp.DEFAULT_SEEDS)) == {0, 1, 2}
    assert not (tmp_path / "runs").exists() and not (tmp_path / "datasets").exists()  # nothing was made
    text = rp.make_plan(table, "cpu", fake_lfw, tmp_path).describe()
    assert "estimated time" in text and "[todo]" in text
    keys = [r["key"] for r in plan["runs"]]
    assert len(set(keys)) == len(keys)


def test_plan_contents(fake_lfw, tmp_path):
    t2 = rp.make_plan("table2", "cpu", fake_lfw, tmp_path, seeds=2)
    cells = {(r.cell["ids"], r.cell["samples"], r.cell["im"]) for r in t2.runs}
    sc = rp.SCALES["cpu"]
    assert len(cells) == len(sc.t2_ids) * len(sc.t2_samples) * 2 and len(t2.runs) == 2 * len(cells)
    t3 = rp.make_plan("table3", "cpu", fake_lfw, tmp_path, seeds=1)
    assert [r.cell["method"] for r in t3.runs] == ["Syn", "Real", "Mix (DM)"]
    assert t3.runs[2].config["psi"] == "grid" and t3.runs[2].config["real_ids"] == sc.t3_real[0]
    f4 = rp.make_plan("figure4", "cpu", fake_lfw, tmp_path, seeds=1)
    assert {r.cell["varied"] for r in f4.runs} == {"none", "pose", "expression", "illumination", "all"}
    pose = next(d for d in f4.datasets if d.name.endswith("vary-pose") and not d.spec["im"])
    assert (pose.spec["pose"], pose.spec["expression"], pose.spec["illumination"]) == ("vary", "fixed", "fixed")
    with pytest.raises(ValueError):
        rp.make_plan("table9", "cpu", fake_lfw, tmp_path)


def test_cells_cut_a_plan_to_their_runs_and_the_datasets_they_read(fake_lfw, tmp_path, capsys):
    full = rp.make_plan("table3", "cpu", fake_lfw, tmp_path, seeds=2)
    real = restrict_cells(full, ["REAL_"])  # case-insensitive; Real_R_k and its DM cell
    assert {r.cell["method"] for r in real.runs} == {"Real", "Mix (DM)"} and len(real.runs) == 4
    kinds = sorted(d.kind for d in real.datasets)
    assert kinds == ["real-test", "real-train", "synthetic"]  # DM reads the synthetic set too
    syn_only = restrict_cells(rp.make_plan("table2", "cpu", fake_lfw, tmp_path, seeds=1), ["_IM"])
    assert syn_only.runs and all(r.cell["im"] for r in syn_only.runs)
    assert {d.kind for d in syn_only.datasets} == {"real-test", "synthetic"}  # no real training set is built
    assert restrict_cells(full, ["", " "]) is full
    syn_label = full.runs[0].label  # also a part of the DM cell's label: a whole label keeps its cell alone
    assert {r.cell["method"] for r in restrict_cells(full, [syn_label.upper()]).runs} == {"Syn"}
    with pytest.raises(ValueError, match="matches no cell.*Syn_"):
        restrict_cells(full, ["Real", "no such cell"])
    args = _parser().parse_args(["reproduce", "table3", "--lfw", str(fake_lfw), "--root", str(tmp_path),
                                 "--cells", "DM", "--cells", "dm", "--dry-run", "--json"])
    assert args.func(args) == 0
    assert {r["cell"]["method"] for r in json.loads(capsys.readouterr().out)["runs"]} == {"Mix (DM)"}


def test_every_tiny_run_has_a_full_batch(fake_lfw, tmp_path):
    """Each tiny run's training set holds at least one batch (Table 3's Real_R_k once did not)."""
    for table in rp.TABLES:
        for run in rp.make_plan(table, "tiny", fake_lfw, tmp_path, seeds=1).runs:
            real = run.config["real_ids"] and run.config["real_ids"] * run.config["real_k"]
            assert min(run.train_images, real or run.train_images) >= run.config["batch_size"], (table, run.label)


def test_benchmark_layout_and_disjoint_identities(fake_lfw):
    layout = LFWLayout(fake_lfw)
    pairs = read_pairs(layout.pairs_file)
    people = read_people(layout.people_file)
    assert len(pairs) == LFW_FOLDS * 2 * LFW_N and len(people) == LFW_FOLDS
    fold_sets = [{n for n, _ in fold} for fold in people]
    for i in range(LFW_FOLDS):
        for j in range(i + 1, LFW_FOLDS):
            assert not fold_sets[i] & fold_sets[j]
    for p in pairs:
        assert p.name_a in fold_sets[p.fold] and p.name_b in fold_sets[p.fold]
        assert (p.name_a == p.name_b) == p.same
    vp = lfw_verification_pairs(fake_lfw)  # every referenced image exists
    assert vp.issame.sum() == LFW_FOLDS * LFW_N
    # identities of a benchmark are never those of a training set with the same seed
    from synface.data.synthetic import SynthConfig, SyntheticSpec
    from synface.generator import FaceGenerator

    gen = FaceGenerator("cpu")
    bench = SyntheticSpec(SynthConfig(ids=4, samples=2, seed=7, purpose="benchmark"), gen)
    train = SyntheticSpec(SynthConfig(ids=4, samples=2, seed=7), gen)
    for i in range(4):
        for j in range(4):
            assert not np.allclose(bench.identity(i)[0].numpy(), train.identity(j)[0].numpy())


def test_micro_end_to_end(fake_lfw, tmp_path):
    """Table 2 at the 'tiny' scale: 2 datasets, 2 runs of 2 steps, report written; a second call reuses runs."""
    root, out = tmp_path / "ws", tmp_path / "results"
    plan, paths = reproduce("table2", "tiny", fake_lfw, root, seeds=1, out_dir=out)
    assert len(plan.runs) == 2
    md = (out / "table2.md").read_text()
    assert "±" in md and "1 training seed" in md and "trend" in md
    trend = md.split("## Does the paper's trend hold?")[1].split("## How many seeds")[0]
    checks = [line for line in trend.splitlines() if line.startswith("- ")]
    assert checks and all("95% CI" in line or "too few" in line for line in checks), trend
    assert all(line.rstrip(".").endswith(("-> holds", "-> reversed", "-> not resolved at this scale")) for line in checks)
    assert "paired over 2 seed x fold pairs" in trend  # 1 seed x the 2 test folds, matched by fold
    seeds = md.split("## How many seeds would resolve the paper's effect?")[1].split("## Setup")[0]
    assert "paper +2.99 points" in seeds and "Smoke test" in md
    import pandas as pd

    df = pd.read_csv(out / "table2.csv")
    assert {"ids", "samples", "no IM acc", "IM acc"} <= set(df.columns) and len(df) == 1
    assert (out / "table2.png").stat().st_size > 1000
    assert "<script" in (out / "table2.html").read_text()[:200000]
    source = json.loads((root / "real" / "lfw_test" / "source.json").read_text())
    assert source["pairs_folds"] == [3, 4]
    runs_before = sorted(p.name for p in (root / "runs").iterdir() if p.is_dir())
    plan2 = rp.make_plan("table2", "tiny", fake_lfw, root, seeds=1)
    assert plan2.estimate()["training"] == 0  # both runs finished: nothing left to train
    execute(plan2)
    assert sorted(p.name for p in (root / "runs").iterdir() if p.is_dir()) == runs_before
    # a smoke test: its runs say so (hidden from run lists) and only the last one keeps a checkpoint
    from synface.runs.registry import list_runs
    from synface.runs.run import Run
    from synface.studies.report import report_scale

    assert all(Run(root / "runs" / r).is_smoke() for r in runs_before)
    assert all(summary.smoke for summary in list_runs(root))
    kept = [r for r in runs_before if list((root / "runs" / r / "checkpoints").glob("*.pt"))]
    assert len(kept) == 1, kept
    assert report_scale(out / "table2.md") == "tiny" and report_scale(out / "missing.md") is None
    # a set rebuilt since its run trained (a new card): the run is stale, archived, and trained again
    rebuilt = Path(plan2.runs[0].config["data"]) / "dataset.json"
    card = json.loads(rebuilt.read_text())
    rebuilt.write_text(json.dumps({**card, "created": "2099-01-01T00:00:00Z"}))
    plan3 = rp.make_plan("table2", "tiny", fake_lfw, root, seeds=1)
    assert plan3.describe().count("[stale]") == 1 and plan3.estimate()["training"] > 0
    from synface.studies.report import write_report
    from synface.studies.staleness import current_rows

    rows, stale = current_rows(root, "tiny")  # a report before the cell runs again leaves the stale run out
    assert stale == [runs_before[0]] and rows and all(r["run_id"] != runs_before[0] for r in rows)
    write_report(plan3, out)
    assert "Left out: 1 finished run(s) trained on an earlier build" in (out / "table2.md").read_text()
    execute(plan3)
    assert [p.name for p in (root / "runs" / "_archive").iterdir()] == [runs_before[0]]
    assert rp.make_plan("table2", "tiny", fake_lfw, root, seeds=1).estimate()["training"] == 0
    assert len(tables.study_rows(root, "tiny")) == 2  # one row per cell: the stale run left the tables


def test_prealigned_lfw_is_linked_not_aligned(fake_lfw, tmp_path, monkeypatch):
    """An LFW copy of aligned crops (the images folder `python -m synface align` wrote, beside pairs.txt and
    people.txt) needs no detector, as on a GPU machine without dlib: its people are linked."""
    import shutil

    import synface.data.align as align
    from synface.studies.run import build_step

    aligned = tmp_path / "lfw_aligned"
    shutil.copytree(LFWLayout(fake_lfw).images_root, aligned / "images")
    for name in ("pairs.txt", "people.txt"):
        shutil.copy(fake_lfw / name, aligned / name)
    (aligned / "images" / align.REPORT_NAME).write_text("{}")
    assert rp.prealigned(aligned) and not rp.prealigned(fake_lfw)
    monkeypatch.setattr(align, "align_folder", lambda *a, **k: pytest.fail("a pre-aligned copy was aligned again"))
    plan = rp.make_plan("table3", "tiny", aligned, tmp_path / "ws", seeds=1)
    assert "pre-aligned crops" in plan.describe()
    real = [d for d in plan.datasets if d.kind.startswith("real")]
    for step in real:
        build_step(step, aligned)
        assert json.loads((tmp_path / "ws" / "real" / step.path.split("/")[-1] / "source.json").read_text())["prealigned"]
    train = next(d for d in real if d.kind == "real-train")
    people = sorted(p for p in (tmp_path / "ws" / "real" / "lfw_folds123").iterdir() if p.is_dir())
    assert people and all(p.is_symlink() for p in people)
    assert {p.name for p in people} == {n for fold in read_people(fake_lfw / "people.txt")[:3] for n, _ in fold}
    test = next(d for d in real if d.kind == "real-test")
    vp = lfw_verification_pairs(test.path)  # every referenced crop is reachable through the links
    assert len(vp.issame) == 2 * 2 * rp.SCALES["tiny"].max_test_pairs_per_fold and train.exists()


def _aligned_copy_of_shared_lfw(tmp_path):
    """The shared LFW's pairs.txt and people.txt beside an images folder marked aligned: what the plan reads."""
    from synface.data.align import REPORT_NAME
    from tests.support import LFW_ROOT

    if not (LFW_ROOT / "pairs.txt").is_file():
        pytest.skip(f"LFW copy not found at {LFW_ROOT}")
    lfw = tmp_path / "lfw"
    (lfw / "images").mkdir(parents=True)
    for name in ("pairs.txt", "people.txt"):
        (lfw / name).write_bytes((LFW_ROOT / name).read_bytes())
    (lfw / "images" / REPORT_NAME).write_text("{}")
    return lfw


def test_gpu_scale_is_sized_for_one_gpu_within_8_minutes(tmp_path):
    """The gpu scale's plans, at RATES['gpu'] (assumed H200 rates), fit 8 min a table: Tables 1-3 at the default
    seeds, Figure 4 (10 cells) at 1 seed; Table 3 at 1 seed fits ../shared/gpu_check.sh's 400 s."""
    lfw = _aligned_copy_of_shared_lfw(tmp_path)
    for table in rp.TABLES:
        seeds = 1 if table == "figure4" else rp.DEFAULT_SEEDS
        plan = rp.make_plan(table, "gpu", lfw, tmp_path / "ws", seeds=seeds)
        assert plan.estimate()["total"] <= 8 * 60, (table, plan.estimate())
        cfg = plan.runs[0].config
        assert (cfg["backbone"], cfg["input_size"], cfg["amp"]) == ("iresnet50", 112, "auto")
        assert plan.runs[0].eval_pairs >= 1200  # LFW folds 4-5 in full (1,200 pairs), as at cpu scale
        assert all(r.train_images >= r.config["batch_size"] for r in plan.runs)
    assert rp.make_plan("table3", "gpu", lfw, tmp_path / "ws", seeds=1).estimate()["total"] <= 400
    assert rp.make_plan("figure4", "gpu", lfw, tmp_path / "ws").estimate()["total"] > 8 * 60  # said in docs/cli.md
    syn = {s: rp.SCALES[s].t3_syn[0] * rp.SCALES[s].t3_syn[1] for s in ("cpu", "gpu", "paper")}
    assert syn["cpu"] < syn["gpu"] < syn["paper"]  # between cpu and paper


def test_gpu_check_reproduce_command_parses(fake_lfw, tmp_path, capsys):
    """The options ../shared/gpu_check.sh passes to reproduce exist (here as a dry run)."""
    from synface.cli.main import main

    out = tmp_path / "out"
    argv = ["reproduce", "table3", "--scale", "gpu", "--lfw", str(fake_lfw), "--root", str(out / "ws"), "--out", str(out),
            "--seeds", "1", "--no-progress", "--dry-run"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "scale 'gpu' (1 training seed(s))" in text and "iresnet50" in text


def test_a_model_learned_from_evaluation_people_is_refused(fake_lfw, monkeypatch):
    sc = rp.SCALES["tiny"]
    people = sorted(rp.evaluation_people(fake_lfw, sc))
    assert people and all(n.startswith("SynBench_") for n in people)
    with pytest.raises(ValueError, match=rf"learned from {len(people)} people of the evaluation pairs"):
        rp.check_model_sources("m", {"source_people": ["Someone_Else", *people]}, fake_lfw, sc)
    rp.check_model_sources("m", {"source_people": ["Someone_Else"]}, fake_lfw, sc)  # disjoint: fine
    many = [f"Person_{i:02d}" for i in range(12)]  # a one-line message naming at most 10 of them
    monkeypatch.setattr(rp, "evaluation_people", lambda lfw, scale: set(many))
    with pytest.raises(ValueError) as info:
        rp.check_model_sources("m", {"source_people": many}, fake_lfw, sc)
    message = str(info.value)
    assert "\n" not in message and "(+2 more)" in message and "Person_09" in message and "Person_10" not in message


def test_reproduce_with_a_learned_model(learned_model_workspace, fake_lfw, tmp_path, capsys):
    import shutil

    from synface.cli.main import main
    from synface.studies.run import build_step
    from tests.support import LEARNED_MODEL, copy_models

    ws = copy_models(learned_model_workspace, tmp_path / "ws")
    leaky = ws / "face_models" / "leaky"  # the same model, but its card lists people of the evaluation pairs
    shutil.copytree(ws / "face_models" / LEARNED_MODEL, leaky)
    card = json.loads((leaky / "card.json").read_text())
    card["source_people"] += sorted(rp.evaluation_people(fake_lfw, rp.SCALES["tiny"]))[:3]
    card["people_fitted"] = len(card["source_people"])  # a consistent card (a damaged one is refused as such)
    (leaky / "card.json").write_text(json.dumps(card))
    base = ["reproduce", "table2", "--scale", "tiny", "--lfw", str(fake_lfw), "--root", str(ws), "--dry-run", "--json"]
    assert main([*base, "--model", "leaky"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'leaky' was learned from 3 people of the evaluation pairs" in err
    assert not (ws / "datasets").exists()

    # the model itself was learned from real LFW people, none of them in these (synthetic) pairs
    assert main([*base, "--model", LEARNED_MODEL]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["model"] == LEARNED_MODEL and plan["model_version"].startswith(f"learned-{LEARNED_MODEL}-")
    synthetic = [d for d in plan["datasets"] if d["kind"] == "synthetic"]
    assert synthetic and all(d["name"].endswith(f"_{LEARNED_MODEL}") and d["spec"]["model"] == LEARNED_MODEL
                             for d in synthetic)
    assert {r["study"] for r in plan["runs"]} == {f"table2-{LEARNED_MODEL}"}
    builtin = rp.make_plan("table2", "tiny", fake_lfw, ws)  # the built-in head's plan keeps its names and keys
    assert not {d.name for d in builtin.datasets} & {d["name"] for d in synthetic}
    assert not {r.key for r in builtin.runs} & {r["key"] for r in plan["runs"]}
    t1 = rp.make_plan("table1", "tiny", fake_lfw, ws, model=LEARNED_MODEL)
    bench = next(d for d in t1.datasets if d.kind == "benchmark")
    assert bench.name.endswith(f"_{LEARNED_MODEL}") and bench.spec["model"] == LEARNED_MODEL

    step = rp.DatasetStep(**synthetic[0])  # a study's synthetic set is rendered by the model
    build_step(step, fake_lfw, workspace=ws)
    built = json.loads((tmp_path / "ws" / "datasets" / step.name / "dataset.json").read_text())
    assert built["model"] == LEARNED_MODEL and built["model_version"] == plan["model_version"]


def test_a_run_folder_killed_before_its_tag_is_trained_in_on_the_rerun(fake_lfw, tmp_path):
    """A kill between create_run and the study tag leaves an untagged, untrained folder of the run's
    very config: the rerun adopts it (no leftover folder); anything else is never adopted."""
    from synface.runs.registry import create_run
    from synface.studies.run import untrained_twin

    plan = rp.make_plan("table3", "tiny", fake_lfw, tmp_path, seeds=1)
    first, other = plan.runs[0], plan.runs[1]
    left = create_run(first.config, name=first.config["name"], root=tmp_path)
    assert untrained_twin(tmp_path, first.config) == left.path
    assert untrained_twin(tmp_path, other.config) is None  # another cell's config
    (left.checkpoints / "last.pt").write_bytes(b"x")
    assert untrained_twin(tmp_path, first.config) is None  # it trained: a resume's business, not ours
    (left.checkpoints / "last.pt").unlink()
    (left.path / "study.json").write_text("{}")
    assert untrained_twin(tmp_path, first.config) is None  # tagged: any_run finds it by key
