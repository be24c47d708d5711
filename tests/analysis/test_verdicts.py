"""Verdicts with confidence: paired and Welch intervals, the three verdicts, seeds to resolve, and
table_verdicts on fake run folders (the registry format of synface.analysis.tables)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from synface.analysis import tables
from synface.analysis import verdicts as vd
from synface.runs.run import Run
from tests.support import REPO


def _run(root: Path, name: str, study: str, cell: dict, seed: int, folds: list[float], scale: str = "cpu",
         eval_set: str = tables.LFW_SET, extra: dict | None = None) -> None:
    """A finished run folder as reproduce leaves it: eval.json with per-fold accuracies, study.json."""
    path = root / "runs" / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"name": name, "seed": seed}))
    (path / "status.json").write_text(json.dumps({"status": "finished"}))
    evals = {eval_set: folds, **(extra or {})}
    (path / "eval.json").write_text(json.dumps({
        s: {"fold_accuracies": f, "mean_accuracy": float(np.mean(f)), "std_accuracy": float(np.std(f))}
        for s, f in evals.items()}))
    Run(path).tag_study(study, cell, key=f"k-{name}", seed=seed, scale=scale)


def test_paired_interval_matches_scipy_and_gives_the_three_verdicts():
    a = {(0, 0): 70.0, (0, 1): 72.0, (1, 0): 74.0, (1, 1): 76.0, (2, 0): 71.0, (2, 1): 75.0}
    gains = [1.0, 2.5, 3.0, 2.0, 0.5, 1.5]
    b = {k: v - g for (k, v), g in zip(a.items(), gains)}
    d = vd.paired_difference(a, b)
    ref = stats.ttest_rel(list(a.values()), list(b.values())).confidence_interval(0.95)
    assert d.paired and d.n == 6 and d.seeds == 3 and d.per_seed == 2
    assert d.mean == pytest.approx(np.mean(gains)) and (d.low, d.high) == pytest.approx((ref.low, ref.high))
    assert vd.verdict("IM helps", "IM", "no IM", a, b, vd.PAPER["im"]).verdict == vd.HOLDS
    assert vd.verdict("IM helps", "IM", "no IM", b, a, vd.PAPER["im"]).verdict == vd.REVERSED
    noisy = {k: v + (4.0 if i % 2 else -4.0) for i, (k, v) in enumerate(a.items())}
    assert vd.verdict("IM helps", "IM", "no IM", noisy, a).verdict == vd.UNRESOLVED
    # the paper's direction decides the sign: a claim that a is lower holds when a - b < 0
    assert vd.decide(-3.0, -1.0, expected=-1) == vd.HOLDS and vd.decide(-3.0, 1.0) == vd.UNRESOLVED


def test_unmatched_arms_fall_back_to_welch_and_say_so():
    a = {(0, 0): 80.0, (0, 1): 82.0, (1, 0): 79.0}
    b = {(5, 0): 70.0, (6, 1): 74.0, (7, 0): 71.0, (7, 1): 69.0}
    d, note = vd.compare(a, b)
    ref = stats.ttest_ind(list(a.values()), list(b.values()), equal_var=False).confidence_interval(0.95)
    assert not d.paired and (d.low, d.high) == pytest.approx((ref.low, ref.high))
    assert "unpaired (Welch)" in note and "no common seed x fold" in note
    line = vd.verdict("Real beats Syn", "Real", "Syn", a, b).line()
    assert "95% CI" in line and "Welch" in line and line.endswith(f"-> {vd.HOLDS}.")
    # one value per arm: no interval, never a verdict other than 'not resolved'
    one = vd.verdict("x", "a", "b", {(0, 0): 90.0}, {(0, 0): 50.0})
    assert one.verdict == vd.UNRESOLVED and one.low is None and "too few" in one.line()
    assert "not measurable" in vd.verdict("x", "a", "b", {(0, 0): 90.0}, {(0, 0): 50.0}, vd.PAPER["im"]).seeds_line()


def _power(n: int, effect: float, sd: float) -> float:
    """Exact power of a two-sided 5% paired t test with n pairs (noncentral t)."""
    df, nc = n - 1, effect / sd * math.sqrt(n)
    crit = stats.t.ppf(0.975, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


@pytest.mark.parametrize("sd", [1.0, 3.0, 7.0])
def test_seeds_to_resolve_reaches_80_percent_power_and_no_fewer_would(sd):
    n = vd.seeds_to_resolve(2.99, sd, per_seed=1)
    assert _power(n, 2.99, sd) >= 0.79 and _power(n - 1, 2.99, sd) < 0.805
    assert vd.seeds_to_resolve(2.99, sd, per_seed=4) == math.ceil(n / 4)  # each seed adds 4 folds of pairs
    assert vd.seeds_to_resolve(2.99, 2 * sd, per_seed=1) > n
    assert vd.seeds_to_resolve(2.99, sd, 1, paired=False) >= n  # unpaired never needs fewer
    assert vd.seeds_to_resolve(2.99, float("nan"), 1) is None and vd.seeds_to_resolve(0.0, sd, 1) is None


def test_table_verdicts_pair_runs_by_seed_and_fold(tmp_path):
    # Table 2: IM beats no IM by 2-3 points on every (seed, fold), though the folds differ by 10 points
    # (fold difficulty is shared, which only pairing removes)
    for seed in range(3):
        for ids in (100, 300):
            base = [60.0 + ids / 100 + seed, 70.0 + ids / 100 + seed]
            _run(tmp_path, f"t2-{ids}-n{seed}", "table2", {"ids": ids, "samples": 10, "im": False}, seed,
                 [x / 100 for x in base])
            _run(tmp_path, f"t2-{ids}-i{seed}", "table2", {"ids": ids, "samples": 10, "im": True}, seed,
                 [(x + 2 + 0.5 * (seed % 2) + (ids == 300)) / 100 for x in base])
    out = vd.table_verdicts("table2", tmp_path, scale="cpu")
    by_claim = {v.claim: v for v in out}
    pooled = by_claim["Identity mixup helps, over all 2 cells"]
    assert pooled.verdict == vd.HOLDS and pooled.method == "paired" and pooled.n == 12 and pooled.seeds == 3
    cell = by_claim["Identity mixup helps at 100 ids x 10 samples"]
    assert cell.verdict == vd.HOLDS and cell.diff == pytest.approx(2 + 0.5 / 3) and cell.paper_effect == pytest.approx(2.99)
    assert "95% CI" in cell.line() and "paired over 6 seed x fold pairs" in cell.line()
    assert cell.seeds_needed is not None and "seed(s)" in cell.seeds_line()
    ids = [v for v in out if v.claim.startswith("More identities help")]
    assert {v.verdict for v in ids} == {vd.HOLDS} and len(ids) == 2  # 100 -> 300, without and with IM
    assert vd.table_verdicts("table2", tmp_path, scale="paper") == []


def test_table_verdicts_for_tables_1_3_and_figure_4(tmp_path):
    for seed in range(2):
        _run(tmp_path, f"t1s{seed}", "table1", {"train": "Syn", "train_set": "Syn_400_20_IM"}, seed, [0.70, 0.72],
             extra={tables.BENCH_SET: [0.94, 0.95]})
        _run(tmp_path, f"t1r{seed}", "table1", {"train": "Real", "train_set": "Real"}, seed, [0.78, 0.80],
             extra={tables.BENCH_SET: [0.76, 0.79]})
        for method, acc in (("Syn", 0.73), ("Real", 0.61), ("Mix (DM)", 0.775)):
            _run(tmp_path, f"t3{method[:3]}{seed}", "table3", {"method": method, "data": method}, seed,
                 [acc + 0.01 * seed, acc - 0.01])
        for varied in ("none", "pose"):
            for im in (False, True):
                _run(tmp_path, f"f4{varied}{im}{seed}", "figure4", {"varied": varied, "im": im}, seed,
                     [0.66 + 0.01 * seed, 0.64 + 0.02 * im])
    t1 = {v.claim.split(":")[0]: v for v in vd.table_verdicts("table1", tmp_path)}
    gap = t1["Domain gap"]
    assert gap.method == "welch" and "different test sets" in gap.note and gap.verdict == vd.HOLDS
    assert t1["Real data generalises better to LFW"].paper == vd.PAPER["real_over_syn_im"].figures  # Syn has IM
    t3 = vd.table_verdicts("table3", tmp_path, scale="cpu")
    assert [v.b for v in t3] == ["Syn", "Real"] and t3[0].paper_effect == pytest.approx(3.81)
    assert t3[1].paper_effect is None and t3[1].seeds_line() is None  # the paper gives no Real-only figure here
    f4 = vd.table_verdicts("figure4", tmp_path)
    assert [v.claim for v in f4] == ["Varying pose per image helps (no IM)", "Identity mixup helps, over 2 setting(s)"]
    assert all(v.scale == "cpu" and v.verdict in (vd.HOLDS, vd.REVERSED, vd.UNRESOLVED) for v in f4)
    with pytest.raises(ValueError, match="unknown table"):
        vd.verdicts_from_frame("table9", tables.study_frame(tmp_path))


def test_scales_are_never_paired_together(tmp_path):
    for scale, gain in (("cpu", 3.0), ("tiny", -3.0)):
        for seed in range(2):
            _run(tmp_path, f"{scale}n{seed}", "table3", {"method": "Syn", "data": "s"}, seed, [0.70, 0.72], scale)
            _run(tmp_path, f"{scale}m{seed}", "table3", {"method": "Mix (DM)", "data": "m"}, seed,
                 [0.70 + gain / 100, 0.72 + gain / 100 + 0.001 * seed], scale)
    out = vd.table_verdicts("table3", tmp_path)
    assert {(v.scale, v.verdict) for v in out} == {("cpu", vd.HOLDS), ("tiny", vd.REVERSED)}
    assert all(v.n == 4 for v in out)


def test_report_trend_lines_carry_intervals(tmp_path):
    from synface.studies.report import seeds_lines, trend_lines

    for seed in range(2):
        _run(tmp_path, f"s{seed}", "table3", {"method": "Syn", "data": "s"}, seed, [0.70, 0.73])
        _run(tmp_path, f"m{seed}", "table3", {"method": "Mix (DM)", "data": "m"}, seed, [0.74, 0.76 + 0.01 * seed])
    found = vd.table_verdicts("table3", tmp_path, "cpu")
    lines = trend_lines("table3", tables.table3(tmp_path, "cpu"), found)
    assert len(lines) == 1 and "95% CI" in lines[0] and lines[0].endswith(f"-> {vd.HOLDS}.")
    assert "would resolve it" in seeds_lines(found)[0]
    assert trend_lines("table3", tables.table3(tmp_path, "paper"), []) == ["No finished runs: no trend to check."]


def test_attributes_page_shows_verdicts_and_labels_tiny_a_smoke_test(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    home = tmp_path / "ws"
    for seed in range(2):
        for im in (False, True):
            _run(home, f"f4{im}{seed}", "figure4", {"varied": "none", "im": im}, seed,
                 [0.60 + 0.05 * im + 0.01 * seed, 0.62 + 0.05 * im])
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    at = AppTest.from_file(str(REPO / "pages" / "attributes.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "Identity mixup helps" in text and "95% CI" in text and vd.HOLDS in text
    labels = at.selectbox(key="attr.scale").options
    tiny = next(o for o in labels if o.startswith("tiny"))
    assert "smoke test" in tiny and "test pairs" in tiny and any(o == "gpu" for o in labels)
