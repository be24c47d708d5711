"""Verdicts with confidence: does a paper trend hold in these runs, or is it not resolved at this scale?

Two conditions (arms) of a study are compared on the same test folds and training seeds. Each
matched (seed, fold) gives one difference a - b in accuracy points; their mean gets a Student t
95% interval over those pairs (the field's convention; ../shared/docs/reference.md section 7).
The verdict is relative to the paper's direction: "holds" when the whole interval lies on the
paper's side of 0, "reversed" when it lies on the other side, "not resolved at this scale" when it
contains 0. Arms that cannot be paired (scored on different test sets, or with no (seed, fold) in
common) get Welch's unpaired interval over all their values instead, and the line says so.

Folds of one seed share a trained model, so the seeds x folds differences are not independent
draws: when seed-to-seed spread dominates, the interval is narrower than one over seeds alone.

"Seeds to resolve": how many training seeds (each adding the measured number of test folds) a
two-sided 5% t test with 80% power needs to detect the paper's effect size at the measured
standard deviation of the differences. The paper's effects are the published LFW accuracies.

    for v in table_verdicts("table2", root, scale="cpu"):
        print(v.line())
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synface.analysis import tables

__all__ = ["HOLDS", "REVERSED", "UNRESOLVED", "PAPER", "PaperEffect", "Difference", "Verdict", "paired_difference",
           "welch_difference", "compare", "decide", "seeds_to_resolve", "verdict", "arm", "verdicts_from_frame",
           "table_verdicts"]

HOLDS, REVERSED, UNRESOLVED = "holds", "reversed", "not resolved at this scale"
LEVEL = 0.95   # confidence of the intervals
POWER = 0.80   # of the seeds-to-resolve calculation
MAX_PAIRS = 10**6

Key = tuple[Hashable, ...]  # (... cell values, seed, fold): seed second to last, fold last


@dataclass(frozen=True)
class PaperEffect:
    """An effect the SynFace paper reports, in LFW accuracy points, with the figures behind it."""

    points: float
    figures: str


#: Published LFW accuracies of SynFace (ICCV 2021), as listed in ../shared/docs/reference.md section 1.
PAPER: dict[str, PaperEffect] = {
    "im": PaperEffect(91.97 - 88.98, "IM 91.97 vs no IM 88.98 at Syn_10K_50"),
    "dm_over_syn": PaperEffect(95.78 - 91.97, "IM+DM 95.78 with 2K x 10 real vs IM 91.97"),
    "real_over_syn": PaperEffect(99.18 - 88.98, "RealFace 99.18 vs SynFace 88.98 on LFW"),
    "real_over_syn_im": PaperEffect(99.18 - 91.97, "RealFace 99.18 vs SynFace with IM 91.97 on LFW"),
    "domain_gap": PaperEffect(99.98 - 88.98, "synthetic model 99.98 on Syn-LFW vs 88.98 on LFW"),
    "cross_domain": PaperEffect(98.85 - 88.98, "real model 98.85 on Syn-LFW vs synthetic model 88.98 on LFW"),
}


def _t(q: float, df: float) -> float:
    from scipy import stats  # noqa: PLC0415

    return float(stats.t.ppf(q, df))


@dataclass(frozen=True)
class Difference:
    """Mean of a - b (points) with its interval; `per_seed` values per training seed (the folds)."""

    mean: float
    low: float
    high: float
    n: int             # pairs (paired) or values of both arms (Welch)
    sd: float          # of the paired differences; pooled over the two arms for Welch
    paired: bool
    seeds: int
    per_seed: float
    dropped: int = 0   # values of either arm with no partner (paired only)


def _seeds(keys: Sequence[Key]) -> int:
    """Distinct training seeds among (..., seed, fold) keys (at least 1)."""
    return len({k[-2] for k in keys}) or 1


def paired_difference(a: Mapping[Key, float], b: Mapping[Key, float]) -> Difference | None:
    """a - b over the keys both arms have; None when fewer than 2 are shared."""
    common = sorted(set(a) & set(b), key=repr)
    if len(common) < 2:
        return None
    d = np.array([a[k] - b[k] for k in common], dtype=float)
    n = len(d)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = _t(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n)
    seeds = _seeds(common)
    return Difference(mean, mean - half, mean + half, n, sd, True, seeds, n / seeds,
                      dropped=len(a) + len(b) - 2 * n)


def welch_difference(a: Mapping[Key, float], b: Mapping[Key, float]) -> Difference | None:
    """mean(a) - mean(b) with Welch's interval (unequal variances); None when an arm has < 2 values."""
    va, vb = np.array(list(a.values()), dtype=float), np.array(list(b.values()), dtype=float)
    na, nb = len(va), len(vb)
    if na < 2 or nb < 2:
        return None
    mean = float(va.mean() - vb.mean())
    sa, sb = va.var(ddof=1) / na, vb.var(ddof=1) / nb
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa ** 2 / (na - 1) + sb ** 2 / (nb - 1)) if se > 0 else na + nb - 2
    half = _t(0.5 + LEVEL / 2, df) * se
    seeds = max(_seeds(list(a)), _seeds(list(b)))
    pooled = math.sqrt((va.var(ddof=1) + vb.var(ddof=1)) / 2)
    return Difference(mean, mean - half, mean + half, na + nb, pooled, False, seeds, max(na, nb) / seeds)


def compare(a: Mapping[Key, float], b: Mapping[Key, float], pair: bool = True,
            why_unpaired: str = "") -> tuple[Difference | None, str]:
    """The paired difference when the arms share >= 2 (seed, fold) keys, else Welch's; with a note
    that says which, over how many values, and why it is unpaired."""
    if pair:
        d = paired_difference(a, b)
        if d is not None:
            left = f"; {d.dropped} value(s) without a partner left out" if d.dropped else ""
            return d, f"paired over {d.n} seed x fold pairs{left}"
        why_unpaired = why_unpaired or "no common seed x fold to pair on"
    d = welch_difference(a, b)
    if d is None:
        return None, f"{len(a)} and {len(b)} value(s): too few for an interval"
    return d, f"unpaired (Welch) over {len(a)} + {len(b)} values: {why_unpaired}"


def decide(low: float, high: float, expected: int = 1) -> str:
    """holds / reversed / not resolved, for an interval and the paper's sign of a - b."""
    lo, hi = sorted((expected * low, expected * high))
    if lo > 0:
        return HOLDS
    if hi < 0:
        return REVERSED
    return UNRESOLVED


def seeds_to_resolve(effect: float, sd: float, per_seed: float, paired: bool = True) -> int | None:
    """Training seeds a 5% two-sided t test with 80% power needs to detect `effect` (points) at
    spread `sd`, each seed adding `per_seed` pairs (paired) or values per arm (Welch); None when
    the spread is unknown or the effect is 0."""
    if not (math.isfinite(sd) and math.isfinite(effect)) or effect == 0 or per_seed <= 0:
        return None
    if sd == 0:
        return max(1, math.ceil(2 / per_seed))
    z = (_t(0.5 + LEVEL / 2, 10**6) + _t(POWER, 10**6)) * sd / abs(effect)
    n = max(2, int(z * z * (1 if paired else 2)))
    while n < MAX_PAIRS:
        df = n - 1 if paired else 2 * n - 2
        signal = abs(effect) / sd * math.sqrt(n if paired else n / 2)
        if signal >= _t(0.5 + LEVEL / 2, df) + _t(POWER, df):
            break
        n += 1
    return math.ceil(n / per_seed)


@dataclass(frozen=True)
class Verdict:
    """One trend of the paper checked in one study: the difference, its interval, the verdict."""

    claim: str
    a: str
    b: str
    verdict: str
    diff: float | None
    low: float | None
    high: float | None
    n: int
    method: str                 # "paired", "welch" or "none"
    note: str
    sd: float | None
    seeds: int
    per_seed: float
    paper_effect: float | None  # points, a - b, from PAPER
    paper: str                  # the published figures behind it ('' when the paper gives none here)
    seeds_needed: int | None
    scale: str | None = None

    def line(self) -> str:
        """'<claim> (paper: ...): a - b = +x.xx points, 95% CI lo to hi (paired over ...) -> verdict.'"""
        paper = f" (paper: {self.paper})" if self.paper else ""
        head = f"{self.claim}{paper}: {self.a} - {self.b}"
        if self.diff is None:
            return f"{head}: {self.note} -> {self.verdict}."
        if self.low is None or self.high is None:
            return f"{head} = {self.diff:+.2f} points ({self.note}) -> {self.verdict}."
        return (f"{head} = {self.diff:+.2f} points, {LEVEL:.0%} CI {self.low:+.2f} to {self.high:+.2f} "
                f"({self.note}) -> {self.verdict}.")

    def seeds_line(self) -> str | None:
        """How many seeds would resolve the paper's effect at this spread; None without a paper figure."""
        if self.paper_effect is None:
            return None
        what = f"{self.claim} (paper {self.paper_effect:+.2f} points)"
        if self.seeds_needed is None:
            return f"{what}: the spread is not measurable from {self.n} value(s) yet."
        kind = "paired differences" if self.method == "paired" else "values"
        unit = "pairs" if self.method == "paired" else "values per arm"
        return (f"{what}: at the measured spread (sd {self.sd:.2f} points of the {kind}), about "
                f"{self.seeds_needed} seed(s) ({self.per_seed:.3g} {unit} per seed) would resolve it "
                f"(5% two-sided, {POWER:.0%} power); these runs have {self.seeds}.")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line(), "seeds_line": self.seeds_line()}


def verdict(claim: str, a_label: str, b_label: str, a: Mapping[Key, float], b: Mapping[Key, float],
            paper: PaperEffect | None = None, expected: int = 1, pair: bool = True, why_unpaired: str = "",
            scale: str | None = None) -> Verdict:
    """Compare arm a with arm b ({(..., seed, fold): accuracy in points}) against the paper's sign."""
    d, note = compare(a, b, pair, why_unpaired)
    effect = paper.points if paper is not None else None
    figures = paper.figures if paper is not None else ""
    if d is None:
        va, vb = list(a.values()), list(b.values())
        diff = float(np.mean(va) - np.mean(vb)) if va and vb else None
        seeds = len({k[-2] for k in (*a, *b)})
        return Verdict(claim, a_label, b_label, UNRESOLVED, diff, None, None, len(va) + len(vb), "none", note,
                       None, seeds, 0.0, effect, figures, None, scale)
    needed = seeds_to_resolve(effect, d.sd, d.per_seed, d.paired) if effect is not None else None
    return Verdict(claim, a_label, b_label, decide(d.low, d.high, expected), d.mean, d.low, d.high, d.n,
                   "paired" if d.paired else "welch", note, d.sd, d.seeds, d.per_seed, effect, figures, needed, scale)


# ----------------------------------------------------------------------------- arms from the registry


def arm(frame: pd.DataFrame, eval_set: str, by: Sequence[str] = (), **cell: Any) -> dict[Key, float]:
    """{(*values of `by`, seed, fold): accuracy in points} of the rows of one cell on one eval set;
    two runs of the same key (a re-run) are averaged."""
    if frame.empty:
        return {}
    rows = frame[frame["eval_set"] == eval_set]
    for k, v in cell.items():
        if k not in rows:
            return {}
        rows = rows[rows[k].map(lambda x, v=v: x == v or (isinstance(x, (bool, np.bool_)) and bool(x) == v))]
    acc: dict[Key, list[float]] = {}
    for _, r in rows.iterrows():
        for fold, value in enumerate(r["fold_accuracies"]):
            key = (*(r[c] for c in by), r["seed"], fold)
            acc.setdefault(key, []).append(float(value) * 100)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def _levels(frame: pd.DataFrame, column: str) -> list[Any]:
    if frame.empty or column not in frame:
        return []
    return sorted(set(frame[column].dropna()))


def _table1(frame: pd.DataFrame, scale: str | None) -> list[Verdict]:
    lfw, bench = tables.LFW_SET, tables.BENCH_SET
    syn_lfw, real_lfw = arm(frame, lfw, train="Syn"), arm(frame, lfw, train="Real")
    syn_bench, real_bench = arm(frame, bench, train="Syn"), arm(frame, bench, train="Real")
    im = "train_set" in frame and any("_IM" in str(s) for s in frame.loc[frame["train"] == "Syn", "train_set"])
    out = []
    other = "the same runs scored on two different test sets"
    if syn_lfw and syn_bench:
        out.append(verdict("Domain gap: the synthetic model scores higher on synthetic than on real faces",
                           f"Syn on {bench}", f"Syn on {lfw}", syn_bench, syn_lfw, PAPER["domain_gap"],
                           pair=False, why_unpaired=other, scale=scale))
    if syn_lfw and real_lfw:
        out.append(verdict("Real data generalises better to LFW", f"Real on {lfw}", f"Syn on {lfw}", real_lfw, syn_lfw,
                           PAPER["real_over_syn_im" if im else "real_over_syn"], scale=scale))
    if real_bench and syn_lfw:
        out.append(verdict("Cross-domain: the real model carries to synthetic faces better than the synthetic one to "
                           "real faces", f"Real on {bench}", f"Syn on {lfw}", real_bench, syn_lfw,
                           PAPER["cross_domain"], pair=False, why_unpaired="two different test sets", scale=scale))
    return out


def _monotone(frame: pd.DataFrame, column: str, what: str, fixed: str, scale: str | None) -> list[Verdict]:
    """Each step up a grid axis (ids or samples) helps, per IM setting, pooled over the other axis."""
    out = []
    levels = _levels(frame, column)
    for im in (False, True):
        label = "IM" if im else "no IM"
        for lo, hi in pairwise(levels):
            a = arm(frame, tables.LFW_SET, by=[fixed], im=im, **{column: hi})
            b = arm(frame, tables.LFW_SET, by=[fixed], im=im, **{column: lo})
            if a and b:
                out.append(verdict(f"More {what} help ({label}, {lo} -> {hi})", f"{hi} {what}", f"{lo} {what}", a, b,
                                   scale=scale))
    return out


def _table2(frame: pd.DataFrame, scale: str | None) -> list[Verdict]:
    out = []
    if not {"ids", "samples"} <= set(frame.columns):
        return []
    cells = sorted({(int(i), int(s)) for i, s in zip(frame["ids"], frame["samples"]) if pd.notna(i) and pd.notna(s)})
    pooled_a: dict[Key, float] = {}
    pooled_b: dict[Key, float] = {}
    for ids, samples in cells:
        a = arm(frame, tables.LFW_SET, ids=ids, samples=samples, im=True)
        b = arm(frame, tables.LFW_SET, ids=ids, samples=samples, im=False)
        if a and b:
            out.append(verdict(f"Identity mixup helps at {ids} ids x {samples} samples", "IM", "no IM", a, b,
                               PAPER["im"], scale=scale))
            pooled_a.update({((ids, samples), *k): v for k, v in a.items()})
            pooled_b.update({((ids, samples), *k): v for k, v in b.items()})
    if len(out) > 1:
        out.insert(0, verdict(f"Identity mixup helps, over all {len(out)} cells", "IM", "no IM", pooled_a, pooled_b,
                              PAPER["im"], scale=scale))
    out += _monotone(frame, "ids", "identities", "samples", scale)
    out += _monotone(frame, "samples", "samples per identity", "ids", scale)
    return out


def _table3(frame: pd.DataFrame, scale: str | None) -> list[Verdict]:
    mix, syn, real = (arm(frame, tables.LFW_SET, method=m) for m in ("Mix (DM)", "Syn", "Real"))
    out = []
    if mix and syn:
        out.append(verdict("Domain mixup beats synthetic data alone", "Mix (DM)", "Syn", mix, syn, PAPER["dm_over_syn"],
                           scale=scale))
    if mix and real:
        out.append(verdict("Domain mixup beats the real subset alone", "Mix (DM)", "Real", mix, real, scale=scale))
    return out


def _figure4(frame: pd.DataFrame, scale: str | None) -> list[Verdict]:
    out = []
    none = arm(frame, tables.LFW_SET, varied="none", im=False)
    for f in tables.FACTOR_ORDER[1:]:
        varied = arm(frame, tables.LFW_SET, varied=f, im=False)
        if varied and none:
            out.append(verdict(f"Varying {f} per image helps (no IM)", f"{f} varied", "all held", varied, none,
                               scale=scale))
    a = arm(frame, tables.LFW_SET, by=["varied"], im=True)
    b = arm(frame, tables.LFW_SET, by=["varied"], im=False)
    if a and b:
        settings = len({k[0] for k in set(a) & set(b)}) or len({k[0] for k in a})
        out.append(verdict(f"Identity mixup helps, over {settings} setting(s)", "IM", "no IM", a, b, PAPER["im"],
                           scale=scale))
    return out


def _context(frame: pd.DataFrame, scale: str | None) -> list[Verdict]:
    """The context ablation's comparisons (not the paper's: no paper figure, expected sign +)."""
    CELLS = tables.CONTEXT_CELLS
    cells = {c: arm(frame, tables.LFW_SET, method=c) for c in CELLS}
    builtin, plain, background, photo, one_id, real, aug, long, long_aug, distinct = (cells[c] for c in CELLS)
    claims = [("Faces in context photos beat plain renders", photo, plain, CELLS[3], CELLS[1]),
              ("The whole head over a context photo beats plain renders", background, plain, CELLS[2], CELLS[1]),
              ("A context photo per image beats one per identity", photo, one_id, CELLS[3], CELLS[4]),
              ("The learned model beats the built-in head (plain renders)", plain, builtin, CELLS[1], CELLS[0]),
              ("Faces in context photos reach the real photos", photo, real, CELLS[3], CELLS[5]),
              ("DigiFace-1M's augmentation helps (the scale's epochs)", aug, photo, CELLS[6], CELLS[3]),
              ("DigiFace-1M's augmentation helps with longer training", long_aug, long, CELLS[8], CELLS[7]),
              ("Distinct source people beat independent mosaics (plain renders)", distinct, plain, CELLS[9], CELLS[1])]
    return [verdict(claim, a_label, b_label, a, b, scale=scale) for claim, a, b, a_label, b_label in claims if a and b]


_BUILDERS = {"table1": _table1, "table2": _table2, "table3": _table3, "figure4": _figure4, "context": _context}


def verdicts_from_frame(name: str, frame: pd.DataFrame, scale: str | None = None) -> list[Verdict]:
    """The paper's trends of table `name` checked on a study frame (tables.study_frame) of one scale."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown table {name!r}; choose from {', '.join(_BUILDERS)}")
    if frame.empty:
        return []
    return _BUILDERS[name](frame, scale)


def table_verdicts(name: str, root: str | Path | None = None, scale: str | None = None,
                   model: str | None = None, rows: Sequence[dict[str, Any]] | None = None) -> list[Verdict]:
    """Every trend verdict of table `name` from the registry (face model `model`); with scale None,
    each scale present is checked on its own (runs of two scales are never paired). `rows`
    (`tables.study_rows`) saves reading the runs again."""
    frame = tables.study_frame(root, tables.study_key(name, model), scale, rows)
    if frame.empty:
        return []
    if scale is not None:
        return verdicts_from_frame(name, frame, scale)
    out: list[Verdict] = []
    for sc in sorted({str(s) for s in frame["scale"]}):
        out += verdicts_from_frame(name, frame[frame["scale"].astype(str) == sc], sc)
    return out
