"""The command-line dispatcher behind `python -m synface <verb>` (and the `synface` script).

Every error a user can cause is one line on stderr (`error: ...`, naming the file, value or
option) and exit code 2, never a traceback: bad values (ValueError, which every DataError and
ConfigError is), missing or unwritable files (every OSError: permission denied, a full disk, a
file where a folder should be), running out of memory, and bad options (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Each verb lives in synface/cli/<module>.py and registers itself.
VERB_MODULES = ("bench", "align", "face_model", "generate", "export", "real", "train", "eval", "runs", "reproduce")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one `error:` line (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m synface", description="SynFace Studio command line")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name in VERB_MODULES:
        importlib.import_module(f"synface.cli.{name}").register(sub)
    return parser


def one_line(text: object) -> str:
    """A message on one line: a multi-line one (a YAML parse error, say) is joined with ' | '."""
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


def os_error_message(exc: OSError) -> str:
    """'<file>: <what>' for an OSError: the file it names (both of a rename) and the OS's reason."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return what
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{where}: {what}"


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch.OutOfMemoryError (CUDA), or the CPU allocator's 'can't allocate memory'."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" \
        or "can't allocate memory" in text or "out of memory" in text


def out_of_memory_message(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"out of memory{': ' + first if first else ''} (ask for less: a smaller --batch, set or model)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from synface.base.jobs import take_slot  # noqa: PLC0415

    take_slot()  # a job the app started works only when one of its slots is free
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: a message, not a traceback
        message = str(exc)
    except OSError as exc:  # missing, unreadable or unwritable file, full disk
        message = os_error_message(exc)
    except MemoryError as exc:
        message = out_of_memory_message(exc)
    except RuntimeError as exc:  # torch's allocators raise RuntimeError subclasses, not MemoryError
        if not is_out_of_memory(exc):
            raise
        message = out_of_memory_message(exc)
    except KeyboardInterrupt:
        print("interrupted (re-run the same command to resume)", file=sys.stderr)
        return 130
    print(f"error: {one_line(message) or 'failed'}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
