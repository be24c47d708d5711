"""What a resume may change, and how a change or a failure is recorded in the run folder.

A resumed run must stay what its config.json says: keys that change the results are refused, and
the runtime keys (where and how fast it computes) become a new config version, visibly.
"""

from __future__ import annotations

import contextlib
import time

from synface.runs.run import Run
from synface.train.config import ConfigError, TrainConfig, config_from_dict

__all__ = ["RUNTIME_KEYS", "resume_changes", "record_changes", "fail_status"]

#: config keys a resume may change: where and how fast the run computes, never what it computes
RUNTIME_KEYS = ("device", "workers", "eval_batch_size", "log_every", "keep_epoch_checkpoints", "cache_images")


def resume_changes(run: Run, cfg: TrainConfig) -> dict[str, list]:
    """{key: [in config.json, now]} of the runtime keys a resume changes; a ConfigError naming the
    key, both values and the remedy when any other key differs from the run's config.json (the
    run would then not be what its config says)."""
    try:
        saved = config_from_dict(run.config()).to_dict()
    except FileNotFoundError:
        return {}
    now = cfg.to_dict()
    differ = {k: [saved.get(k), now.get(k)] for k in now if saved.get(k) != now.get(k) and k != "name"}
    fixed = {k: v for k, v in differ.items() if k not in RUNTIME_KEYS}
    if fixed:
        shown = "; ".join(f"{k!r} is {a!r} in config.json, not {b!r}" for k, (a, b) in list(fixed.items())[:3])
        raise ConfigError(f"a resumed run keeps its config ({run.config_path}): {shown}. Start a new run to change "
                          f"{'it' if len(fixed) == 1 else 'them'}; a resume may change only {', '.join(RUNTIME_KEYS)}")
    return differ


def record_changes(run: Run, cfg: TrainConfig, changes: dict[str, list], step: int) -> None:
    """A resume's runtime changes as a new config version: config.json says what now runs, the old
    values stay in metrics.jsonl and status.json shows the change."""
    versions = [v for r in run.read_metrics("config") if isinstance(v := r.get("version"), int)]
    version = 1 + max(versions, default=1)
    run.append_metric({"type": "config", "version": version, "changes": changes, "step": step, "time": time.time()})
    run.write_config(cfg.to_dict())
    run.write_status(config_version=version,
                     config_changes=", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items()))


def fail_status(run: Run, msg: str) -> None:
    """Record a failure; best effort, since the disk that failed the run may refuse these writes too
    (status() then reports the dead process as failed)."""
    with contextlib.suppress(OSError):
        run.append_metric({"type": "status", "status": "failed", "message": msg, "time": time.time()})
    with contextlib.suppress(OSError):
        run.write_status(status="failed", message=msg)
