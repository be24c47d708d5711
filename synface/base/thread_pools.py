"""Long-lived thread pools, one per purpose and size, for work whose heavy part releases the GIL
(numba `nogil` kernels, numpy, scipy, PIL).

Why one place: a pool started per call costs thread start-up on every render, and a pool kept
in a module global is dead in a forked child (it has none of the parent's threads), so each
cache is cleared after a fork. Purposes get separate pools, so a task never waits on a pool its
own caller is blocking.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@functools.cache
def named_pool(purpose: str, workers: int) -> ThreadPoolExecutor:
    """The pool of `workers` threads for `purpose` (created on first use)."""
    return ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix=f"synface-{purpose}")


os.register_at_fork(after_in_child=named_pool.cache_clear)


def map_in_pool(purpose: str, workers: int, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[fn(x) for x in items], in order, on `purpose`'s pool when there are two items or more."""
    items = list(items)
    if len(items) < 2 or workers < 2:
        return [fn(x) for x in items]
    return list(named_pool(purpose, workers).map(fn, items))
