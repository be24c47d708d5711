"""Evaluation inside a training run, made visible: a stage line in status.json while a set is
decoded and embedded, and what each evaluation costs, so the run's ETA counts the evaluations
still ahead instead of freezing while one runs.

Costs are measured: seconds per image of decoding (once per set and resolution when the set fits
in RAM, see `run_eval.CACHE_LIMIT_BYTES`) and of embedding (every evaluation), from this process
or from the eval records of a resumed run. Before a set's first evaluation, decoding is timed on
a few images and embedding is guessed from the training throughput (EMBED_PER_TRAIN_IMAGE).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

__all__ = ["eval_rounds", "EvalCost", "EvalTicker", "EMBED_PER_TRAIN_IMAGE", "STATUS_INTERVAL_S"]

#: an embedded image costs two forward passes (image and mirror) and no backward pass; a trained
#: image costs about three forwards, so embedding is guessed at 2/3 of a trained image's time
#: until the first evaluation measures it
EMBED_PER_TRAIN_IMAGE = 2 / 3
#: status.json is rewritten at most this often during an evaluation (and at each phase's end)
STATUS_INTERVAL_S = 1.0


def eval_rounds(completed: int, epochs: int, eval_every: int) -> int:
    """Evaluations still ahead once `completed` epochs are done: one every `eval_every` epochs
    and one after the last epoch (the training loop's schedule)."""
    every = max(1, int(eval_every))
    return sum(1 for e in range(completed + 1, epochs + 1) if e % every == 0 or e == epochs)


class EvalCost:
    """Seconds per image of decoding and embedding each evaluation set, for the ETA."""

    def __init__(self) -> None:
        self.decode_s: dict[str, float] = {}
        self.embed_s: dict[str, float] = {}
        self._sampled: dict[tuple[str, int], float] = {}

    def seed(self, records: Sequence[dict[str, Any]]) -> None:
        """Take the latest measured rates from a run's eval records (a resumed run)."""
        for rec in records:
            images = rec.get("images")
            if not isinstance(images, int) or images <= 0:
                continue
            for key, into in (("embed_seconds", self.embed_s), ("decode_seconds", self.decode_s)):
                value = rec.get(key)
                if isinstance(value, (int, float)) and value > 0:
                    into[str(rec.get("set"))] = float(value) / images

    def observe(self, name: str, phase: str, images: int, seconds: float) -> None:
        if images > 0 and seconds > 0:
            (self.decode_s if phase == "decoding" else self.embed_s)[name] = seconds / images

    def decode_rate(self, evalset, size: int) -> float:
        """Seconds per decoded image: measured, else timed once on a few images."""
        if evalset.name in self.decode_s:
            return self.decode_s[evalset.name]
        key = (evalset.name, size)
        if key not in self._sampled:
            self._sampled[key] = evalset.decode_seconds(size)
        return self._sampled[key]

    def embed_rate(self, name: str, train_images_per_s: float | None) -> float:
        """Seconds per embedded image: measured, else guessed from the training throughput (0
        while that is unknown too)."""
        if name in self.embed_s:
            return self.embed_s[name]
        return EMBED_PER_TRAIN_IMAGE / train_images_per_s if train_images_per_s else 0.0

    def seconds(self, evalsets: Sequence, size: int, rounds: int, train_images_per_s: float | None,
                decoded: bool = False) -> float:
        """Expected seconds of `rounds` evaluations of every set. A set that fits in RAM is decoded
        once (not at all when `decoded` or already cached); a bigger one on every evaluation,
        inside its embedding time once that is measured."""
        if rounds <= 0:
            return 0.0
        total = 0.0
        for es in evalsets:
            n = es.num_images
            embed = self.embed_rate(es.name, train_images_per_s)
            if es.cacheable(size):
                once = 0.0 if decoded or es.is_cached(size) else n * self.decode_rate(es, size)
                total += rounds * n * embed + once
            else:
                extra = 0.0 if es.name in self.embed_s else self.decode_rate(es, size)
                total += rounds * n * (embed + extra)
        return total


class EvalTicker:
    """Progress of one set's evaluation: `decoding` and `embedding` are (done, total) callbacks
    for `run_eval.evaluate`. Each writes the stage ("evaluating lfw: 1,200/6,000 images"), its
    fraction and the run's ETA through `write` (status.json) at most every `interval_s` and at
    each phase's end, passes (label, done, total) on to `cli` (a tqdm bar), and times the phase
    for `cost`."""

    def __init__(self, name: str, write: Callable[..., Any], cost: EvalCost, eta_after_s: float,
                 embed_estimate_s: float, cli: Callable[[str, int, int], None] | None = None,
                 interval_s: float = STATUS_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.write, self.cost, self.cli = name, write, cost, cli
        self.eta_after_s, self.embed_estimate_s = eta_after_s, embed_estimate_s
        self.interval_s, self.clock = interval_s, clock
        self.seconds: dict[str, float] = {}
        self.images = 0
        self._phase: str | None = None
        self._phase_start = self._last_tick = clock()  # a phase starts where the one before ended
        self._last_write = -float("inf")

    def decoding(self, done: int, total: int) -> None:
        self._tick("decoding", done, total)

    def embedding(self, done: int, total: int) -> None:
        self._tick("embedding", done, total)

    def stage_text(self, phase: str, done: int, total: int) -> str:
        what = "decoding " if phase == "decoding" else ""
        return f"evaluating {self.name}: {what}{done:,}/{total:,} images"

    def _tick(self, phase: str, done: int, total: int) -> None:
        now = self.clock()
        if phase != self._phase:  # a new phase is shown at once
            self._phase, self._phase_start, self._last_write = phase, self._last_tick, -float("inf")
        self._last_tick = now
        elapsed = now - self._phase_start
        if done >= total:
            self.seconds[phase] = elapsed
            self.images = total
            self.cost.observe(self.name, phase, total, elapsed)
        if self.cli is not None:
            self.cli(f"eval {self.name}" + (" (decoding)" if phase == "decoding" else ""), done, total)
        if done < total and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        if done > 0 and elapsed > 0:
            left = elapsed / done * (total - done)
        else:
            left = self.embed_estimate_s if phase == "embedding" else 0.0
        if phase == "decoding":
            left += self.embed_estimate_s
        self.write(stage=self.stage_text(phase, done, total), stage_progress=round(done / max(1, total), 4),
                   eta_s=round(left + self.eta_after_s, 1))
