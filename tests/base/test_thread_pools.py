"""synface.base.thread_pools: one long-lived pool per purpose, results in order."""

from __future__ import annotations

import threading

from synface.base.thread_pools import map_in_pool, named_pool


def test_a_purpose_keeps_its_pool_and_map_keeps_the_order() -> None:
    assert named_pool("test", 2) is named_pool("test", 2) and named_pool("test", 2) is not named_pool("other", 2)
    seen: set[str] = set()

    def square(x: int) -> int:
        seen.add(threading.current_thread().name)
        return x * x

    assert map_in_pool("test", 2, square, range(50)) == [x * x for x in range(50)]
    assert all(name.startswith("synface-test") for name in seen)
    seen.clear()
    assert map_in_pool("test", 2, square, [7]) == [49] and seen == {threading.current_thread().name}  # one item: here
