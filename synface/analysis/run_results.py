"""Every run of the workspace as one table to filter and compare: what it trained on, how it scored.

The paper's tables (analysis/tables.py) show only the runs `reproduce` tagged; a researcher also
wants their own runs side by side. One row here is one (run, evaluation set): accuracy and its
std over the set's folds, TAR at FAR 1e-3 and 1e-4, AUC, from the run's last evaluation of each
set (`Run.read_eval`); what the run trained on (dataset, face model, IM) from the dataset's card
(`SynthSet`), which the run names by path; backbone and psi from config.json; scale from
reproduce's study tag.

TAR@FAR is `VerificationResult.tar_at`: the exact value kept from the full ROC (newer
evaluations), the result's own `tar_at_far` when its `far_target` is the one asked for, else from
the saved ROC (the highest TPR at a FAR not above the target; the saved ROC may be thinned, so
this never overstates). With n impostor pairs no FAR below 1/n can be measured: the
`far_floor` column says where that floor is, so a TAR@1e-4 on 1,500 impostors reads as what it is
(TAR with no false accept at all).

A run whose config names no evaluation sets has `evaluation` "off" (one row, no scores); one that
names sets but has no eval.json yet is "not yet". No Streamlit here: the Results page and
`python -m synface runs` both show these frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from synface.analysis.run_views import RunView, load_runs, view_of
from synface.data.synth_set import SynthSet
from synface.eval.verification import REPORTED_FARS, VerificationResult
from synface.runs.registry import config_differences, find_run

__all__ = ["FILTERS", "FARS", "COLUMNS", "results_frame", "filter_frame", "filter_options", "display_frame",
           "roc_frame", "tar_frame", "metric_curves", "config_diff", "accuracy_text"]

#: column -> label of the filters the page and `runs list --filter` offer
FILTERS = {"dataset": "dataset", "face_model": "face model", "backbone": "backbone", "psi": "psi", "im": "IM",
           "scale": "scale", "status": "status", "eval_set": "evaluation set"}
FARS = (1e-3, 1e-4)
COLUMNS = ["run_id", "name", "status", "archived", "evaluation", "dataset", "face_model", "backbone", "psi", "im",
           "scale", "epoch", "epochs", "eval_set", "eval_epoch", "num_pairs", "num_impostor", "acc", "std",
           "tar_1e-3", "tar_1e-4", "far_floor", "auc", "started", "message", "path"]


def _far_key(far: float) -> str:
    return f"tar_{far:.0e}".replace("e-0", "e-")


def _known(value: float) -> float | None:
    """None for a number the stored record does not hold (NaN once read)."""
    return None if value != value else value


def _psi_text(psi: Any) -> str:
    if psi is None or psi == "none":
        return "none"
    if isinstance(psi, (int, float)) and not isinstance(psi, bool):
        return f"{float(psi):g}"
    return str(psi)


def _data_facts(cfg: Mapping[str, Any], cards: dict[str, dict]) -> dict[str, str]:
    """dataset, face model and IM of a run, from the card of the set its config names by path."""
    data, real = cfg.get("data"), cfg.get("real_root")
    names, model, im = [], "-", "-"
    if isinstance(data, str) and data:
        synth = SynthSet(data)
        if data not in cards:
            cards[data] = synth.card_or_empty()
        card = cards[data]
        names.append(str(card.get("name") or Path(data).name))
        if card:
            conf = c if isinstance(c := card.get("config"), dict) else {}
            model = str(card.get("model") or conf.get("model") or "builtin")
            im = "-" if "im" not in conf else ("yes" if conf.get("im") else "no")
        elif synth.has_manifest():
            model, im = "?", "?"  # a synthetic set without its card (a hand-made or damaged one)
        elif Path(data).is_dir():
            model = "real"  # an ImageFolder of photographs
        else:
            model, im = "? (dataset not found)", "?"
    if isinstance(real, str) and real:
        names.append(Path(real).name)
        if model == "-":
            model = "real"
    return {"dataset": " + ".join(names) or "-", "face_model": model, "im": im}


def _eval_rows(evals: Mapping[str, Any], cfg: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(evaluation state, one score dict per evaluated set of eval.json `evals`)."""
    rows = []
    for name, stored in evals.items():
        if not isinstance(stored, dict):
            continue
        ev = VerificationResult.from_dict(stored)
        n_imp = ev.num_impostor or None  # 0: the record does not say
        row = {"eval_set": str(name), "eval_epoch": stored.get("epoch"), "num_pairs": ev.num_pairs or None,
               "num_impostor": n_imp, "auc": _known(ev.auc), "far_floor": 1.0 / n_imp if n_imp else None}
        for key, value in (("acc", ev.mean_accuracy), ("std", ev.std_accuracy)):
            row[key] = None if value != value else 100.0 * value
        for far in FARS:
            tar = ev.tar_at(far)
            row[_far_key(far)] = None if tar is None else 100.0 * tar
        rows.append(row)
    if rows:
        return "on", rows
    return ("off" if not cfg.get("eval_sets") else "not yet"), []


def results_frame(root: str | Path | None = None, include_archived: bool = False,
                  views: Sequence[RunView] | None = None, include_smoke: bool = True) -> pd.DataFrame:
    """One row per (run, evaluated set), one row for a run without scores; columns COLUMNS. From
    `views` when given (`load_runs`), else from the workspace's runs; smoke-test runs
    (`Run.is_smoke`) only with `include_smoke`."""
    rows: list[dict[str, Any]] = []
    cards: dict[str, dict] = {}
    for view in load_runs(root, include_archived) if views is None else views:
        if view.summary.smoke and not include_smoke:
            continue
        summary, cfg = view.summary, view.config  # a config that does not parse is {}: the summary says why
        base = {"run_id": summary.id, "name": summary.name, "status": summary.status, "archived": summary.archived,
                **_data_facts(cfg, cards), "backbone": str(cfg.get("backbone") or "-"),
                "psi": _psi_text(cfg.get("psi")), "scale": str(view.tag.get("scale") or "custom"),
                "epoch": summary.epoch, "epochs": summary.epochs, "started": summary.started,
                "message": summary.message, "path": summary.path}
        state, scores = _eval_rows(view.evals, cfg)
        for score in scores or [{}]:
            rows.append({**base, "evaluation": state, **score})
    return pd.DataFrame(rows, columns=COLUMNS)


def filter_options(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The values each filter column takes in `frame`, as sorted strings (what a multiselect offers)."""
    return {col: sorted({str(v) for v in frame[col].dropna()}) if col in frame else [] for col in FILTERS}


def filter_frame(frame: pd.DataFrame, chosen: Mapping[str, Iterable[str] | None]) -> pd.DataFrame:
    """The rows whose value in each filtered column is one of the chosen ones (no choice: all rows).
    An unknown column is a ValueError naming it and the ones there are."""
    keep = pd.Series(True, index=frame.index)
    for col, values in chosen.items():
        if col not in FILTERS:
            raise ValueError(f"unknown filter {col!r}; filter on {', '.join(FILTERS)}")
        values = [str(v) for v in values or []]
        if values:
            keep &= frame[col].astype(str).isin(values)
    return frame[keep]


def accuracy_text(row: Mapping[str, Any]) -> str:
    """'71.10 ± 1.60', or what stands in for a score: 'evaluation off', 'not evaluated yet'."""
    if row.get("evaluation") == "off":
        return "evaluation off"
    acc = row.get("acc")
    if acc is None or (isinstance(acc, float) and np.isnan(acc)):
        return "not evaluated yet"
    std = row.get("std")
    return f"{acc:.2f} ± {0.0 if std is None or np.isnan(std) else std:.2f}"


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The results frame with the columns a person reads, scores first (accuracy as 'acc ± std', in %)."""
    out = pd.DataFrame({
        "run": frame["run_id"], "eval set": frame["eval_set"].astype(object).fillna("-"),
        "accuracy (%)": [accuracy_text(r) for r in frame.to_dict("records")],
        **{f"TAR@FAR={far:.0e} (%)".replace("e-0", "e-"): frame[_far_key(far)].astype(float).round(2) for far in FARS},
        "FAR floor": frame["far_floor"], "AUC": frame["auc"].astype(float).round(4),
        "pairs": frame["num_pairs"].astype("Float64").astype("Int64"), "status": frame["status"],
        "dataset": frame["dataset"], "face model": frame["face_model"], "backbone": frame["backbone"],
        "psi": frame["psi"], "IM": frame["im"], "scale": frame["scale"],
        "epoch": [f"{e}/{n}" for e, n in zip(frame["epoch"], frame["epochs"])], "message": frame["message"],
    })
    if frame["archived"].any():
        out.insert(1, "archived", frame["archived"].map({True: "yes", False: ""}))
    return out.reset_index(drop=True)


def _chosen(run_ids: Sequence[str], root: str | Path | None, views: Sequence[RunView] | None,
            strict: bool = False) -> list[RunView]:
    """The views of `run_ids`: from `views` when there, else read now; a run no longer in the
    workspace is left out (a FileNotFoundError naming it with `strict`)."""
    known = {v.id: v for v in views or []}
    out = []
    for run_id in run_ids:
        if run_id in known:
            out.append(known[run_id])
            continue
        try:
            out.append(view_of(find_run(run_id, root)))
        except (FileNotFoundError, ValueError):
            if strict:
                raise
    return out


def roc_frame(run_ids: Sequence[str], root: str | Path | None = None,
              eval_sets: Sequence[str] | None = None, views: Sequence[RunView] | None = None) -> pd.DataFrame:
    """Long ROC points (run_id, eval_set, fpr, tpr) from each run's evaluations (in `views` when
    given); runs no longer there (deleted since the list was drawn) are left out."""
    parts = []
    for view in _chosen(run_ids, root, views):
        run = view.run
        for name, stored in view.evals.items():
            if not isinstance(stored, dict) or (eval_sets and name not in eval_sets):
                continue
            ev = VerificationResult.from_dict(stored)
            if ev.fpr.size:
                parts.append(pd.DataFrame({"run_id": run.id, "eval_set": str(name), "fpr": ev.fpr.tolist(),
                                           "tpr": ev.tpr.tolist()}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id", "eval_set", "fpr", "tpr"])


def tar_frame(run_ids: Sequence[str], root: str | Path | None = None,
              views: Sequence[RunView] | None = None) -> pd.DataFrame:
    """TAR (%) at every FAR an evaluation kept exactly, one row per (run, set) that kept more than
    every evaluation keeps (IJB-B/C keep 1e-6 .. 1e-1); columns run_id, eval_set, then 'TAR@<far>' from
    the lowest FAR up. Empty when no chosen run has such an evaluation."""
    rows, fars = [], set()
    for view in _chosen(run_ids, root, views):
        for name, stored in view.evals.items():
            if not isinstance(stored, dict):
                continue
            kept = VerificationResult.from_dict(stored).exact_tars or {}
            values = {float(k): v for k, v in kept.items() if _is_far(k)}
            if set(values) <= set(REPORTED_FARS):  # what every evaluation keeps: the main table shows it
                continue
            fars |= set(values)
            rows.append({"run_id": view.id, "eval_set": str(name), **{f"TAR@{f:g}": 100.0 * v for f, v in values.items()}})
    columns = ["run_id", "eval_set", *[f"TAR@{f:g}" for f in sorted(fars)]]
    return pd.DataFrame(rows, columns=columns)


def _is_far(key: str) -> bool:
    try:
        return 0.0 < float(key) < 1.0
    except ValueError:
        return False


def metric_curves(run_ids: Sequence[str], root: str | Path | None = None,
                  views: Sequence[RunView] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss: run_id, step, epoch, loss) and (accuracy: run_id, eval_set, epoch, step, acc in %)
    from each run's metrics (in `views` when given); runs no longer there are left out."""
    losses, accs = [], []
    for view in _chosen(run_ids, root, views):
        run = view.run
        for rec in view.metrics:
            if rec.get("type") == "train" and isinstance(rec.get("loss"), (int, float)):
                losses.append({"run_id": run.id, "step": rec.get("step"), "epoch": rec.get("epoch"), "loss": rec["loss"]})
            elif rec.get("type") == "eval" and isinstance(rec.get("mean_accuracy"), (int, float)):
                accs.append({"run_id": run.id, "eval_set": str(rec.get("set")), "epoch": rec.get("epoch"),
                             "step": rec.get("step"), "acc": 100.0 * rec["mean_accuracy"]})
    return (pd.DataFrame(losses, columns=["run_id", "step", "epoch", "loss"]),
            pd.DataFrame(accs, columns=["run_id", "eval_set", "epoch", "step", "acc"]))


def config_diff(run_ids: Sequence[str], root: str | Path | None = None,
                views: Sequence[RunView] | None = None) -> pd.DataFrame:
    """The config keys whose values differ between the runs: one row per key, one column per run
    (values as JSON text). A run id no longer in the workspace is a FileNotFoundError naming it."""
    chosen = _chosen(run_ids, root, views, strict=True)
    differ = config_differences([v.config for v in chosen])
    rows = [{"key": key, **{view.id: json.dumps(v, default=str) for view, v in zip(chosen, values)}}
            for key, values in differ.items()]
    return pd.DataFrame(rows, columns=["key", *[v.id for v in chosen]])
