"""SynFace's two mixups as label arithmetic.

Identity mixup (IM) is baked into the synthetic images by the dataset builder; its soft label
[(label, phi), (partner, 1 - phi)] comes from the manifest (`soft_labels`). Domain mixup (DM)
happens here, per batch: X = psi * X_syn + (1 - psi) * X_real, and the label list grows to
K = 3: the two synthetic terms scaled by psi, then the real label with weight 1 - psi.
The margin head (`synface.train.heads.MarginHead`) turns (labels, weights) into the loss.
"""

from __future__ import annotations

import numpy as np
import torch

from synface.train.config import PSI_GRID

__all__ = ["soft_labels", "hard_labels", "psi_for_step", "domain_mix"]


def soft_labels(label: np.ndarray, partner: np.ndarray, phi: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Manifest columns -> labels (N, 2) int64 and weights (N, 2) float32.

    A row without mixup (partner -1 or phi 1) gets the padding term (-1, 0).
    """
    labels = torch.from_numpy(np.array(label, dtype=np.int64))
    partners = torch.from_numpy(np.array(partner, dtype=np.int64))
    phis = torch.from_numpy(np.array(phi, dtype=np.float32))
    no_mix = (partners < 0) | (phis >= 1)
    partners = torch.where(no_mix, torch.full_like(partners, -1), partners)
    rest = torch.where(no_mix, torch.zeros_like(phis), 1 - phis)
    first = torch.where(no_mix, torch.ones_like(phis), phis)
    return torch.stack([labels, partners], 1), torch.stack([first, rest], 1)


def hard_labels(label: np.ndarray, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard labels padded to K = 2 (so real and synthetic samples share one batch layout)."""
    labels = torch.from_numpy(np.array(label, dtype=np.int64)) + offset
    pad = torch.full_like(labels, -1)
    ones = torch.ones(labels.shape, dtype=torch.float32)
    return torch.stack([labels, pad], 1), torch.stack([ones, torch.zeros_like(ones)], 1)


def psi_for_step(psi: float | str | None, seed: int, epoch: int, step: int) -> float | None:
    """psi of one batch: None (no DM), the fixed value, or a draw from {0, 0.05, ..., 1}.

    The draw is a function of (seed, epoch, step in epoch) only, so resuming reproduces it.
    """
    if psi is None or psi == "none":
        return None
    if psi != "grid":
        return float(psi)
    rng = np.random.default_rng([int(seed), int(epoch), int(step), 0x5E1])
    return float(PSI_GRID[int(rng.integers(len(PSI_GRID)))])


def domain_mix(
    x_syn: torch.Tensor, y_syn: torch.Tensor, w_syn: torch.Tensor,
    x_real: torch.Tensor, y_real: torch.Tensor, psi: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel-mix a synthetic and a real batch; labels (B, K_syn + 1) and weights summing to 1.

    y_real: (B,) or (B, 1) real labels, already offset past the synthetic classes.
    """
    if not 0.0 <= psi <= 1.0:
        raise ValueError(f"psi must lie in [0, 1], got {psi}")
    y_real = y_real.reshape(-1, 1).to(y_syn.dtype)
    x = x_syn * psi + x_real * (1.0 - psi)
    labels = torch.cat([y_syn, y_real], dim=1)
    weights = torch.cat([w_syn * psi, torch.full_like(y_real, 0, dtype=w_syn.dtype) + (1.0 - psi)], dim=1)
    return x, labels, weights
