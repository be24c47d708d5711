"""The evaluations of one training run (rank 0): its sets, each round of scoring them with its
progress in status.json, and the seconds the rounds still ahead will take, for the run's ETA.

Kept apart from the loop: the loop decides when to evaluate and how fast it trains; this module
knows what an evaluation costs (`synface.eval.progress.EvalCost`); the run records each result
(`Run.record_eval`: the full result with its ROC in eval.json, a compact record in metrics.jsonl).

A stop request is checked between batches (and every few decoded images), so Stop during an
evaluation takes seconds, not the rest of the round: the round is dropped (EvaluationStopped), the
epoch's checkpoint is already on disk, and a resume evaluates it first (`Trainer.evaluation_due`).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from synface.eval.progress import EvalCost, EvalTicker
from synface.runs.run import Run

__all__ = ["RunEvaluation", "EvaluationStopped"]


class EvaluationStopped(Exception):
    """A stop request ended an evaluation round early; nothing of the round is kept half-done."""


class RunEvaluation:
    """Evaluation sets of a run config, loaded once; `score` evaluates every set at a checkpoint."""

    def __init__(self, cfg: Any, run: Run, size: int, status: Callable[..., Any],
                 cli: Callable[[str, int, int], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> None:
        self.cfg, self.run, self.size = cfg, run, size
        self.status, self.cli, self.stop = status, cli, stop
        self.cost = EvalCost()
        self.seconds = 0.0  # spent evaluating in this process (kept out of the training rate)
        self.last: dict[str, dict[str, float]] = {}
        self._sets: list | None = None

    def sets(self) -> list:
        """The evaluation sets (pairs only; images are decoded at their first evaluation)."""
        if self._sets is None:
            from synface.eval.sets import open_eval_set  # noqa: PLC0415

            self._sets = [open_eval_set(s) for s in self.cfg.eval_sets]
        return self._sets

    def seconds_ahead(self, rounds: int, step_s: float | None, decoded: bool = False) -> float:
        """Expected seconds of `rounds` more evaluations (`decoded`: every set decoded by then)."""
        if not self.cfg.eval_sets:
            return 0.0
        ips = self.cfg.batch_size / step_s if step_s else None
        return self.cost.seconds(self.sets(), self.size, rounds, ips, decoded)

    def score(self, backbone: torch.nn.Module, device: torch.device, epoch: int, step: int,
              step_s: float | None, train_left_s: float, later_rounds: int) -> None:
        """Score every set; status.json shows each one's progress and the run's ETA (`train_left_s`
        of training and `later_rounds` evaluations after this one still to come)."""
        from synface.eval.run_eval import evaluate  # noqa: PLC0415

        t_round = time.time()
        sets = self.sets()
        ips = self.cfg.batch_size / step_s if step_s else None
        after_round = train_left_s + self.seconds_ahead(later_rounds, step_s, decoded=True)
        try:
            for k, es in enumerate(sets):
                after = after_round + self.cost.seconds(sets[k + 1:], self.size, 1, ips)
                embed_guess = es.num_images * self.cost.embed_rate(es.name, ips)
                ticker = EvalTicker(es.name, self.status, self.cost, after, embed_guess, self.cli)
                t0 = time.time()
                result = evaluate(backbone, es, device, self.cfg.eval_batch_size,
                                  progress=self._stoppable(ticker.embedding),
                                  decode_progress=self._stoppable(ticker.decoding))
                timing = {"seconds": round(time.time() - t0, 2), "images": es.num_images,
                          "decode_seconds": round(ticker.seconds.get("decoding", 0.0), 3),
                          "embed_seconds": round(ticker.seconds.get("embedding", 0.0), 3)}
                rec = self.run.record_eval(es.name, result, epoch=epoch, step=step, timing=timing)
                self.last[es.name] = {k: rec[k] for k in ("mean_accuracy", "std_accuracy", "tar_at_far")}
        finally:  # a failed evaluation leaves no stale stage behind
            self.seconds += time.time() - t_round
            self.status(stage=None, stage_progress=None, eta_s=round(after_round, 1))

    def _stoppable(self, tick: Callable[[int, int], None]) -> Callable[[int, int], None]:
        """`tick`, then EvaluationStopped when a stop was asked (each batch, each few decoded images)."""
        def checked(done: int, total: int) -> None:
            tick(done, total)
            if self.stop is not None and done < total and self.stop():
                raise EvaluationStopped(f"stopped after {done:,} of {total:,} images")
        return checked
