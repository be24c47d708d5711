"""Margin softmax heads (ArcFace, CosFace) with SynFace's mixed-label loss.

SynFace (Qiu et al., ICCV 2021) trains on identity-mixed (and domain-mixed) images whose
label is a list of classes y_k with weights w_k. The head computes

    logits = sum_k w_k * M(f, y_k)        loss = sum_k w_k * CE(logits, y_k)

where M(f, y) are the scaled cosine logits with the margin applied at class y only, and the
loss is averaged over the batch. Hard labels are the K = 1, w = 1 case. Default scale and
margin follow the SynFace paper (ArcFace s=30, m=0.5; CosFace s=30, m=0.4), not insightface's
s=64: with a few thousand synthetic classes s=30 is what the paper used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MarginHead", "DEFAULT_MARGINS"]

#: kind -> (scale s, margin m) used by the SynFace paper.
DEFAULT_MARGINS: dict[str, tuple[float, float]] = {"arcface": (30.0, 0.5), "cosface": (30.0, 0.4)}


class MarginHead(nn.Module):
    """Class-weight matrix plus ArcFace/CosFace margin and the mixed-label cross-entropy.

    The head always runs in fp32 (autocast disabled inside), because the margin's cos/sin
    arithmetic and the s-scaled logsumexp lose too much precision in bf16/fp16.
    """

    def __init__(
        self, embedding_dim: int, num_classes: int, kind: str = "arcface",
        s: float | None = None, m: float | None = None,
    ) -> None:
        super().__init__()
        kind = kind.lower()
        if kind not in DEFAULT_MARGINS:
            raise ValueError(f"unknown margin kind {kind!r}; valid: {', '.join(DEFAULT_MARGINS)}")
        default_s, default_m = DEFAULT_MARGINS[kind]
        self.kind = kind
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        self.s = float(default_s if s is None else s)
        self.m = float(default_m if m is None else m)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, 0.0, 0.01)
        # ArcFace beyond theta + m > pi: cos(theta + m) stops decreasing, so (as insightface does)
        # use the CosFace-like linear penalty cos(theta) - m*sin(m) once cos(theta) <= cos(pi - m).
        self._cos_m, self._sin_m = math.cos(self.m), math.sin(self.m)
        self._threshold = math.cos(math.pi - self.m)
        self._fallback = math.sin(math.pi - self.m) * self.m

    def extra_repr(self) -> str:
        return f"{self.kind}, embedding_dim={self.embedding_dim}, num_classes={self.num_classes}, s={self.s}, m={self.m}"

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarity (B, C) between L2-normalised embeddings and class weights, in fp32."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            emb = F.normalize(embeddings.float(), dim=1)
            w = F.normalize(self.weight.float(), dim=1)
            return F.linear(emb, w).clamp(-1.0, 1.0)

    def _margin_target(self, cos_t: torch.Tensor) -> torch.Tensor:
        """Target-class cosine after the margin: cos(theta + m) for ArcFace, cos - m for CosFace."""
        if self.kind == "cosface":
            return cos_t - self.m
        sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp(min=1e-7))
        shifted = cos_t * self._cos_m - sin_t * self._sin_m
        return torch.where(cos_t > self._threshold, shifted, cos_t - self._fallback)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixed-label margin loss.

        embeddings (B, D); labels (B,) hard or (B, K) int64; weights (B, K) float (required for
        K > 1). A term with weight 0 contributes nothing, and its label may be -1 (padding).
        Returns (mean loss over the batch, mixed logits (B, C) in fp32).
        """
        labels, weights = self._check_labels(labels, weights, embeddings.shape[0])
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cos = self.cosine(embeddings)
            active = weights != 0
            safe = torch.where(active, labels, torch.zeros_like(labels))
            w = torch.where(active, weights.float(), torch.zeros_like(weights, dtype=torch.float32))
            cos_y = cos.gather(1, safe)                                   # (B, K)
            delta = (self._margin_target(cos_y) - cos_y) * w              # margin shift per term
            # sum_k w_k * M(f, y_k) = (sum_k w_k) * s*cos + s * sum_k w_k * (target_k - cos_yk) at y_k
            logits = cos * w.sum(dim=1, keepdim=True)
            logits = logits.scatter_add(1, safe, delta) * self.s
            log_z = torch.logsumexp(logits, dim=1, keepdim=True)           # (B, 1)
            nll = log_z - logits.gather(1, safe)                          # CE(logits, y_k), (B, K)
            loss = (w * nll).sum(dim=1).mean()
        return loss, logits

    def _check_labels(
        self, labels: torch.Tensor, weights: torch.Tensor | None, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bring labels/weights to (B, K) and reject labels that would silently index wrong classes."""
        if labels.dim() == 1:
            labels = labels[:, None]
            if weights is None:
                weights = torch.ones(labels.shape, device=labels.device)
            elif weights.dim() == 1:
                weights = weights[:, None]
        if weights is None:
            raise ValueError("weights are required with (B, K) labels")
        if labels.shape != weights.shape or labels.shape[0] != batch:
            raise ValueError(f"labels {tuple(labels.shape)} and weights {tuple(weights.shape)} must both be (B={batch}, K)")
        labels = labels.long()
        active = weights != 0
        if bool(((labels < 0) & active).any()) or bool((labels >= self.num_classes).any()):
            raise ValueError(f"labels must lie in [0, {self.num_classes}); -1 is allowed only with weight 0")
        return labels, weights
