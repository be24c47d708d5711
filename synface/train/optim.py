"""How the weights move: SGD with decay on weights only, the per-step LR schedule, the autocast dtype.

The choices and why are in `synface.train.loop`'s docstring.
"""

from __future__ import annotations

import torch
from torch import nn

from synface.train.config import TrainConfig

__all__ = ["resolve_amp", "lr_factor", "build_optimizer"]


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
    return None  # CPU: bf16 autocast measured slower than fp32 (see synface.train.loop)


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
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
