"""Verification of a trained model on LFW-layout folders and insightface .bin files.

Used by the training loop (every `eval_every` epochs) and by `python -m synface eval`.
Images are decoded once per set at the model's resolution (uint8, kept in RAM when small
enough), so repeated evaluations during training cost only the forward passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from synface.data.eval_sets import load_pairs
from synface.data.verification import VerificationPairs
from synface.eval.verification import (
    VerificationResult,
    embed_images,
    kfold_verification,
    pair_scores,
)

__all__ = ["load_pairs", "EvalSet", "evaluate", "CACHE_LIMIT_BYTES"]

#: decoded sets up to this size stay in RAM between evaluations
CACHE_LIMIT_BYTES = 1 << 30
#: decoding reports progress every this many images
DECODE_TICK = 64


def _decode(pairs: VerificationPairs, i: int, side: int, size: int, center_crop: float | None) -> np.ndarray:
    img = pairs.load_image(i, side)
    if center_crop is not None and center_crop < 1:
        w, h = img.size
        cw, ch = max(1, round(w * center_crop)), max(1, round(h * center_crop))
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BOX if img.size[0] > size else Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


@dataclass
class EvalSet:
    """A named VerificationPairs plus its decoded-image cache at one resolution."""

    name: str
    pairs: VerificationPairs
    center_crop: float | None = None
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> "EvalSet":
        """From an EvalSetSpec (or a mapping with path/pairs/folds/name/center_crop)."""
        get: Callable[..., Any] = spec.get if isinstance(spec, dict) else lambda k, d=None: getattr(spec, k, d)
        path = Path(get("path"))
        name = get("name") or (path.stem if path.suffix else path.name)
        return cls(name, load_pairs(path, get("pairs"), get("folds")), get("center_crop"))

    @property
    def num_images(self) -> int:
        return 2 * len(self.pairs)

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    def decode(self, j: int, size: int) -> np.ndarray:
        """Image j of the set at `size`: side j % 2 of pair j // 2."""
        return _decode(self.pairs, j // 2, j % 2, size, self.center_crop)

    def verify(self, embeddings: np.ndarray, far_target: float = 1e-3) -> VerificationResult:
        """k-fold verification of the pairs from the embeddings of every image (in `decode` order)."""
        scores = pair_scores(embeddings[0::2], embeddings[1::2])
        return kfold_verification(scores, self.pairs.issame, self.pairs.folds, far_target)

    def cacheable(self, size: int) -> bool:
        """True when the decoded set fits under CACHE_LIMIT_BYTES (decoded once, kept in RAM)."""
        return self.num_images * 3 * size * size <= CACHE_LIMIT_BYTES

    def is_cached(self, size: int) -> bool:
        return size in self._cache

    def decode_seconds(self, size: int, sample: int = 4) -> float:
        """Seconds per image to decode, timed on the first `sample` images (for an ETA)."""
        n = min(sample, self.num_images)
        if n == 0:
            return 0.0
        t0 = time.perf_counter()
        for j in range(n):
            self.decode(j, size)
        return (time.perf_counter() - t0) / n

    def _decode_all(self, size: int, progress: Callable[[int, int], None] | None) -> np.ndarray:
        n = self.num_images
        out = np.empty((n, size, size, 3), np.uint8)
        for j in range(n):
            out[j] = self.decode(j, size)
            if progress is not None and ((j + 1) % DECODE_TICK == 0 or j + 1 == n):
                progress(j + 1, n)
        return out

    def images(self, size: int, progress: Callable[[int, int], None] | None = None) -> Callable[[int, int], torch.Tensor]:
        """load_batch(start, stop) for embed_pairs: image j is side j % 2 of pair j // 2. A set
        that fits in RAM is decoded here, once per size, reporting (done, total) to `progress`."""
        cached = self._cache.get(size)
        if cached is None and self.cacheable(size):
            cached = self._decode_all(size, progress)
            self._cache[size] = cached

        def load_batch(start: int, stop: int) -> torch.Tensor:
            if cached is not None:
                arr = cached[start:stop]
            else:
                arr = np.stack([self.decode(j, size) for j in range(start, stop)])
            return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

        return load_batch


def evaluate(
    model: torch.nn.Module, evalset: EvalSet, device: str | torch.device = "cpu", batch_size: int = 128,
    far_target: float = 1e-3, progress: Callable[[int, int], None] | None = None,
    decode_progress: Callable[[int, int], None] | None = None,
) -> VerificationResult:
    """k-fold accuracy, TAR@FAR and ROC of `model` (flip-summed embeddings) on one set.

    `progress(done, total)` counts embedded images and `decode_progress` decoded ones (a set's
    first evaluation at this resolution). Given `progress` alone, it counts both phases as one
    (total = twice the images while the set still has to be decoded), so a bar never stalls.
    """
    size = int(getattr(model, "input_size", 112))
    if progress is not None and decode_progress is None and evalset.cacheable(size) and not evalset.is_cached(size):
        report = progress
        decode_progress = lambda done, total: report(done, 2 * total)  # noqa: E731
        progress = lambda done, total: report(total + done, 2 * total)  # noqa: E731
    load = evalset.images(size, decode_progress)
    embeddings = embed_images(model, load, evalset.num_images, batch_size=batch_size, device=device, progress=progress)
    return evalset.verify(embeddings, far_target)

