"""`python -m synface reproduce`: rebuild one of the paper's tables end to end, resumably.

    python -m synface reproduce table2 --scale cpu --lfw ../shared/data/lfw --dry-run
    python -m synface reproduce table3 --scale cpu --lfw ../shared/data/lfw --seeds 3
    python -m synface reproduce table3 --scale gpu --lfw .gpu_data/lfw        # one H200, pre-aligned LFW crops
    python -m synface reproduce context --scale cpu --lfw ../shared/data/lfw --model NAME --cells Real
    python -m synface reproduce figure4 --scale paper --lfw /data/lfw --root /big/workspace
"""

from __future__ import annotations

import argparse
import sys

from synface.cli.common import positive_int, print_json, tqdm_progress

#: training seeds per cell at most (each one is a run per cell)
MAX_SEEDS = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    from synface.studies.plan import DEFAULT_SEEDS, SCALES, STUDIES  # noqa: PLC0415

    p = subparsers.add_parser("reproduce", help="rebuild Table 1/2/3 or Figure 4: datasets, runs, results/")
    p.add_argument("table", choices=STUDIES)
    p.add_argument("--scale", choices=list(SCALES), default="cpu",
                   help="cpu: minutes per run on a laptop CPU; gpu: IResNet-50 on one GPU, a table in about 8 min "
                        "(see docs/cli.md); paper: the paper's sizes and recipe; tiny: a smoke test (a few test pairs)")
    p.add_argument("--lfw", required=True, metavar="DIR", help="LFW-layout folder (images/, people.txt, pairs.txt)")
    p.add_argument("--root", metavar="DIR", help="workspace root (default $SYNFACE_HOME or ./workspace)")
    p.add_argument("--seeds", type=positive_int, default=DEFAULT_SEEDS,
                   help=f"training seeds per cell (default {DEFAULT_SEEDS}: the reports' confidence intervals are over "
                        "seeds x test folds)")
    p.add_argument("--out", metavar="DIR",
                   help="where <table>.md/.csv/.html/.png go (default <workspace>/results; the repository's own "
                        "results/ only when named here)")
    p.add_argument("--model", default="builtin",
                   help="face model of the synthetic sets: 'builtin' or a learned model of the workspace; refused "
                        "when its source people appear in the evaluation pairs")
    p.add_argument("--cells", metavar="TEXT", action="append", default=[],
                   help="only the cells whose label contains TEXT (case-insensitive; a whole label: that cell "
                        "alone); repeat for more, e.g. --cells Real --cells 'DigiFace aug': a long study a few "
                        "cells at a time; the report shows every finished cell")
    p.add_argument("--dry-run", action="store_true", help="print the plan and time estimate; run nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as one JSON line")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    from synface.studies.plan import plan_dict  # noqa: PLC0415
    from synface.studies.run import reproduce  # noqa: PLC0415

    def progress(desc: str, total: int):
        if args.no_progress:
            return (lambda d, t: None), (lambda: None)
        return tqdm_progress(desc, total or None)

    if args.seeds > MAX_SEEDS:  # each seed is a run per cell: refused before a plan of millions is made
        raise ValueError(f"--seeds must be at most {MAX_SEEDS}, got {args.seeds:,}")
    plan, paths = reproduce(args.table, args.scale, args.lfw, args.root, args.seeds, args.out,
                            dry_run=args.dry_run, progress=progress, model=args.model,
                            cells=args.cells)
    if args.dry_run:
        if args.json:
            print_json(plan_dict(plan))
        else:
            print(plan.describe())
        return 0
    for kind, path in (paths or {}).items():
        print(f"{kind}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m synface.cli.reproduce ...`: the same as `python -m synface reproduce ...`."""
    from synface.cli.main import main as dispatch

    return dispatch(["reproduce", *(sys.argv[1:] if argv is None else argv)])

if __name__ == "__main__":
    sys.exit(main())
