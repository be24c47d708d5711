"""Helpers shared by the command-line verbs: JSON output, clean errors, tqdm progress."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from tqdm import tqdm


def print_json(record: dict[str, Any]) -> None:
    """One JSON line on stdout (benchmarks and machine-readable results)."""
    print(json.dumps(record, sort_keys=False), flush=True)


def tqdm_progress(desc: str, total: int | None = None, unit: str = "it") -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A (done, total) callback drawing a tqdm bar on stderr, and a close function."""
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total_now: int) -> None:
        if bar.total != total_now:
            bar.total = total_now
        bar.n = done
        bar.refresh()

    return update, bar.close
