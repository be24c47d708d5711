"""Every run of the workspace as one table to filter and compare: what it trained on, how it scored.

The paper's tables (analysis/tables.py) show only the runs `reproduce` tagged; a researcher also
wants their own runs side by side. One row here is one (run, evaluation set): accuracy and its
std over the set's folds, TAR at FAR 1e-3 and 1e-4, AUC, from the run's eval.json (the last
evaluation); what the run trained on (dataset, face model, IM) from the dataset's card, which the
run names by path; backbone and psi from config.json; scale from reproduce's study.json tag.

TAR@FAR comes from eval.json's exact `tar_at_fars` (newer evaluations), its own `tar_at_far` when
its `far_target` is the one asked for, else
from the saved ROC (the highest TPR at a FAR not above the target; the saved ROC may be thinned,
so this never overstates). With n impostor pairs no FAR below 1/n can be measured: the
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

from synface.base.files import read_json
from synface.data.errors import DataError
from synface.runs.registry import compare_runs, find_run, list_runs
from synface.runs.run import Run

__all__ = ["FILTERS", "FARS", "COLUMNS", "results_frame", "filter_frame", "filter_options", "display_frame",
           "tar_at_far_from_roc", "roc_frame", "metric_curves", "config_diff", "accuracy_text"]

#: column -> label of the filters the page and `runs list --filter` offer
FILTERS = {"dataset": "dataset", "face_model": "face model", "backbone": "backbone", "psi": "psi", "im": "IM",
           "scale": "scale", "status": "status", "eval_set": "evaluation set"}
FARS = (1e-3, 1e-4)
COLUMNS = ["run_id", "name", "status", "archived", "evaluation", "dataset", "face_model", "backbone", "psi", "im",
           "scale", "epoch", "epochs", "eval_set", "eval_epoch", "num_pairs", "num_impostor", "acc", "std",
           "tar_1e-3", "tar_1e-4", "far_floor", "auc", "started", "message", "path"]
_STUDY_FILE = "study.json"  # reproduce's tag beside config.json (analysis/tables.py writes it)


def _far_key(far: float) -> str:
    return f"tar_{far:.0e}".replace("e-0", "e-")


def tar_at_far_from_roc(fpr: Sequence[float], tpr: Sequence[float], far: float) -> float | None:
    """The highest TPR among ROC points whose FPR does not exceed `far` (None without a ROC)."""
    f, t = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
    if f.size == 0 or f.size != t.size:
        return None
    ok = f <= far * (1 + 1e-9)
    return float(t[ok].max()) if ok.any() else 0.0


def _tar(ev: Mapping[str, Any], far: float) -> float | None:
    exact = ev.get("tar_at_fars")
    if isinstance(exact, dict) and isinstance(exact.get(f"{far:g}"), (int, float)):
        return float(exact[f"{far:g}"])
    target = ev.get("far_target")
    if isinstance(target, (int, float)) and isinstance(ev.get("tar_at_far"), (int, float)) \
            and abs(float(target) - far) <= 1e-12 + 1e-9 * far:
        return float(ev["tar_at_far"])
    roc = ev.get("roc") if isinstance(ev.get("roc"), dict) else {}
    return tar_at_far_from_roc(roc.get("fpr") or [], roc.get("tpr") or [], far)


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
        if data not in cards:
            card = read_json(Path(data) / "dataset.json", None)
            cards[data] = card if isinstance(card, dict) else {}
        card = cards[data]
        names.append(str(card.get("name") or Path(data).name))
        if card:
            conf = card.get("config") if isinstance(card.get("config"), dict) else {}
            model = str(card.get("model") or conf.get("model") or "builtin")
            im = "-" if "im" not in conf else ("yes" if conf.get("im") else "no")
        elif (Path(data) / "manifest.parquet").is_file():
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


def _eval_rows(run: Run, cfg: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(evaluation state, one score dict per evaluated set)."""
    evals = run.read_eval()
    rows = []
    for name, ev in evals.items():
        if not isinstance(ev, dict):
            continue
        n_imp = ev.get("num_impostor")
        row = {"eval_set": str(name), "eval_epoch": ev.get("epoch"), "num_pairs": ev.get("num_pairs"),
               "num_impostor": n_imp, "auc": ev.get("auc"),
               "far_floor": 1.0 / n_imp if isinstance(n_imp, (int, float)) and n_imp > 0 else None}
        for key, src in (("acc", "mean_accuracy"), ("std", "std_accuracy")):
            value = ev.get(src)
            row[key] = 100.0 * float(value) if isinstance(value, (int, float)) else None
        for far in FARS:
            tar = _tar(ev, far)
            row[_far_key(far)] = None if tar is None else 100.0 * tar
        rows.append(row)
    if rows:
        return "on", rows
    return ("off" if not cfg.get("eval_sets") else "not yet"), []


def results_frame(root: str | Path | None = None, include_archived: bool = False) -> pd.DataFrame:
    """One row per (run, evaluated set), one row for a run without scores; columns COLUMNS."""
    rows: list[dict[str, Any]] = []
    cards: dict[str, dict] = {}
    for summary in list_runs(root, include_archived=include_archived):
        run = Run(summary.path)
        try:
            cfg = run.config()
        except (FileNotFoundError, DataError):
            cfg = {}  # the summary says why (status 'broken')
        tag = read_json(run.path / _STUDY_FILE, {})
        base = {"run_id": summary.id, "name": summary.name, "status": summary.status, "archived": summary.archived,
                **_data_facts(cfg, cards), "backbone": str(cfg.get("backbone") or "-"),
                "psi": _psi_text(cfg.get("psi")), "scale": str(tag.get("scale") or "custom") if isinstance(tag, dict)
                else "custom", "epoch": summary.epoch, "epochs": summary.epochs, "started": summary.started,
                "message": summary.message, "path": summary.path}
        state, scores = _eval_rows(run, cfg)
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


def roc_frame(run_ids: Sequence[str], root: str | Path | None = None,
              eval_sets: Sequence[str] | None = None) -> pd.DataFrame:
    """Long ROC points (run_id, eval_set, fpr, tpr) from each run's eval.json; runs no longer there
    (deleted since the list was drawn) are left out."""
    parts = []
    for run_id in run_ids:
        try:
            run = find_run(run_id, root)
        except (FileNotFoundError, ValueError):
            continue
        for name, ev in run.read_eval().items():
            roc = ev.get("roc") if isinstance(ev, dict) else None
            if not isinstance(roc, dict) or (eval_sets and name not in eval_sets):
                continue
            fpr, tpr = roc.get("fpr") or [], roc.get("tpr") or []
            if len(fpr) == len(tpr) and fpr:
                parts.append(pd.DataFrame({"run_id": run.id, "eval_set": str(name), "fpr": fpr, "tpr": tpr}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id", "eval_set", "fpr", "tpr"])


def metric_curves(run_ids: Sequence[str], root: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss: run_id, step, epoch, loss) and (accuracy: run_id, eval_set, epoch, step, acc in %)
    from each run's metrics.jsonl; runs no longer there are left out."""
    losses, accs = [], []
    for run_id in run_ids:
        try:
            run = find_run(run_id, root)
        except (FileNotFoundError, ValueError):
            continue
        for rec in run.read_metrics():
            if rec.get("type") == "train" and isinstance(rec.get("loss"), (int, float)):
                losses.append({"run_id": run.id, "step": rec.get("step"), "epoch": rec.get("epoch"), "loss": rec["loss"]})
            elif rec.get("type") == "eval" and isinstance(rec.get("mean_accuracy"), (int, float)):
                accs.append({"run_id": run.id, "eval_set": str(rec.get("set")), "epoch": rec.get("epoch"),
                             "step": rec.get("step"), "acc": 100.0 * rec["mean_accuracy"]})
    return (pd.DataFrame(losses, columns=["run_id", "step", "epoch", "loss"]),
            pd.DataFrame(accs, columns=["run_id", "eval_set", "epoch", "step", "acc"]))


def config_diff(run_ids: Sequence[str], root: str | Path | None = None) -> pd.DataFrame:
    """The config keys whose values differ between the runs: one row per key, one column per run
    (values as JSON text). A run id no longer in the workspace is a FileNotFoundError naming it."""
    runs = [find_run(r, root) for r in run_ids]
    differ = compare_runs(runs)["config_differences"]
    rows = [{"key": key, **{run.id: json.dumps(v, default=str) for run, v in zip(runs, values)}}
            for key, values in differ.items()]
    return pd.DataFrame(rows, columns=["key", *[r.id for r in runs]])
