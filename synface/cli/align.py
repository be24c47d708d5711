"""`python -m synface align SRC --out DST`: real photographs -> 112x112 ArcFace crops."""

from __future__ import annotations

import argparse

from synface.cli.common import print_json, tqdm_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "align",
        help="align an <identity>/<image> folder (or an LFW copy with images/) to 112x112 crops",
    )
    p.add_argument("src", help="image folder: <identity>/<file>, or a root holding images/")
    p.add_argument("--out", required=True, help="output folder (resumable: existing outputs are kept)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--force", action="store_true", help="re-align images whose output already exists")
    p.set_defaults(func=_align)


def _align(args: argparse.Namespace) -> int:
    from synface.data.align import align_folder  # noqa: PLC0415  (dlib/torch load on use only)

    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    update, close = tqdm_progress("align", unit="img")
    try:
        report = align_folder(args.src, args.out, progress=update, workers=args.workers, force=args.force)
    finally:
        close()
    print_json(report.to_dict())
    return 0
