"""One device choice for every client: 'auto' picks CUDA when present; a missing GPU is a clear error."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """'auto'/None -> CUDA when present (rank `local_rank`'s GPU under torchrun), else the CPU.

    'cuda' without an index also takes the rank's GPU, so DDP ranks never share one."""
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was requested but this machine has no CUDA GPU; use 'cpu' or 'auto'")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        elif dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported: use 'auto', 'cpu' or 'cuda[:N]'")
    return dev
