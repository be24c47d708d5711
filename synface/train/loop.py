"""The training loop: SGD with warm-up + step/poly schedule, mixed labels, DM, checkpoints, eval.

`train` (here) holds the run folder and starts or resumes the run; `synface.train.trainer` holds a
run's state and its steps, `synface.train.optim` the optimizer, schedule and autocast choice, and
`synface.train.rng` the random states a checkpoint keeps.

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
  Archiving or deleting a held folder is refused, and a folder that is gone anyway (removed by
  hand) is never re-created: the run fails naming it (`Run.require_folder`).
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
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from synface.base.files import sweep_temp_files, utc_now
from synface.models.checkpoint import RESUME_KEYS, load_checkpoint
from synface.runs.run import Run, RunLocked
from synface.runs.run_lock import folder_gone
from synface.train.config import ConfigError, TrainConfig, config_from_dict
from synface.train.ddp import DistContext, all_reduce_flag, barrier, init_distributed
from synface.train.resume import RUNTIME_KEYS, fail_status, record_changes, resume_changes
from synface.train.trainer import Trainer, TrainingFailed

__all__ = ["train", "TrainingFailed", "RUNTIME_KEYS", "resume_changes"]


def train(
    config: TrainConfig | dict, run_dir: str | Path, resume: bool = False,
    progress: Callable[[int, int], None] | None = None, stop_flag: Any = None, return_model: bool = False,
    eval_progress: Callable[[str, int, int], None] | None = None, make_folder: bool = True,
) -> dict[str, Any]:
    """Train (or resume) one run in `run_dir`; returns a summary dict with `status` and `message`.

    progress(step, total_steps) follows training; eval_progress(label, done, total) each
    evaluation's decoding and embedding (status.json gets the same as its `stage`).
    stop_flag: a callable returning True, or a threading.Event, polled between steps (as is
    the run's STOP file). Works unchanged under torchrun (see synface.train.ddp).
    return_model: also return the trained `Trainee` (backbone + head) under "model" (tests, notebooks).
    make_folder: make `run_dir` when it does not exist (a new run named by its folder). The tool's
    own launches pass False: their folder was made with the run (`create_run`), so a missing one was
    deleted or archived meanwhile and is refused rather than re-created. A resume never makes one.
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
                if not run.path.is_dir():
                    if resume or not make_folder:
                        raise folder_gone(run.path)
                    run.path.mkdir(parents=True, exist_ok=True)
                held.enter_context(run.lock())
                changes = resume_changes(run, cfg) if resume else {}
            except (RunLocked, ConfigError, FileNotFoundError) as exc:
                refusal = exc
        if all_reduce_flag(refusal is not None, ctx):
            raise refusal if refusal is not None else RunLocked(f"run folder {run.path} was refused on rank 0")
        return _train_locked(cfg, run, ctx, resume, changes, progress, stop_flag, return_model, eval_progress)


def _train_locked(cfg: TrainConfig, run: Run, ctx: DistContext, resume: bool, changes: dict[str, list],
                  progress, stop_flag, return_model: bool, eval_progress) -> dict[str, Any]:
    """`train` once rank 0 holds the run folder's lock."""
    if ctx.is_main:
        run.require_folder()
        run.checkpoints.mkdir(exist_ok=True)
        if not run.config_path.exists():
            run.write_config(cfg.to_dict())
        run.stop_path.unlink(missing_ok=True)
    barrier(ctx)
    started = time.time()
    trainer: Trainer | None = None
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
        trainer = Trainer(cfg, run, ctx, progress, stop_flag, eval_progress)
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
                       started=utc_now(), message=trainer.data.description,
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
    if trainer is None:  # TrainingFailed comes from a training step: a trainer exists by then
        raise RuntimeError(f"training failed before it started: {message}")
    trainer.finish(status, message)
    out = {
        "status": status, "message": message, "run_dir": str(run.path), "epochs_completed": trainer.epoch,
        "global_step": trainer.global_step, "epoch_losses": trainer.epoch_losses, "eval": trainer.evaluation.last,
        "num_classes": trainer.data.num_classes, "seconds": round(time.time() - started, 2), "rank": ctx.rank,
    }
    if return_model:
        out["model"] = trainer.model
    return out
