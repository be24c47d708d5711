"""Face-verification evaluation: k-fold accuracy, TAR@FAR and ROC from pair similarity scores.

Follows the insightface/LFW protocol: scores are cosine similarities of flip-summed,
L2-normalised embeddings; a pair is predicted "same" when score > threshold; for each fold the
threshold that maximises accuracy on the other folds is applied to the held-out fold, and the
mean +- population std of the fold accuracies is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import roc_curve
from torch import nn

__all__ = [
    "VerificationResult",
    "kfold_verification",
    "contiguous_folds",
    "best_threshold",
    "tar_at_far",
    "tar_at_far_from_roc",
    "embed_images",
    "embed_pairs",
    "pair_scores",
]

#: the FARs whose TAR every result keeps exactly (the ROC it stores is thinned)
REPORTED_FARS = (1e-2, 1e-3, 1e-4)
_END_GAP = 1e-6  # end candidates sit this far outside the score range (all-same / all-different)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float:
    """A stored number as a float; NaN for anything else (missing, text, a list)."""
    return float(value) if _is_number(value) else float("nan")


def _count(value: Any) -> int:
    """A stored count; 0 (unknown) for anything that is not a non-negative whole number."""
    return int(value) if _is_number(value) and math.isfinite(value) and value >= 0 and value == int(value) else 0


def _numbers(values: Any) -> np.ndarray:
    """A stored list of numbers as a float array; empty when it is not a list of numbers."""
    if not isinstance(values, (list, tuple)) or not all(_is_number(v) for v in values):
        return np.zeros(0)
    return np.asarray(values, dtype=float)


def tar_at_far_from_roc(fpr: Sequence[float] | np.ndarray, tpr: Sequence[float] | np.ndarray, far: float) -> float | None:
    """The highest TPR among ROC points whose FPR does not exceed `far` (None without a ROC)."""
    f, t = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
    if f.size == 0 or f.size != t.size:
        return None
    ok = f <= far * (1 + 1e-9)
    return float(t[ok].max()) if ok.any() else 0.0


@dataclass
class VerificationResult:
    """Everything one verification run reports; `to_dict()` is JSON-serialisable."""

    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray
    mean_accuracy: float
    std_accuracy: float
    far_target: float
    tar_at_far: float
    far_achieved: float
    threshold_at_far: float
    fpr: np.ndarray
    tpr: np.ndarray
    roc_thresholds: np.ndarray
    auc: float
    best_accuracy: float
    best_threshold: float
    num_pairs: int
    num_genuine: int
    num_impostor: int
    #: TAR per FAR (keyed as written with `:g`) computed from the full ROC, as a stored result keeps them
    exact_tars: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VerificationResult":
        """A result as `to_dict` stored it (an eval.json entry), older forms included, read in this
        one place: without `tar_at_fars` (TAR then comes from the target or the saved ROC, see
        `tar_at`), without per-fold accuracies (the mean stands for them), with hand-edited or
        missing values (NaN for a number, 0 for a count, an empty ROC). The ROC is the saved one,
        which `to_dict` may have thinned."""
        data = data if isinstance(data, Mapping) else {}
        mean = _number(data.get("mean_accuracy"))
        folds = _numbers(data.get("fold_accuracies"))
        if not folds.size and math.isfinite(mean):
            folds = np.asarray([mean])
        roc = r if isinstance(r := data.get("roc"), Mapping) else {}
        fpr, tpr = _numbers(roc.get("fpr")), _numbers(roc.get("tpr"))
        if fpr.size != tpr.size:
            fpr = tpr = np.zeros(0)
        thresholds = _numbers([np.inf if t is None else t for t in roc.get("thresholds") or []]
                              if isinstance(roc.get("thresholds"), list) else None)
        tars = data.get("tar_at_fars")
        exact = {str(k): float(v) for k, v in tars.items() if _is_number(v)} if isinstance(tars, Mapping) else None
        return cls(
            fold_accuracies=folds, fold_thresholds=_numbers(data.get("fold_thresholds")), mean_accuracy=mean,
            std_accuracy=_number(data.get("std_accuracy")), far_target=_number(data.get("far_target")),
            tar_at_far=_number(data.get("tar_at_far")), far_achieved=_number(data.get("far_achieved")),
            threshold_at_far=_number(data.get("threshold_at_far")), fpr=fpr, tpr=tpr, roc_thresholds=thresholds,
            auc=_number(data.get("auc")), best_accuracy=_number(data.get("best_accuracy")),
            best_threshold=_number(data.get("best_threshold")), num_pairs=_count(data.get("num_pairs")),
            num_genuine=_count(data.get("num_genuine")), num_impostor=_count(data.get("num_impostor")),
            exact_tars=exact or None)

    def tar_at(self, far: float) -> float | None:
        """TAR at `far`: the exact value kept from the full ROC when there is one, this result's own
        `tar_at_far` when `far` is its target, else read from the ROC it holds (never an
        overstatement when that ROC was thinned); None without a ROC."""
        exact = (self.exact_tars or {}).get(f"{far:g}")
        if exact is not None:
            return float(exact)
        if math.isfinite(self.far_target) and math.isfinite(self.tar_at_far) \
                and abs(self.far_target - far) <= 1e-12 + 1e-9 * far:
            return float(self.tar_at_far)
        return tar_at_far_from_roc(self.fpr, self.tpr, far)

    def to_dict(self, roc_points: int | None = 200) -> dict:
        """Plain floats/lists; the ROC is subsampled to about `roc_points` (None keeps all).

        Non-finite ROC thresholds (sklearn's leading +inf) become None, since JSON has no inf.
        """
        idx = _subsample(len(self.fpr), roc_points)
        return {
            "fold_accuracies": [float(a) for a in self.fold_accuracies],
            "fold_thresholds": [float(t) for t in self.fold_thresholds],
            "mean_accuracy": float(self.mean_accuracy),
            "std_accuracy": float(self.std_accuracy),
            "far_target": float(self.far_target),
            "tar_at_far": float(self.tar_at_far),
            "far_achieved": float(self.far_achieved),
            "threshold_at_far": _finite_or_none(self.threshold_at_far),
            "roc": {
                "fpr": [float(v) for v in self.fpr[idx]],
                "tpr": [float(v) for v in self.tpr[idx]],
                "thresholds": [_finite_or_none(v) for v in self.roc_thresholds[idx]],
            },
            "tar_at_fars": dict(self.exact_tars) if self.exact_tars else self.tars_at(REPORTED_FARS),
            "auc": float(self.auc),
            "best_accuracy": float(self.best_accuracy),
            "best_threshold": float(self.best_threshold),
            "num_pairs": int(self.num_pairs),
            "num_genuine": int(self.num_genuine),
            "num_impostor": int(self.num_impostor),
        }


    def tars_at(self, fars: Sequence[float]) -> dict[str, float]:
        """TAR at each FAR from the full ROC (before `to_dict` thins it): the highest TPR whose FPR
        does not exceed the FAR, keyed by the FAR as written with `:g`."""
        fpr, tpr = np.asarray(self.fpr, dtype=float), np.asarray(self.tpr, dtype=float)
        out = {}
        for far in fars:
            ok = fpr <= far * (1 + 1e-9)
            out[f"{far:g}"] = float(tpr[ok].max()) if ok.any() else 0.0
        return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _subsample(n: int, points: int | None) -> np.ndarray:
    """Evenly spaced indices that always keep the first and last ROC point."""
    if points is None or n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(points, 2)).round().astype(int))


def contiguous_folds(num_pairs: int, num_folds: int = 10) -> np.ndarray:
    """Fold id per pair as sklearn's KFold without shuffling (insightface's .bin evaluation)."""
    sizes = np.full(num_folds, num_pairs // num_folds)
    sizes[: num_pairs % num_folds] += 1
    return np.repeat(np.arange(num_folds), sizes)


def _accuracy_curve(scores: np.ndarray, issame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate thresholds (ends + midpoints of sorted unique scores) and the accuracy of each."""
    uniq = np.unique(scores)
    cands = np.concatenate([[uniq[0] - _END_GAP], (uniq[:-1] + uniq[1:]) / 2.0, [uniq[-1] + _END_GAP]])
    genuine, impostor = np.sort(scores[issame]), np.sort(scores[~issame])
    true_accepts = len(genuine) - np.searchsorted(genuine, cands, side="right")  # genuine > t
    true_rejects = np.searchsorted(impostor, cands, side="right")                # impostor <= t
    return cands, (true_accepts + true_rejects) / len(scores)


def best_threshold(scores: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy; ties go to the lowest threshold (np.argmax, as insightface)."""
    cands, acc = _accuracy_curve(np.asarray(scores, dtype=np.float64), np.asarray(issame, dtype=bool))
    i = int(np.argmax(acc))
    return float(cands[i]), float(acc[i])


def tar_at_far(scores: np.ndarray, issame: np.ndarray, far_target: float) -> tuple[float, float, float]:
    """(TAR, achieved FAR, threshold) at the strictest threshold whose FAR does not exceed the target.

    No interpolation: with n impostors, k = floor(far_target * n) false accepts are allowed, the
    threshold is the (k+1)-th highest impostor score and a pair is accepted when score > threshold,
    so impostors tied at the threshold are rejected and the achieved FAR is <= far_target.
    With k >= n every pair is accepted (threshold -inf).
    """
    scores = np.asarray(scores, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    impostor = np.sort(scores[~issame])[::-1]
    k = int(np.floor(far_target * len(impostor) + 1e-9))
    threshold = float(impostor[k]) if k < len(impostor) else -np.inf
    tar = float(np.mean(scores[issame] > threshold))
    far = float(np.mean(impostor > threshold))
    return tar, far, threshold


def kfold_verification(
    scores: np.ndarray, issame: np.ndarray, folds: np.ndarray, far_target: float = 1e-3
) -> VerificationResult:
    """k-fold verification accuracy (threshold chosen on the other folds) plus TAR@FAR, ROC and AUC.

    scores: (N,) cosine similarities, higher = same person; issame: (N,) bool; folds: (N,) fold
    id per pair (e.g. LFW's 10 pairs.txt folds, or `contiguous_folds`).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    issame = np.asarray(issame, dtype=bool).ravel()
    folds = np.asarray(folds).ravel()
    if not (len(scores) == len(issame) == len(folds)):
        raise ValueError("scores, issame and folds must have the same length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    if issame.all() or not issame.any():
        raise ValueError("need both genuine and impostor pairs")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ValueError("need at least 2 folds: each threshold is chosen on the other folds")

    accs, thresholds = [], []
    for f in fold_ids:
        test = folds == f
        thr, _ = best_threshold(scores[~test], issame[~test])
        thresholds.append(thr)
        accs.append(float(np.mean((scores[test] > thr) == issame[test])))
    accs_arr = np.asarray(accs)

    tar, far, thr_far = tar_at_far(scores, issame, far_target)
    fpr, tpr, roc_thr = roc_curve(issame, scores)
    best_thr, best_acc = best_threshold(scores, issame)
    return VerificationResult(
        fold_accuracies=accs_arr,
        fold_thresholds=np.asarray(thresholds),
        mean_accuracy=float(accs_arr.mean()),
        std_accuracy=float(accs_arr.std()),
        far_target=float(far_target),
        tar_at_far=tar,
        far_achieved=far,
        threshold_at_far=thr_far,
        fpr=fpr,
        tpr=tpr,
        roc_thresholds=roc_thr,
        auc=float(sk_auc(fpr, tpr)),
        best_accuracy=best_acc,
        best_threshold=best_thr,
        num_pairs=len(scores),
        num_genuine=int(issame.sum()),
        num_impostor=int((~issame).sum()),
    )


# ----------------------------------------------------------------------------- embeddings

Progress = Callable[[int, int], None]


def _forward(model: nn.Module, x: torch.Tensor, flip: bool) -> torch.Tensor:
    size = getattr(model, "input_size", None)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    emb = model(x).float()
    if flip:
        emb = emb + model(torch.flip(x, dims=[3])).float()
    return F.normalize(emb, dim=1)


def embed_images(
    model: nn.Module, load_batch: Callable[[int, int], torch.Tensor], num_images: int,
    batch_size: int = 64, device: str | torch.device = "cpu", flip: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """L2-normalised embeddings (num_images, D) of image + horizontally flipped image (summed).

    `load_batch(start, stop)` returns images [start, stop) as (n, 3, H, W) floats in [-1, 1];
    they are resized (area) to `model.input_size` when H differs. The model runs in eval mode
    under no_grad and gets its previous mode back afterwards.
    """
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for start in range(0, num_images, batch_size):
                stop = min(start + batch_size, num_images)
                x = load_batch(start, stop).to(device=device, dtype=torch.float32)
                out.append(_forward(model, x, flip).cpu().numpy())
                if progress is not None:
                    progress(stop, num_images)
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, getattr(model, "embedding_dim", 0)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def embed_pairs(
    model: nn.Module, load_batch: Callable[[int, int], torch.Tensor], num_pairs: int,
    batch_size: int = 64, device: str | torch.device = "cpu", flip: bool = True,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (emb_a, emb_b) of 2*num_pairs images laid out as in insightface .bin files:
    pair i is images 2i and 2i+1. See `embed_images` for `load_batch` and `progress`
    (which counts images, total 2*num_pairs)."""
    emb = embed_images(model, load_batch, 2 * num_pairs, batch_size, device, flip, progress)
    return emb[0::2], emb[1::2]


def pair_scores(emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """Cosine similarity per row pair (normalises again, so raw embeddings work too)."""
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
