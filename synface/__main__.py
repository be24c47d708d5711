"""`python -m synface <verb>`: the command-line client of the library."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each verb lives in synface/cli/<module>.py and registers itself.
VERB_MODULES = ("bench", "align", "face_model", "generate", "export", "train", "eval", "runs", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m synface", description="SynFace Studio command line")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name in VERB_MODULES:
        importlib.import_module(f"synface.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:  # bad input: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (re-run the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
