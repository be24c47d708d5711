"""`python -m synface align SRC --out DST`: real photographs -> 112x112 ArcFace crops."""

from __future__ import annotations

import argparse
import sys

from synface.cli.common import MAX_WORKERS, count, print_json, tqdm_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "align",
        help="align an <identity>/<image> folder (or an LFW copy with images/) to 112x112 crops",
    )
    p.add_argument("src", help="image folder: <identity>/<file>, or a root holding images/")
    p.add_argument("--out", required=True, help="output folder (resumable: existing outputs are kept)")
    p.add_argument("--workers", type=count(MAX_WORKERS), default=2, help="worker processes (default 2)")
    p.add_argument("--force", action="store_true", help="re-align images whose output already exists")
    p.set_defaults(func=_align)


def _align(args: argparse.Namespace) -> int:
    """The report on stdout; exit 2 with one line on stderr when nothing usable came out (every
    image unreadable, or no face found in any), a warning line when some images were unreadable."""
    from synface.data.align import REPORT_NAME, align_folder  # noqa: PLC0415  (dlib/torch load on use only)

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    update, close = tqdm_progress("align", unit="img", lazy=True)
    try:
        report = align_folder(args.src, args.out, progress=update, workers=args.workers, force=args.force)
    finally:
        close()
    print_json(report.to_dict())
    processed = report.total - report.skipped_existing
    if processed and report.detector == 0 and report.fallback > 0:
        print(f"error: no face found in any of the {report.fallback} readable images of {args.src} (all got the "
              f"fixed fallback crop); are they face photographs? (report: {args.out}/{REPORT_NAME})", file=sys.stderr)
        return 2
    if report.unreadable:
        print(f"warning: {report.unreadable} of {processed} images could not be read and were skipped "
              f"(e.g. {report.unreadable_paths[0]}; all in {args.out}/{REPORT_NAME})", file=sys.stderr)
    return 0
