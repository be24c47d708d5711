"""`python -m synface real`: register real face sets once (LFW copies, ImageFolders, .bin, RecordIO).

    python -m synface real add ../shared/data/lfw --train-folds 1,2,3   # folds 4-5 are the test pairs
    python -m synface real add cfp_fp.bin                                # a verification set for every run
    python -m synface real list
    python -m synface real remove cfp_fp

Registered sets are what `train --real/--eval` and `eval --run` refer to by name.
"""

from __future__ import annotations

import argparse

from synface.cli.common import MAX_WORKERS, count, print_json, tqdm_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("real", help="register, list or remove real sets (LFW, ImageFolder, .bin, RecordIO)")
    p.add_argument("--root", metavar="DIR", help="workspace root (default $SYNFACE_HOME or ./workspace)")
    p.add_argument("--json", action="store_true", help="JSON output")
    which = p.add_subparsers(dest="action")
    a = which.add_parser("add", help="register a folder or file (image folders are aligned into the workspace)")
    a.add_argument("path", help="an LFW copy, an <identity>/<image> folder, a verification .bin, or train.rec")
    a.add_argument("--name", help="the set's name (default: from the path)")
    a.add_argument("--train-folds", metavar="FOLDS",
                   help="LFW: the people.txt folds that train, e.g. 1-3 or 1,2,3 (the other folds' pairs test), "
                        "'all' (training only) or 'none' (a test set only)")
    a.add_argument("--no-align", action="store_true", help="use image folders as they are (already aligned)")
    a.add_argument("--workers", type=count(MAX_WORKERS), default=2, help="alignment processes")
    a.add_argument("--json", action="store_true", dest="json_sub")
    r = which.add_parser("remove", help="forget a set (its aligned copy stays on disk)")
    r.add_argument("name")
    lst = which.add_parser("list", help="the registered sets (default)")
    lst.add_argument("--json", action="store_true", dest="json_sub")
    p.set_defaults(func=run_real)


def _train_folds(path: str, text: str | None) -> list[int] | None:
    """The 0-based training folds of an LFW copy; LFW copies with people.txt must say."""
    from synface.data.realsets import detect_format, lfw_fold_count, parse_train_folds

    if detect_format(path) != "lfw":
        if text is not None:
            raise ValueError(f"--train-folds is for LFW copies (people.txt folds); {path} is not one")
        return None
    folds = lfw_fold_count(path)
    if folds is None:
        if text is not None:
            raise ValueError(f"--train-folds needs people.txt (which people are in which fold); {path} has none")
        return None
    if text is None:
        raise ValueError(f"{path} is an LFW copy with {folds} people.txt folds: say which train with --train-folds "
                         f"(e.g. {'1' if folds < 4 else f'1-{folds - 2}'}: the other folds' pairs then test), 'all' "
                         "(training only) or 'none' (a test set only)")
    return parse_train_folds(text, folds)


def run_real(args: argparse.Namespace) -> int:
    from synface.data.realsets import list_real_sets, register_real_set, remove_real_set

    as_json = args.json or getattr(args, "json_sub", False)
    if args.action == "add":
        if args.workers < 1:
            raise ValueError(f"--workers must be a positive integer, got {args.workers}")
        folds = _train_folds(args.path, args.train_folds)
        update, close = tqdm_progress("align", None, unit="img", lazy=True)
        try:
            entry = register_real_set(args.path, args.name, align=not args.no_align, progress=update, root=args.root,
                                      workers=args.workers, train_folds=folds)
        finally:
            close()
        if as_json:
            print_json(entry.to_dict())
        else:
            print(f"registered {entry.describe()}")
        return 0
    if args.action == "remove":
        from synface.data.realsets import get_real_set

        get_real_set(args.name, args.root)  # an unknown name is an error, not a silent no-op
        remove_real_set(args.name, args.root)
        print(f"removed {args.name}")
        return 0
    sets = list_real_sets(args.root)
    if as_json:
        print_json({"sets": [s.to_dict() for s in sets]})
    elif not sets:
        print("no real sets registered (python -m synface real add PATH)")
    else:
        for s in sets:
            print(s.describe() + ("" if not s.can_verify else "  [verification set]"))
    return 0
