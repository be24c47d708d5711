"""`python -m synface eval`: verification accuracy of a checkpoint or a run on LFW, .bin, IJB or registered sets.

    python -m synface eval --run RUN                       # every registered verification set, into the run
    python -m synface eval --run RUN --sets cfp_fp,agedb_30
    python -m synface eval --checkpoint last.pt --bin cfp_fp.bin
    python -m synface eval --checkpoint last.pt --ijb IJB_C  # TAR at FAR 1e-6 .. 1e-1 (synface.eval.ijb)

Every set is checked before anything is scored: it must be scorable, and it must not test people
the checkpoint trained on unless `--allow-overlap` accepts that (the result records it).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from synface.cli.common import count, print_json, tqdm_progress

OVERRIDE_HINT = "pass --allow-overlap (the result records it)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="k-fold verification accuracy and TAR@FAR of a checkpoint or a run")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a checkpoints/*.pt file of a training run")
    which.add_argument("--run", metavar="RUN", help="a run (id or folder): its last checkpoint, results into its eval.json")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--lfw", metavar="DIR", help="LFW-layout folder (images/<Name>/..., pairs.txt)")
    src.add_argument("--bin", metavar="FILE", help="insightface verification .bin (10 contiguous folds)")
    src.add_argument("--ijb", metavar="DIR", help="IJB-B/C folder in insightface's layout (meta/, loose_crop/): "
                                                  "template 1:1 verification, TAR at FAR 1e-6 .. 1e-1")
    src.add_argument("--sets", metavar="NAMES", help="registered verification sets, comma-separated, or 'all' "
                     "(the default without --lfw/--bin)")
    p.add_argument("--pairs", metavar="FILE", help="pairs file for --lfw (default DIR/pairs.txt)")
    p.add_argument("--folds", type=int, nargs="+", metavar="K", help="0-based folds of --lfw/--bin to score (default: all)")
    p.add_argument("--center-crop", type=float, default=None,
                   help="keep this central fraction of each image before resizing (e.g. 0.6 for 250x250 LFW)")
    p.add_argument("--far", type=float, default=1e-3, help="FAR target of the TAR figure")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--batch", type=count(4096), default=128)
    p.add_argument("--allow-overlap", action="store_true",
                   help="score sets that share people with the checkpoint's training data (recorded)")
    p.add_argument("--root", metavar="DIR", help="workspace root (default $SYNFACE_HOME or ./workspace)")
    p.add_argument("--out", metavar="FILE", help="one set: write the full result (JSON) and its ROC as FILE's .roc.csv")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the text summary")
    p.set_defaults(func=run_eval)


def _check_options(args: argparse.Namespace) -> None:
    if args.folds is not None and len(set(args.folds)) < 2:
        raise ValueError("--folds needs at least 2 folds (each threshold is chosen on the others)")
    if args.folds is not None and min(args.folds) < 0:
        raise ValueError(f"--folds are 0-based fold numbers, got {min(args.folds)}")
    if args.center_crop is not None and not 0 < args.center_crop <= 1:  # nan fails too
        raise ValueError(f"--center-crop must be a fraction in (0, 1], got {args.center_crop:g}")
    if not 0 < args.far < 1:
        raise ValueError(f"--far must be a false-accept rate in (0, 1), got {args.far:g}")
    if args.batch < 1:
        raise ValueError(f"--batch must be a positive integer, got {args.batch}")
    if args.out:
        from synface.base.files import check_file_target  # noqa: PLC0415

        check_file_target(args.out, "--out")  # before any scoring
    if args.pairs and not args.lfw:
        raise ValueError("--pairs goes with --lfw")
    if args.folds is not None and not (args.lfw or args.bin):
        raise ValueError("--folds goes with --lfw or --bin (a registered set scores its own test folds)")


def _run_checkpoint(args: argparse.Namespace):
    """(run or None, checkpoint path): a run must have finished or stopped, and have a checkpoint."""
    if not args.run:
        return None, Path(args.checkpoint)
    from synface.runs.registry import find_run
    from synface.runs.run import ACTIVE_STATES

    run = find_run(args.run, args.root)
    state = run.status().get("status")
    if state in (*ACTIVE_STATES, "queued"):
        raise ValueError(f"run {run.id} is {state}; score it when it has finished or stopped (or give --checkpoint)")
    if not run.last_checkpoint.is_file():
        raise ValueError(f"run {run.id} has no checkpoint yet ({run.last_checkpoint})")
    return run, run.last_checkpoint


def _specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The sets to score: --lfw / --bin, or registered verification sets."""
    from synface.data.realsets import eval_specs

    if args.ijb:
        return [{"path": str(Path(args.ijb)), "name": Path(args.ijb).name}]
    if args.lfw or args.bin:
        path = Path(args.lfw or args.bin)
        return [{"path": str(path), "name": path.stem if args.bin else path.name, "pairs": args.pairs,
                 "folds": args.folds, "center_crop": args.center_crop}]
    names = [n.strip() for n in (args.sets or "all").split(",") if n.strip()]
    specs = eval_specs(names, args.root, args.center_crop)
    if not specs:
        raise ValueError("no verification sets are registered: register one with `python -m synface real add FILE` "
                         "or give --lfw / --bin")
    return specs


def _store(run, name: str, result, checkpoint: Path, overlap: str | None) -> None:
    """The result in the run's eval.json (full, with the ROC) and metrics.jsonl (compact)."""
    status = run.status()
    source = {"scored_by": "eval", "checkpoint": str(checkpoint), **({"identity_overlap": overlap} if overlap else {})}
    run.record_eval(name, result, epoch=int(status.get("epoch") or 0), step=int(status.get("step") or 0),
                    source=source)


def _write_out(out: Path, summary: dict, result) -> None:
    from synface.base.files import naming

    out.parent.mkdir(parents=True, exist_ok=True)
    with naming(out):  # a full disk names the file
        out.write_text(json.dumps({**summary, **result.to_dict(roc_points=None)}, indent=1) + "\n")
    with naming(out.with_suffix(".roc.csv")), open(out.with_suffix(".roc.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["fpr", "tpr", "threshold"])
        w.writerows(zip(result.fpr.tolist(), result.tpr.tolist(), result.roc_thresholds.tolist()))


def run_eval(args: argparse.Namespace) -> int:
    from synface.base.device import resolve_device
    from synface.data.identity_overlap import check_launch
    from synface.eval.run_eval import evaluate
    from synface.eval.sets import open_eval_set
    from synface.models.checkpoint import load_checkpoint_model

    _check_options(args)
    run, checkpoint = _run_checkpoint(args)
    specs = _specs(args)
    if args.out and len(specs) != 1:
        raise ValueError(f"--out takes one set; {len(specs)} are scored (with --run the results go into the run)")
    device = str(resolve_device(args.device))
    model, cfg = load_checkpoint_model(checkpoint, device)
    report = check_launch({**cfg, "eval_sets": specs, "allow_overlap": args.allow_overlap}, args.root, OVERRIDE_HINT)
    if report.overlapping:
        print(f"warning: {report.summary()}", file=sys.stderr)
    for note in report.notes():
        print(f"note: {note}", file=sys.stderr)
    overlap = {s.label: s.describe() for s in report.overlapping}
    summaries = []
    for spec in specs:
        evalset = open_eval_set(spec)
        update, close = tqdm_progress(f"eval {evalset.name}", evalset.num_images, unit="img")
        try:
            result = evaluate(model, evalset, device, args.batch, args.far, progress=update)
        finally:
            close()
        summary = {
            "set": evalset.name, "checkpoint": str(checkpoint), "backbone": cfg.get("backbone"),
            "pairs": evalset.num_pairs, "folds": len(result.fold_accuracies),
            "mean_accuracy": result.mean_accuracy, "std_accuracy": result.std_accuracy,
            "far_target": result.far_target, "tar_at_far": result.tar_at_far, "auc": result.auc,
            **({"identity_overlap": overlap[evalset.name]} if evalset.name in overlap else {}),
            **({"tar_at_fars": result.exact_tars} if result.exact_tars else {}),
        }
        summaries.append(summary)
        if run is not None:
            _store(run, evalset.name, result, checkpoint, overlap.get(evalset.name))
        if args.out:
            _write_out(Path(args.out), summary, result)
        if not args.json:
            print(f"{evalset.name}: {100 * result.mean_accuracy:.2f} +- {100 * result.std_accuracy:.2f} % "
                  f"({summary['folds']} folds, {evalset.num_pairs} pairs); TAR@FAR={args.far:g}: "
                  f"{100 * result.tar_at_far:.2f} %; AUC {result.auc:.4f}")
            if result.exact_tars:
                print("  TAR at FAR " + ", ".join(f"{far}: {100 * tar:.2f} %" for far, tar in result.exact_tars.items()))
    if args.json:
        single = bool(args.lfw or args.bin or args.ijb)
        print_json(summaries[0] if single else {"run": run.id if run else None, "results": summaries})
    if args.out:
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.roc.csv')}", file=sys.stderr)
    if run is not None:
        print(f"stored in {run.eval_path}", file=sys.stderr)
    return 0
