"""One run's training state on one rank: model, optimizer, schedule, data, checkpoints and the steps.

`synface.train.loop.train` builds a `Trainer` once the run folder is held and calls `fit`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from synface.base.files import utc_now
from synface.eval.progress import eval_rounds
from synface.models.backbones import build_backbone
from synface.models.checkpoint import RESUME_KEYS, load_checkpoint, load_weights, save_checkpoint
from synface.runs.run import Run
from synface.train.config import ConfigError, TrainConfig
from synface.train.data import build_train_data
from synface.train.ddp import DistContext, all_reduce_flag, barrier, sync_buffers, wrap_model
from synface.train.evaluation import EvaluationStopped, RunEvaluation
from synface.train.heads import MarginHead
from synface.train.mixup import domain_mix, psi_for_step
from synface.train.optim import build_optimizer, lr_factor, resolve_amp
from synface.train.rng import rng_state, seed_everything, set_rng_state, worker_init

__all__ = ["Trainer", "Trainee", "TrainingFailed", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1


class TrainingFailed(RuntimeError):
    """The run could not continue (non-finite loss); the message says where."""


class Trainee(nn.Module):
    """Backbone + margin head as one module, so DDP reduces both and the forward returns the loss."""

    def __init__(self, backbone: nn.Module, head: MarginHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        loss, _ = self.head(self.backbone(x), labels, weights)
        return loss


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    save_checkpoint(state, path)  # atomic; a failed write (a full disk) removes its partial temp file


class Trainer:
    """State of one run on one rank; `synface.train.loop.train` is the public entry point."""

    def __init__(self, cfg: TrainConfig, run: Run, ctx: DistContext, progress, stop_flag, eval_progress=None):
        self.cfg, self.run, self.ctx = cfg, run, ctx
        self.progress, self.stop_flag = progress, stop_flag
        self.device = ctx.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
            torch.set_float32_matmul_precision("high")  # TF32 for whatever runs outside autocast
        seed_everything(cfg.seed)
        backbone = build_backbone(cfg.backbone, cfg.embedding_dim, cfg.dropout)
        self.size = int(cfg.input_size or backbone.input_size)
        self._check_input_size(backbone)
        backbone.input_size = self.size
        self.data = build_train_data(cfg, self.size, ctx.rank, ctx.world_size)
        head = MarginHead(cfg.embedding_dim, self.data.num_classes, cfg.head, cfg.head_s, cfg.head_m)
        self.model = Trainee(backbone, head).to(self.device)
        if cfg.channels_last:
            # Module.to takes memory_format; torch's type overloads omit it
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.ddp_model = wrap_model(self.model, ctx)
        self.optimizer = build_optimizer(self.model, cfg)
        self.steps_per_epoch = self.data.sampler.steps
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.steps_per_epoch, cfg))
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16 and self.device.type == "cuda")
        self.epoch, self.epoch_step, self.global_step = 0, 0, 0
        self.local_batch = cfg.batch_size // ctx.world_size
        self.loader = DataLoader(
            self.data.dataset, batch_size=self.local_batch, sampler=self.data.sampler, num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda", drop_last=True, persistent_workers=cfg.workers > 0,
            worker_init_fn=worker_init, generator=torch.Generator().manual_seed(cfg.seed),
        )
        self.evaluation = RunEvaluation(cfg, run, self.size, self.status, eval_progress, stop=self.stop_asked_here)
        self.step_s: float | None = None  # measured seconds per training step (evaluations left out)
        self.epoch_losses: list[float] = []
        self.pending_eval = False  # a resumed checkpoint whose evaluation a kill interrupted

    def _check_input_size(self, backbone: nn.Module) -> None:
        if self.size == backbone.input_size:
            return
        try:
            with torch.no_grad():
                backbone.eval()(torch.zeros(2, 3, self.size, self.size))
            backbone.train()
        except RuntimeError:
            raise ConfigError(f"config 'input_size' {self.size} does not fit backbone '{self.cfg.backbone}' "
                              f"(it takes {backbone.input_size}x{backbone.input_size})") from None

    # -- checkpoints
    def state(self) -> dict[str, Any]:
        sync_buffers(self.model, self.ctx)
        return {
            "version": CHECKPOINT_VERSION,
            "model": self.model.backbone.state_dict(),
            "head": self.model.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "epoch_step": self.epoch_step, "global_step": self.global_step,
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "num_classes": self.data.num_classes,
            "num_synthetic_classes": self.data.num_synthetic_classes,
            "input_size": self.size,
        }

    def save(self) -> None:
        state = self.state()
        if self.ctx.is_main:
            self.run.require_folder()  # never re-created by the checkpoint's write
            _save_checkpoint(self.run.last_checkpoint, state)
            if self.cfg.keep_epoch_checkpoints and self.epoch_step == 0:
                _save_checkpoint(self.run.checkpoints / f"epoch_{self.epoch:03d}.pt", state)
        barrier(self.ctx)

    def restore(self, path: Path, ckpt: dict[str, Any] | None = None) -> None:
        """Continue from `path` (already loaded as `ckpt`, when given); a checkpoint that does not
        fit this run is a ValueError naming the file."""
        ckpt = load_checkpoint(path, self.device, require=RESUME_KEYS) if ckpt is None else ckpt
        if ckpt.get("num_classes") != self.data.num_classes:
            raise ValueError(f"checkpoint {path} has {ckpt.get('num_classes')} classes, the data has {self.data.num_classes}")
        load_weights(self.model.backbone, ckpt["model"], f"checkpoint {path} (backbone)")
        load_weights(self.model.head, ckpt["head"], f"checkpoint {path} (margin head)")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.epoch, self.epoch_step, self.global_step = (int(ckpt[k]) for k in ("epoch", "epoch_step", "global_step"))
            set_rng_state(ckpt["rng"])
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ValueError(f"checkpoint {path} does not fit this run ({type(exc).__name__}: {reason})") from None

    def evaluation_due(self) -> bool:
        """True (on every rank) when the checkpoint just restored ends an epoch that is evaluated
        but eval.json holds no evaluation of every set at its step (the process died evaluating)."""
        due = False
        if self.ctx.is_main and self.cfg.eval_sets and self.epoch > 0 and self.epoch_step == 0 and (
                self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs):
            held = self.run.read_eval()
            due = any(not isinstance(held.get(spec.label), dict) or held[spec.label].get("step") != self.global_step
                      for spec in self.cfg.eval_sets)
        return all_reduce_flag(due, self.ctx)

    # -- reporting (rank 0)
    def status(self, **fields: Any) -> None:
        if self.ctx.is_main:
            self.run.write_status(**fields)

    def metric(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            self.run.append_metric(record)

    def shown_epoch(self) -> int:
        """The epoch status.json shows: the one in progress (1-based), or the last completed at a boundary."""
        return self.epoch + (1 if self.epoch_step else 0)

    def finish(self, status: str, message: str) -> None:
        self.metric({"type": "status", "status": status, "message": message, "time": time.time(),
                     "epoch": self.shown_epoch(), "step": self.global_step})
        self.status(status=status, message=message, epoch=self.shown_epoch(), step=self.global_step,
                    progress=self.global_step / max(1, self.total_steps), eta_s=0 if status == "finished" else None,
                    finished=utc_now())

    # -- one step
    def batch_to_device(self, batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        nb = self.device.type == "cuda"
        if self.data.paired:
            xs, ys, ws, xr, yr = (t.to(self.device, non_blocking=nb) for t in batch)
            psi = psi_for_step(self.cfg.psi, self.cfg.seed, self.epoch, self.epoch_step)
            x, y, w = domain_mix(xs, ys, ws, xr, yr, psi)  # type: ignore[arg-type]  # paired: psi is set
        else:
            x, y, w = (t.to(self.device, non_blocking=nb) for t in batch)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y, w

    def step(self, batch: list[torch.Tensor]) -> float:
        x, y, w = self.batch_to_device(batch)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            loss = self.ddp_model(x, y, w)
        value = float(loss.detach())
        if all_reduce_flag(not math.isfinite(value), self.ctx):
            raise TrainingFailed(
                f"loss became {value} at epoch {self.epoch + 1}, step {self.global_step + 1}; "
                f"stopped without saving. Last good checkpoint: {self.run.last_checkpoint} "
                f"(epoch {self.epoch}). Lower 'lr', set 'grad_clip' or 'amp: off' and resume.")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return value

    def stop_asked_here(self) -> bool:
        """A stop request seen by this rank alone (its flag; rank 0 also the STOP file)."""
        local = bool(self.stop_flag is not None and (self.stop_flag() if callable(self.stop_flag) else self.stop_flag.is_set()))
        return local or (self.ctx.is_main and self.run.stop_requested())

    def stop_requested(self) -> bool:
        return all_reduce_flag(self.stop_asked_here(), self.ctx)

    # -- evaluation (rank 0) and the ETA
    def eta(self, rounds: int, decoded: bool = False) -> float:
        """Seconds left: the remaining steps at the measured step time, plus `rounds` evaluations of
        every set (`decoded`: the sets will have been decoded by then)."""
        train_s = (self.step_s or 0.0) * (self.total_steps - self.global_step)
        return train_s + (self.evaluation.seconds_ahead(rounds, self.step_s, decoded) if self.ctx.is_main else 0.0)

    def evaluate(self) -> bool:
        """Score every evaluation set at this checkpoint; False (on every rank) when a stop request
        ended the round early (nothing of it kept: a resume evaluates this checkpoint first)."""
        if not self.cfg.eval_sets:
            return True
        stopped = False
        if self.ctx.is_main:
            try:
                self.evaluation.score(self.model.backbone, self.device, self.epoch, self.global_step, self.step_s,
                                      self.eta(0), eval_rounds(self.epoch, self.cfg.epochs, self.cfg.eval_every))
            except EvaluationStopped:
                stopped = True
        barrier(self.ctx)
        return not all_reduce_flag(stopped, self.ctx)

    def stopped_evaluating(self) -> tuple[str, str]:
        return "stopped", (f"stopped during the evaluation after epoch {self.epoch} (step {self.global_step}); "
                           "checkpoint saved, resume to evaluate it and continue")

    # -- the loop
    def fit(self) -> tuple[str, str]:
        cfg = self.cfg
        t_start = time.time()
        steps_at_start = self.global_step
        log_t, log_n, log_losses = time.time(), 0, []
        if self.pending_eval:  # the evaluation a killed (or stopped) process did not finish
            if not self.evaluate():
                return self.stopped_evaluating()
            log_t = time.time()
        while self.epoch < cfg.epochs:
            self.data.sampler.set_epoch(self.epoch, self.epoch_step)
            losses: list[float] = []
            for batch in self.loader:
                if self.stop_requested():
                    self.save()
                    return "stopped", (f"stopped in epoch {self.shown_epoch()} at step {self.global_step}; "
                                       f"checkpoint saved, resume to continue")
                value = self.step(batch)
                self.epoch_step += 1
                self.global_step += 1
                losses.append(value)
                log_losses.append(value)
                log_n += cfg.batch_size
                if self.progress is not None and self.ctx.is_main:
                    self.progress(self.global_step, self.total_steps)
                if self.global_step % cfg.log_every == 0 or self.epoch_step == self.steps_per_epoch:
                    now = time.time()
                    done = self.global_step - steps_at_start
                    self.step_s = max(0.0, now - t_start - self.evaluation.seconds) / max(1, done)
                    eta = self.eta(eval_rounds(self.epoch, cfg.epochs, cfg.eval_every))
                    self.metric({"type": "train", "step": self.global_step, "epoch": self.epoch + 1,
                                 "loss": float(np.mean(log_losses)), "lr": self.optimizer.param_groups[0]["lr"],
                                 "images_per_s": log_n / max(now - log_t, 1e-9), "time": now})
                    self.status(status="running", epoch=self.epoch + 1, step=self.global_step,
                                progress=self.global_step / self.total_steps, eta_s=round(eta, 1))
                    log_t, log_n, log_losses = now, 0, []
            self.epoch_losses.append(float(np.mean(losses)) if losses else float("nan"))
            self.epoch += 1
            self.epoch_step = 0
            self.save()
            if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
                if not self.evaluate():
                    return self.stopped_evaluating()
                log_t = time.time()  # the next images/s counts training only
        return "finished", f"finished {cfg.epochs} epochs ({self.global_step} steps) in {time.time() - t_start:.0f} s"
