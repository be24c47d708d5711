"""Helpers shared by the command-line verbs: JSON output, clean errors, tqdm progress."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from tqdm import tqdm


def print_json(record: dict[str, Any]) -> None:
    """One JSON line on stdout (benchmarks and machine-readable results)."""
    print(json.dumps(record, sort_keys=False), flush=True)


def positive_int(text: str) -> int:
    """argparse type for counts (images, batches, repeats): 0 or a negative count would divide by
    zero or build an empty tensor deep inside, so it is refused as a bad option naming its value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


#: worker processes an option may start (a forked copy each)
MAX_WORKERS = 64


def count(high: int) -> Callable[[str], int]:
    """argparse type for a count with an upper bound: a positive integer of at most `high`. Why a
    bound: a count sizes the work before it starts, so an absurd one (--identities 1000000000) is
    refused naming the option and its bound, not discovered after hours or an out-of-memory."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {value:,}")
        return value

    parse.__name__ = "count"  # how argparse names the type in its message
    return parse


def tqdm_progress(desc: str, total: int | None = None, unit: str = "it",
                  lazy: bool = False) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A (done, total) callback drawing a tqdm bar on stderr, and a close function. `lazy`: the bar
    appears at the first progress call, so a command refused before any work prints only its
    one-line error."""
    bar: list[tqdm] = []

    def open_bar() -> tqdm:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True))
        return bar[0]

    if not lazy:
        open_bar()

    def update(done: int, total_now: int) -> None:
        b = open_bar()
        if b.total != total_now:
            b.total = total_now
        b.n = done
        b.refresh()

    def close() -> None:
        if bar:
            bar[0].close()

    return update, close


def parse_folds(text: str | None) -> list[int] | None:
    """`--folds 1,2,3` -> [1, 2, 3] (None when not given); a ValueError naming the option otherwise."""
    if not text:
        return None
    try:
        folds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--folds {text!r}: expected comma-separated fold numbers such as 1,2,3") from None
    if not folds:
        raise ValueError(f"--folds {text!r}: no fold given")
    return folds
