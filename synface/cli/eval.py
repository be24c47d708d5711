"""`python -m synface eval`: verification accuracy of a training checkpoint on LFW or a .bin set."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from synface.cli.common import print_json, tqdm_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="k-fold verification accuracy and TAR@FAR of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="a checkpoints/*.pt file of a training run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--lfw", metavar="DIR", help="LFW-layout folder (images/<Name>/..., pairs.txt)")
    src.add_argument("--bin", metavar="FILE", help="insightface verification .bin (10 contiguous folds)")
    p.add_argument("--pairs", metavar="FILE", help="pairs file for --lfw (default DIR/pairs.txt)")
    p.add_argument("--folds", type=int, nargs="+", metavar="K", help="0-based folds to score (default: all)")
    p.add_argument("--center-crop", type=float, default=None,
                   help="keep this central fraction of each image before resizing (e.g. 0.6 for 250x250 LFW)")
    p.add_argument("--far", type=float, default=1e-3, help="FAR target of the TAR figure")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--out", metavar="FILE", help="write the full result (JSON) and its ROC as FILE's .roc.csv")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the text summary")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from synface.base.device import resolve_device
    from synface.base.files import naming
    from synface.eval.run_eval import (
        EvalSet,
        evaluate,
        load_checkpoint_model,
        load_pairs,
    )

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
    if args.out and Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a folder; give a file path for the JSON result")
    device = str(resolve_device(args.device))
    model, cfg = load_checkpoint_model(args.checkpoint, device)
    path = Path(args.lfw or args.bin)
    pairs = load_pairs(path, args.pairs, args.folds)
    evalset = EvalSet(path.stem if args.bin else path.name, pairs, args.center_crop)
    update, close = tqdm_progress(f"eval {evalset.name}", 2 * len(pairs), unit="img")
    try:
        result = evaluate(model, evalset, device, args.batch, args.far, progress=update)
    finally:
        close()
    summary = {
        "set": evalset.name, "checkpoint": str(args.checkpoint), "backbone": cfg.get("backbone"),
        "pairs": len(pairs), "folds": len(result.fold_accuracies),
        "mean_accuracy": result.mean_accuracy, "std_accuracy": result.std_accuracy,
        "far_target": result.far_target, "tar_at_far": result.tar_at_far, "auc": result.auc,
    }
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with naming(out):  # a full disk names the file
            out.write_text(json.dumps({**summary, **result.to_dict(roc_points=None)}, indent=1) + "\n")
        with naming(out.with_suffix(".roc.csv")), open(out.with_suffix(".roc.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["fpr", "tpr", "threshold"])
            w.writerows(zip(result.fpr.tolist(), result.tpr.tolist(), result.roc_thresholds.tolist()))
    if args.json:
        print_json(summary)
    else:
        print(f"{evalset.name}: {100 * result.mean_accuracy:.2f} +- {100 * result.std_accuracy:.2f} % "
              f"({summary['folds']} folds, {len(pairs)} pairs); TAR@FAR={args.far:g}: "
              f"{100 * result.tar_at_far:.2f} %; AUC {result.auc:.4f}")
        if args.out:
            print(f"wrote {args.out} and {Path(args.out).with_suffix('.roc.csv')}", file=sys.stderr)
    return 0
