"""Everything a launch can know before training, checked before a run folder exists.

A run that cannot work should be refused at Launch with its reason, not started to die minutes
later as "killed?". The Train page and `python -m synface train` both call `preflight`:

1. the training data reads: the sets list, their first images decode, and a Real_{R_ID}_{k}
   subset exists in the real set (a DataError naming both numbers and how many people qualify);
2. every evaluation set can be scored, and none tests people the run trains on unless the config
   accepts it (`synface.runs.queue.launch_check`; the refusal says where the overlap comes from);
3. the data fills at least one batch;
4. the disk holds the checkpoints the run will write (`checkpoint_bytes`).

No Streamlit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synface.base.files import check_free_space
from synface.base.workspace import workspace_root
from synface.data.identity_overlap import OverlapReport
from synface.runs.queue import APP_OVERRIDE, launch_check
from synface.train.config import TrainConfig, config_from_dict
from synface.train.data import check_fits_a_batch, check_train_data

__all__ = ["preflight", "checkpoint_bytes", "check_checkpoint_space"]

#: bytes per float32 value; a checkpoint holds each parameter twice (weight and SGD momentum)
_FLOAT_BYTES, _COPIES = 4, 2
#: pickling, buffers (BatchNorm statistics), RNG states and the config: a little on top
_OVERHEAD = 1.05


def _backbone_parameters(cfg: TrainConfig) -> int:
    """Parameters of the config's backbone, counted on the meta device (no memory, no weights)."""
    import torch  # noqa: PLC0415

    from synface.models.backbones import build_backbone  # noqa: PLC0415

    with torch.device("meta"):
        backbone = build_backbone(cfg.backbone, cfg.embedding_dim, cfg.dropout)
    return sum(p.numel() for p in backbone.parameters()) + sum(b.numel() for b in backbone.buffers())


def checkpoint_bytes(cfg: TrainConfig, classes: int) -> int:
    """Disk the run's checkpoints will take at most: last.pt, one per epoch when the config keeps
    them, and the temporary copy an atomic write holds while it replaces last.pt."""
    values = _backbone_parameters(cfg) + cfg.embedding_dim * classes
    one = int(values * _FLOAT_BYTES * _COPIES * _OVERHEAD)
    files = 2 + (cfg.epochs if cfg.keep_epoch_checkpoints else 0)
    return one * files


def check_checkpoint_space(cfg: TrainConfig, classes: int, run_folder: str | Path) -> None:
    """ValueError naming the estimate and the free space when the run's checkpoints do not fit."""
    check_free_space(run_folder, checkpoint_bytes(cfg, classes),
                     f"the run's checkpoints ({cfg.backbone}, {classes:,} classes"
                     + (f", one per epoch x {cfg.epochs}" if cfg.keep_epoch_checkpoints else "") + ")")


def preflight(config: TrainConfig | dict[str, Any], root: str | Path | None = None,
              override_hint: str = APP_OVERRIDE, run_folder: str | Path | None = None) -> OverlapReport:
    """Every check of the module's list, in order; the first that fails raises (a DataError,
    IdentityOverlapError, ConfigError or ValueError, one line naming the numbers). Returns the
    identity check's report for the run folder to keep (`synface.runs.queue.record_check`)."""
    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config)
    size = check_train_data(cfg)
    report = launch_check(cfg, root, override_hint)
    check_fits_a_batch(cfg, size.images_per_epoch)
    check_checkpoint_space(cfg, size.classes, run_folder or workspace_root(root) / "runs")
    return report
