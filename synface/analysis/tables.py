"""Tables 1-3 and Figure 4 assembled from the run registry, as pandas DataFrames.

`reproduce` tags each of its runs (`Run.tag_study`): the studies the run serves, the cell of each
study's grid it fills (e.g. {"ids": 100, "samples": 10, "im": true}), its seed and scale. The
numbers come from each run's last evaluation of each set (`Run.read_eval`, with its per-fold
accuracies).

Aggregation over seeds pools the fold accuracies of every seed's run: `acc` and `std` are the
mean and standard deviation over (seeds x folds) values, in percent; `seed_std` is the spread of
the per-run means and `n_seeds` how many runs went in. The same frames feed the markdown/CSV
written by reproduce and the app's Results page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["STUDIES", "study_rows", "study_frame", "aggregate", "table1", "table2", "table3", "figure4", "context",
           "build_table", "study_key", "to_markdown"]

STUDIES = ("table1", "table2", "table3", "figure4", "context")
LFW_SET = "LFW"
BENCH_SET = "SynBench"
FACTOR_ORDER = ["none", "pose", "expression", "illumination", "all"]
#: the context study's long cells train this many times the scale's epochs
CONTEXT_LONG_EPOCHS = 3
#: the context study's cells (synface/studies/context_study.py), in the report's order
CONTEXT_CELLS = ("Syn built-in, plain", "Syn, plain", "Syn, context background", "Syn, context photo",
                 "Syn, context photo, one per identity", "Real (LFW folds 1-3)", "Syn, context photo + DigiFace aug",
                 f"Syn, context photo, {CONTEXT_LONG_EPOCHS}x epochs",
                 f"Syn, context photo + DigiFace aug, {CONTEXT_LONG_EPOCHS}x epochs", "Syn, plain, distinct source people")


def study_key(table: str, model: str | None = None) -> str:
    """The study a table's runs are tagged with: the table's name for the built-in face model,
    '<table>-<model>' for a learned one (so tables of two models never pool)."""
    return table if model in (None, "", "builtin") else f"{table}-{model}"


def study_rows(root: str | Path | None = None, scale: str | None = None, views: Sequence[Any] | None = None
               ) -> list[dict[str, Any]]:
    """One dict per (tagged run, study, eval set) with its fold accuracies, every study at once (at
    `scale`, when given): what `study_frame` and `build_table` filter. From `views`
    (`synface.analysis.run_views.load_runs`; archived ones are left out) when given, else from the
    workspace's runs/."""
    from synface.base.workspace import workspace_root  # noqa: PLC0415
    from synface.eval.verification import VerificationResult  # noqa: PLC0415
    from synface.runs.run import Run  # noqa: PLC0415

    if views is not None:
        held = [(v.run.path.name, v.tag, v.evals, v.status) for v in views if not v.summary.archived]
    else:
        base = workspace_root(root) / "runs"
        runs = [Run(p) for p in sorted(base.iterdir()) if p.is_dir()] if base.is_dir() else []
        held = [(run.path.name, run.study_tag(), None, None) for run in runs]
    rows: list[dict[str, Any]] = []
    for name, tag, evals, status in held:
        if not tag or (scale is not None and tag.get("scale") != scale):
            continue
        if evals is None:  # read only for tagged runs
            run = Run(workspace_root(root) / "runs" / name)
            evals, status = run.read_eval(), run.status()
        results = {n: VerificationResult.from_dict(ev) for n, ev in evals.items() if isinstance(ev, dict)}
        for st, cell in (tag.get("cells") or {}).items():
            for set_name, ev in results.items():
                rows.append({"run_id": name, "study": st, "scale": tag.get("scale"), "seed": tag.get("seed"),
                             "key": tag.get("key"), "status": status.get("status"), "eval_set": set_name,
                             "mean_accuracy": _stored(ev.mean_accuracy), "std_accuracy": _stored(ev.std_accuracy),
                             "fold_accuracies": [float(a) for a in ev.fold_accuracies], **cell})
    return rows


def study_frame(root: str | Path | None = None, study: str | None = None, scale: str | None = None,
                rows: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per (tagged run, study, eval set) with its fold accuracies; empty frame when none.
    `rows` (`study_rows`) saves reading the runs again."""
    rows = study_rows(root, scale) if rows is None else rows
    return pd.DataFrame([r for r in rows if (study is None or r["study"] == study)
                         and (scale is None or r["scale"] == scale)])


def _stored(value: float) -> float | None:
    """A stored score, None where the record has none (NaN once read by `VerificationResult.from_dict`)."""
    return None if value != value else value


def aggregate(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Pool fold accuracies over seeds per group: acc, std (over seeds x folds), seed_std, n_seeds, in %."""
    out = []
    if frame.empty:
        return pd.DataFrame(columns=[*by, "eval_set", "acc", "std", "seed_std", "n_seeds", "n_folds"])
    for keys, grp in frame.groupby([*by, "eval_set"], dropna=False, sort=False):
        pooled = np.concatenate([np.asarray(f, dtype=float) for f in grp["fold_accuracies"]]) * 100
        means = grp["mean_accuracy"].astype(float).to_numpy() * 100
        keys = keys if isinstance(keys, tuple) else (keys,)
        out.append({**dict(zip([*by, "eval_set"], keys)), "acc": float(pooled.mean()), "std": float(pooled.std()),
                    "seed_std": float(means.std()) if len(means) > 1 else float("nan"),
                    "n_seeds": int(grp["seed"].nunique()), "n_folds": int(max(len(f) for f in grp["fold_accuracies"]))})
    return pd.DataFrame(out)


def _wide(agg: pd.DataFrame, index: list[str], column: str, label: Callable[[Any], str]) -> pd.DataFrame:
    """Long aggregate -> one row per index, `<label> acc`/`<label> std` columns per value of `column`."""
    if agg.empty:
        return pd.DataFrame(columns=index)
    parts = []
    for value, grp in agg.groupby(column, sort=False, dropna=False):
        g = grp.set_index(index)[["acc", "std"]].rename(columns={"acc": f"{label(value)} acc", "std": f"{label(value)} std"})
        parts.append(g)
    wide = pd.concat(parts, axis=1)
    seeds = agg.groupby(index, dropna=False)["n_seeds"].min()
    wide["seeds"] = seeds
    return wide.reset_index()


def table1(root: str | Path | None = None, scale: str | None = None, model: str | None = None,
           rows: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Cross-domain: rows = training data (synthetic / real), columns = LFW and the synthetic benchmark."""
    frame = study_frame(root, study_key("table1", model), scale, rows)
    if frame.empty:
        return pd.DataFrame(columns=["train", "train_set"])
    agg = aggregate(frame, ["train", "train_set"])
    return _wide(agg, ["train", "train_set"], "eval_set", str)


def table2(root: str | Path | None = None, scale: str | None = None, eval_set: str = LFW_SET,
           model: str | None = None, rows: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Identities x samples per identity, without and with identity mixup, on `eval_set`."""
    frame = study_frame(root, study_key("table2", model), scale, rows)
    if frame.empty:
        return pd.DataFrame(columns=["ids", "samples"])
    frame = frame[frame["eval_set"] == eval_set]
    agg = aggregate(frame, ["ids", "samples", "im"])
    wide = _wide(agg, ["ids", "samples"], "im", lambda im: "IM" if bool(im) else "no IM")
    if {"IM acc", "no IM acc"} <= set(wide.columns):
        wide["IM gain"] = wide["IM acc"] - wide["no IM acc"]
    return wide.sort_values(["ids", "samples"]).reset_index(drop=True)


def table3(root: str | Path | None = None, scale: str | None = None, eval_set: str = LFW_SET,
           model: str | None = None, rows: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Synthetic only / real subset only / both with domain mixup, on `eval_set`."""
    return _by_method(study_frame(root, study_key("table3", model), scale, rows), eval_set, ("Syn", "Real", "Mix (DM)"))


def _by_method(frame: pd.DataFrame, eval_set: str, methods: Sequence[str]) -> pd.DataFrame:
    """One row per (method, data) cell on `eval_set`, in the order of `methods` (others last)."""
    if frame.empty:
        return pd.DataFrame(columns=["method", "data"])
    frame = frame[frame["eval_set"] == eval_set]
    wide = _wide(aggregate(frame, ["method", "data"]), ["method", "data"], "eval_set", str)
    order = {m: i for i, m in enumerate(methods)}
    return wide.sort_values("method", key=lambda s: s.map(order).fillna(len(order))).reset_index(drop=True)


def figure4(root: str | Path | None = None, scale: str | None = None, eval_set: str = LFW_SET,
            model: str | None = None, rows: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Which factors vary per image (none / one / all), without and with IM, on `eval_set`."""
    frame = study_frame(root, study_key("figure4", model), scale, rows)
    if frame.empty:
        return pd.DataFrame(columns=["varied"])
    frame = frame[frame["eval_set"] == eval_set]
    agg = aggregate(frame, ["varied", "im"])
    wide = _wide(agg, ["varied"], "im", lambda im: "IM" if bool(im) else "no IM")
    rank = {f: i for i, f in enumerate(FACTOR_ORDER)}
    return wide.sort_values("varied", key=lambda s: s.map(rank).fillna(99)).reset_index(drop=True)


def context(root: str | Path | None = None, scale: str | None = None, eval_set: str = LFW_SET,
            model: str | None = None, rows: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """The context ablation (synface/studies/context_study.py): one row per cell, on `eval_set`."""
    return _by_method(study_frame(root, study_key("context", model), scale, rows), eval_set, CONTEXT_CELLS)


_BUILDERS: dict[str, Callable[..., pd.DataFrame]] = {"table1": table1, "table2": table2, "table3": table3,
                                                      "figure4": figure4, "context": context}


def build_table(name: str, root: str | Path | None = None, scale: str | None = None,
                model: str | None = None, rows: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Table `name` from the runs tagged for it (with face model `model`: None or 'builtin' for the
    built-in head); `rows` (`study_rows`) saves reading the runs again."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown table {name!r}; choose from {', '.join(_BUILDERS)}")
    return _BUILDERS[name](root, scale, model=model, rows=rows)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub table; `X acc`/`X std` column pairs are shown as one `X` column 'acc ± std' (%)."""
    if df.empty:
        return "_no finished runs yet_\n"
    cols: list[tuple[str, Callable[..., str]]] = []  # each called with a row
    used = set()
    for c in df.columns:
        if c in used:
            continue
        if c.endswith(" acc") and c[:-4] + " std" in df.columns:
            base = c[:-4]
            used |= {c, base + " std"}
            cols.append((base, lambda r, b=base: _pm(r[b + " acc"], r[b + " std"])))
        elif c.endswith(" std") and c[:-4] + " acc" in df.columns:
            continue
        else:
            used.add(c)
            cols.append((c, lambda r, k=c: _cell(r[k])))
    lines = ["| " + " | ".join(name for name, _ in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(f(row) for _, f in cols) + " |")
    return "\n".join(lines) + "\n"


def _pm(acc: Any, std: Any) -> str:
    if acc is None or (isinstance(acc, float) and np.isnan(acc)):
        return "-"
    return f"{acc:.2f} ± {std:.2f}"


def _cell(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "-"
        # pandas turns integer cells (ids, samples, seeds) into floats when it builds a row
        return str(int(v)) if float(v).is_integer() else f"{v:.2f}"
    return str(v)
