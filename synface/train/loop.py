"""The training loop: SGD with warm-up + step/poly schedule, mixed labels, DM, checkpoints, eval.

Choices, and why:
- SGD momentum 0.9, weight decay on conv/linear weights and the class matrix only; 1-D
  parameters (BatchNorm, biases, PReLU) get none, since decaying them only fights the
  normalisation (the usual practice; the paper does not say).
- The LR schedule is per step: linear warm-up over `warmup_epochs`, then x`gamma` at each
  milestone epoch (step) or (1 - t)^power decay to 0 (poly).
- AMP: on CUDA, `auto` is bf16 where supported, else fp16 with a GradScaler. On CPU `auto`
  is off: measured on the 2-core dev Xeon (no AMX), bf16 autocast ran the compact net at
  37 images/s against 50 images/s in fp32. The margin head always computes in fp32.
- channels_last (default on) suits oneDNN on CPU and tensor cores on GPU.
- Reproducibility: the batch order, per-sample augmentation and per-batch psi are pure
  functions of (seed, epoch, position) (see `synface.train.data`), and checkpoints hold the
  model, head, optimizer, scheduler, scaler and torch/CUDA/numpy/python RNG states, so a
  resumed run ends with the weights of an uninterrupted one (exactly on CPU with workers=0;
  DataLoader workers do not change the batches either).
- Checkpoints (`checkpoints/last.pt`) are written atomically at the end of each epoch and
  when a stop request lands mid-epoch (with the step reached, so the resume skips the
  batches already trained). A NaN/inf loss stops the run as "failed" without writing a
  checkpoint, so last.pt stays the last good one.
- One trainer per run folder: rank 0 holds the folder's lock (`Run.lock`) for the whole run, so
  a second trainer is refused naming the first's pid; a killed trainer's lock is taken over.
- A resume continues the run as config.json describes it: `--set` changes that would change
  the results are refused; runtime ones (RUNTIME_KEYS) become a new config version, recorded in
  config.json, a `config` record of metrics.jsonl and status.json. Steps logged after the
  checkpoint (by a killed process) are dropped from metrics.jsonl before they are trained again,
  and an evaluation the kill interrupted runs first.
- DDP (torchrun): see `synface.train.ddp`; rank 0 writes everything. Under DDP the RNG
  states saved are rank 0's (only dropout draws from them; batches and psi do not).
- On CUDA: cudnn.benchmark on and TF32 allowed (not bitwise reproducible, much faster).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import socket
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from synface.base.files import sweep_temp_files
from synface.runs.registry import Run, RunLocked
from synface.train.backbones import build_backbone
from synface.train.checkpoint import RESUME_KEYS, load_checkpoint, load_weights, save_checkpoint
from synface.train.config import ConfigError, TrainConfig, config_from_dict
from synface.train.resume import RUNTIME_KEYS, fail_status, record_changes, resume_changes
from synface.train.data import build_train_data
from synface.train.ddp import (
    DistContext,
    all_reduce_flag,
    barrier,
    init_distributed,
    sync_buffers,
    wrap_model,
)
from synface.train.heads import MarginHead
from synface.train.mixup import domain_mix, psi_for_step
from synface.eval.progress import eval_rounds
from synface.train.evaluation import RunEvaluation

__all__ = ["train", "Trainee", "resolve_amp", "lr_factor", "build_optimizer", "load_checkpoint", "rng_state",
           "set_rng_state", "TrainingFailed", "RUNTIME_KEYS", "resume_changes"]

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


# ----------------------------------------------------------------------------- pieces


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for a config's `amp` on a device (None = fp32)."""
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None  # CPU: bf16 autocast measured slower than fp32 here (see module docstring)


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """LR multiplier at a global step: linear warm-up, then step decay at milestones or poly decay."""
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    if cfg.lr_schedule == "poly":
        total = cfg.epochs * steps_per_epoch
        t = (step - warm) / max(1, total - warm)
        return max(0.0, 1.0 - t) ** cfg.poly_power
    epoch = step // steps_per_epoch
    return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)


def build_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD; weight decay only on >= 2-D parameters (conv/linear weights, the class matrix)."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    """Per-worker numpy/python seeds from the worker's torch seed (which the loader's generator fixes)."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain containers (loadable with torch.load(weights_only=True))."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    save_checkpoint(state, path)  # atomic; a failed write (a full disk) removes its partial temp file


# ----------------------------------------------------------------------------- the trainer


class _Trainer:
    """State of one run on one rank; `train()` below is the public entry point."""

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
            self.model = self.model.to(memory_format=torch.channels_last)
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
            worker_init_fn=_worker_init, generator=torch.Generator().manual_seed(cfg.seed),
        )
        self.evaluation = RunEvaluation(cfg, run, self.size, self.status, self.metric, eval_progress)
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
                    finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    # -- one step
    def batch_to_device(self, batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        nb = self.device.type == "cuda"
        if self.data.paired:
            xs, ys, ws, xr, yr = (t.to(self.device, non_blocking=nb) for t in batch)
            psi = psi_for_step(self.cfg.psi, self.cfg.seed, self.epoch, self.epoch_step)
            x, y, w = domain_mix(xs, ys, ws, xr, yr, psi)
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

    def stop_requested(self) -> bool:
        local = bool(self.stop_flag is not None and (self.stop_flag() if callable(self.stop_flag) else self.stop_flag.is_set()))
        if self.ctx.is_main:
            local = local or self.run.stop_requested()
        return all_reduce_flag(local, self.ctx)

    # -- evaluation (rank 0) and the ETA
    def eta(self, rounds: int, decoded: bool = False) -> float:
        """Seconds left: the remaining steps at the measured step time, plus `rounds` evaluations of
        every set (`decoded`: the sets will have been decoded by then)."""
        train_s = (self.step_s or 0.0) * (self.total_steps - self.global_step)
        return train_s + (self.evaluation.seconds_ahead(rounds, self.step_s, decoded) if self.ctx.is_main else 0.0)

    def evaluate(self) -> None:
        if not self.cfg.eval_sets:
            return
        if self.ctx.is_main:
            self.evaluation.score(self.model.backbone, self.device, self.epoch, self.global_step, self.step_s,
                                  self.eta(0), eval_rounds(self.epoch, self.cfg.epochs, self.cfg.eval_every))
        barrier(self.ctx)

    # -- the loop
    def fit(self) -> tuple[str, str]:
        cfg = self.cfg
        t_start = time.time()
        steps_at_start = self.global_step
        log_t, log_n, log_losses = time.time(), 0, []
        if self.pending_eval:  # the evaluation a killed process did not finish
            self.evaluate()
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
                self.evaluate()
                log_t = time.time()  # the next images/s counts training only
        return "finished", f"finished {cfg.epochs} epochs ({self.global_step} steps) in {time.time() - t_start:.0f} s"


def train(
    config: TrainConfig | dict, run_dir: str | Path, resume: bool = False,
    progress: Callable[[int, int], None] | None = None, stop_flag: Any = None, return_model: bool = False,
    eval_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) one run in `run_dir`; returns a summary dict with `status` and `message`.

    progress(step, total_steps) follows training; eval_progress(label, done, total) each
    evaluation's decoding and embedding (status.json gets the same as its `stage`).
    stop_flag: a callable returning True, or a threading.Event, polled between steps (as is
    the run's STOP file). Works unchanged under torchrun (see synface.train.ddp).
    return_model: also return the trained `Trainee` (backbone + head) under "model" (tests, notebooks).
    """
    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config)
    cfg.validate()
    cfg.check_paths()
    ctx = init_distributed(cfg.device)
    run = Run(run_dir)
    with contextlib.ExitStack() as held:
        refusal: Exception | None = None
        changes: dict[str, list] = {}
        if ctx.is_main:  # refused before anything in the folder changes
            try:
                held.enter_context(run.lock())
                changes = resume_changes(run, cfg) if resume else {}
            except (RunLocked, ConfigError) as exc:
                refusal = exc
        if all_reduce_flag(refusal is not None, ctx):
            raise refusal if refusal is not None else RunLocked(f"run folder {run.path} was refused on rank 0")
        return _train_locked(cfg, run, ctx, resume, changes, progress, stop_flag, return_model, eval_progress)


def _train_locked(cfg: TrainConfig, run: Run, ctx: DistContext, resume: bool, changes: dict[str, list],
                  progress, stop_flag, return_model: bool, eval_progress) -> dict[str, Any]:
    """`train` once rank 0 holds the run folder's lock."""
    if ctx.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.checkpoints.mkdir(exist_ok=True)
        if not run.config_path.exists():
            run.write_config(cfg.to_dict())
        run.stop_path.unlink(missing_ok=True)
    barrier(ctx)
    started = time.time()
    trainer: _Trainer | None = None
    try:
        ckpt = None
        if ctx.is_main:  # temp files of writes a kill interrupted (their writers are gone)
            for folder in (run.path, run.checkpoints):
                sweep_temp_files(folder)
        if resume and not run.last_checkpoint.exists():
            # killed before its first checkpoint: nothing trained survives, so the run starts again
            # from step 0 in its own folder, without the steps it had logged
            if ctx.is_main:
                run.prune_metrics(0)
                if changes:
                    record_changes(run, cfg, changes, 0)
            resume = False
        if resume:  # checked before the data and the model are built
            ckpt = load_checkpoint(run.last_checkpoint, "cpu", require=RESUME_KEYS)
        trainer = _Trainer(cfg, run, ctx, progress, stop_flag, eval_progress)
        if resume:
            trainer.restore(run.last_checkpoint, ckpt)
            trainer.pending_eval = trainer.evaluation_due()
            if ctx.is_main:
                run.prune_metrics(trainer.global_step, evals_at_step=trainer.pending_eval)
                if changes:
                    record_changes(run, cfg, changes, trainer.global_step)
        if ctx.is_main and cfg.eval_sets:
            trainer.evaluation.sets()  # sizes for the ETA; a set that does not load fails the run now
            trainer.evaluation.cost.seed(run.read_metrics("eval"))
        trainer.status(status="running", pid=os.getpid(), host=socket.gethostname(),
                       started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message=trainer.data.description,
                       epoch=trainer.epoch, epochs=cfg.epochs, step=trainer.global_step,
                       progress=trainer.global_step / max(1, trainer.total_steps), world_size=ctx.world_size,
                       device=str(ctx.device), resumed=bool(resume))
        trainer.metric({"type": "status", "status": "running", "message": trainer.data.description,
                        "resumed": bool(resume), "time": time.time()})
        status, message = trainer.fit()
    except TrainingFailed as exc:
        status, message = "failed", str(exc)
    except KeyboardInterrupt:
        if trainer is not None:
            trainer.finish("stopped", "interrupted (Ctrl-C); resume from the last epoch checkpoint")
        raise
    except Exception as exc:
        if ctx.is_main:
            fail_status(run, f"{type(exc).__name__}: {exc}")
        raise
    trainer.finish(status, message)
    out = {
        "status": status, "message": message, "run_dir": str(run.path), "epochs_completed": trainer.epoch,
        "global_step": trainer.global_step, "epoch_losses": trainer.epoch_losses, "eval": trainer.evaluation.last,
        "num_classes": trainer.data.num_classes, "seconds": round(time.time() - started, 2), "rank": ctx.rank,
    }
    if return_model:
        out["model"] = trainer.model
    return out
