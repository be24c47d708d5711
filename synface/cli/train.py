"""`python -m synface train`: one training run, in the workspace's run registry or a given folder.

    python -m synface train --preset cpu-quick --set data=workspace/datasets/syn_1k
    python -m synface train --config paper.yaml --name im_dm
    python -m synface train --resume 20250101-120000-im_dm
    python -m synface train --preset cpu-quick --set data=... --real lfw --eval all   # registered sets
    torchrun --nproc_per_node=8 -m synface train --config paper.yaml --run-dir runs/x

The config is built by `synface.train.run_config`, as the Train page's is. Before a new run's
folder is made, every evaluation set must be scorable and none may test people the run trains
on, unless `--allow-overlap` accepts it (the run records that it did).
"""

from __future__ import annotations

import argparse
import os
import sys

from synface.cli.common import print_json, tqdm_progress

_FRESH = ("created", "queued", "starting")
OVERRIDE_HINT = "pass --allow-overlap (the run records it)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a face recogniser (synthetic, real, IM/DM)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="YAML or JSON config")
    src.add_argument("--preset", choices=["cpu-quick", "paper"], help="start from a preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (value parsed as YAML); repeatable")
    p.add_argument("--name", help="short run name (part of the run id)")
    p.add_argument("--run-dir", metavar="DIR", help="use this folder instead of <root>/runs/<id>")
    p.add_argument("--resume", metavar="RUN", help="continue a run (folder or id) from checkpoints/last.pt")
    p.add_argument("--real", metavar="NAME", help="train also on this registered real set (`real list`): its "
                   "training people, e.g. an LFW copy's training folds")
    p.add_argument("--eval", action="append", default=[], metavar="NAMES",
                   help="evaluate on these registered verification sets (comma-separated; 'all': every one); repeatable")
    p.add_argument("--allow-overlap", action="store_true",
                   help="accept evaluation sets that share people with the training data (recorded in the run)")
    p.add_argument("--root", metavar="DIR", help="workspace root (default $SYNFACE_HOME or ./workspace)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON line")
    p.set_defaults(func=run_train)


def _report_check(report) -> None:
    """An accepted overlap and whatever could not be checked, on stderr."""
    if report.overlapping:
        print(f"warning: {report.summary()}", file=sys.stderr)
    for note in report.notes():
        print(f"note: {note}", file=sys.stderr)


def _prepare(args: argparse.Namespace, ctx):
    """(config, run, resume) on every rank; rank 0 creates the folder and shares its path. A new
    run is checked first (on every rank, so all of them stop on a refusal)."""
    from synface.runs.queue import record_check
    from synface.runs.registry import create_run, find_run
    from synface.runs.run import Run
    from synface.train.config import load_config, parse_overrides
    from synface.train.run_config import run_config
    from synface.base.names import check_name
    from synface.train.data import check_fits_a_batch, check_train_data
    from synface.train.ddp import broadcast_object
    from synface.train.launch_checks import preflight

    overrides = parse_overrides(args.overrides)
    if args.name is not None:
        overrides["name"] = check_name(args.name, "--name")  # part of the run id: never '..' or a path
    if args.resume:
        if args.real or args.eval or args.allow_overlap:
            raise ValueError("--real, --eval and --allow-overlap shape a new run; a resumed run keeps its config")
        run = find_run(args.resume, args.root)
        cfg = load_config(run.config_path, overrides)
        cfg.check_paths()
        return cfg, run, True
    if not args.config and not args.preset:
        raise ValueError("give --config FILE or --preset NAME (or --resume RUN)")
    cfg = run_config(args.preset, args.config, overrides, real=args.real, eval_names=args.eval,
                     allow_overlap=args.allow_overlap, root=args.root)
    existing = Run(args.run_dir) if args.run_dir else None
    prepared = existing is not None and existing.config_path.exists() and not existing.last_checkpoint.exists() \
        and existing.raw_status().get("status") in _FRESH  # by synface.runs.launch, which has checked it
    if prepared:  # the data may have changed since the launch: read it again
        check_fits_a_batch(cfg, check_train_data(cfg).images_per_epoch)
        report = None
    else:  # before the run folder: data, batch, identity overlap, checkpoint space, each one line
        report = preflight(cfg, args.root, OVERRIDE_HINT, run_folder=args.run_dir)
    path = None
    if ctx.is_main:
        if prepared and existing is not None:
            run = existing  # prepared by synface.runs.launch: train into it
            run.write_config(cfg.to_dict())
        else:
            run = create_run(cfg, name=cfg.name, root=args.root, run_dir=args.run_dir)
            record_check(run, report)  # type: ignore[arg-type]  # not prepared: launch_check made one
            _report_check(report)
        path = str(run.path)
    path = broadcast_object(path, ctx)
    return cfg, Run(path), False


def _start_queued(run_queue, root) -> None:
    """Start runs waiting for this one's slot; a damaged queue is a warning here, never an error
    that would hide how this run ended."""
    problems: list[str] = []
    try:
        run_queue(root, problems=problems)
    except (ValueError, OSError) as exc:
        print(f"warning: queued runs not started: {exc}", file=sys.stderr)
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)


def run_train(args: argparse.Namespace) -> int:
    from synface.runs.queue import run_queue
    from synface.train.ddp import DistContext, init_distributed, shutdown
    from synface.train.loop import train

    # Under torchrun the process group must exist before rank 0 creates the run folder.
    device = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("device=")), "auto")
    ctx = init_distributed(device) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else DistContext()
    cfg, run, resume = _prepare(args, ctx)
    if ctx.is_main:
        print(run.path, flush=True)
    update = close = eval_update = None
    bars: dict[str, tuple] = {}  # evaluation bars, one per set and phase, below the training bar
    if ctx.is_main and not args.no_progress:
        update, close = tqdm_progress(f"train {run.id}", None, unit="step")

        def eval_update(label: str, done: int, total: int) -> None:
            if label not in bars:
                bars[label] = tqdm_progress(label, total, unit="img")
            bars[label][0](done, total)
    try:
        result = train(cfg, run.path, resume=resume, progress=update, eval_progress=eval_update, make_folder=False)
    finally:
        if close is not None:
            close()
        for _, close_bar in bars.values():
            close_bar()
        if ctx.is_main and run.path.parent.name == "runs":
            _start_queued(run_queue, run.path.parent.parent)
        shutdown(ctx)
    if ctx.is_main:
        if args.json:
            print_json(result)
        else:
            print(f"{result['status']}: {result['message']}", file=sys.stderr)
            for name, ev in result.get("eval", {}).items():
                print(f"  {name}: {100 * ev['mean_accuracy']:.2f} +- {100 * ev['std_accuracy']:.2f} %, "
                      f"TAR@FAR=1e-3 {100 * ev['tar_at_far']:.2f} %", file=sys.stderr)
    return 1 if result["status"] == "failed" else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m synface.cli.train ...`: the same as `python -m synface train ...`."""
    from synface.cli.main import main as dispatch

    return dispatch(["train", *(sys.argv[1:] if argv is None else argv)])

if __name__ == "__main__":
    sys.exit(main())
