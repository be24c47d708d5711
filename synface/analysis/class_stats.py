"""Intra- versus inter-class cosine similarity of a feature set.

The paper's diagnosis of the synthetic-to-real gap is "poor intra-class variation": under one
model, images of one synthetic identity sit closer together than images of one real person.
These numbers measure that directly: the mean cosine between two images of the same class, the
mean cosine between two images of different classes, their difference, and a d'-style ratio
(difference over the pooled standard deviation), so sets of different sizes compare.

Exact over all pairs when there are few enough; otherwise a seeded sample of pairs (the sample
is uniform over pairs, so the means are unbiased).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["class_statistics", "class_table"]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _intra_pairs(labels: np.ndarray, max_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, same label: all of them, or `max_pairs` drawn uniformly over pairs."""
    order = np.argsort(labels, kind="stable")
    _, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    per_class = counts * (counts - 1) // 2
    total = int(per_class.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if total <= max_pairs:
        a, b = [], []
        for s, c in zip(starts, counts):
            if c > 1:
                ii, jj = np.triu_indices(c, 1)
                a.append(order[s + ii])
                b.append(order[s + jj])
        return np.concatenate(a), np.concatenate(b)
    cls = rng.choice(len(counts), size=max_pairs, p=per_class / total)  # weight by pair count
    c = counts[cls]
    i = rng.integers(0, c)
    j = rng.integers(0, c - 1)
    j = j + (j >= i)
    return order[starts[cls] + i], order[starts[cls] + j]


def _inter_pairs(labels: np.ndarray, max_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to `max_pairs` random pairs of images with different labels (all, for small sets)."""
    n = len(labels)
    if n * (n - 1) // 2 <= max_pairs:
        a, b = np.triu_indices(n, 1)
    else:
        draw = int(max_pairs * 1.2) + 16
        a = rng.integers(0, n, size=draw)
        b = rng.integers(0, n, size=draw)
    keep = labels[a] != labels[b]
    return a[keep][:max_pairs], b[keep][:max_pairs]


def _summary(values: np.ndarray) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def class_statistics(features: np.ndarray, labels: np.ndarray, max_pairs: int = 200_000,
                     seed: int = 0) -> dict[str, Any]:
    """Mean/std intra- and inter-class cosine, their separation and d', class and image counts.

    A set whose classes have a single image each has no intra-class pairs: those values are NaN.
    """
    x = _normalise(features)
    labels = np.asarray(labels).reshape(-1)
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} features but {len(labels)} labels")
    rng = np.random.default_rng(seed)
    ia, ib = _intra_pairs(labels, max_pairs, rng)
    ea, eb = _inter_pairs(labels, max_pairs, rng)
    intra = np.einsum("ij,ij->i", x[ia], x[ib]) if len(ia) else np.zeros(0)
    inter = np.einsum("ij,ij->i", x[ea], x[eb]) if len(ea) else np.zeros(0)
    intra_mean, intra_std = _summary(intra)
    inter_mean, inter_std = _summary(inter)
    separation = intra_mean - inter_mean
    pooled = np.sqrt((intra_std**2 + inter_std**2) / 2.0)
    d_prime = separation / pooled if np.isfinite(pooled) and pooled > 0 else float("nan")
    _, counts = np.unique(labels, return_counts=True)
    return {
        "images": int(len(labels)),
        "classes": int(len(counts)),
        "classes_with_pairs": int((counts > 1).sum()),
        "intra_mean": intra_mean,
        "intra_std": intra_std,
        "inter_mean": inter_mean,
        "inter_std": inter_std,
        "separation": float(separation),
        "d_prime": float(d_prime),
        "intra_pairs": int(len(intra)),
        "inter_pairs": int(len(inter)),
    }


def class_table(stats: Mapping[str, Mapping[str, Any]]):
    """{dataset name: class_statistics(...)} -> a pandas DataFrame, one row per dataset."""
    import pandas as pd  # noqa: PLC0415

    rows = [{"dataset": name, **dict(values)} for name, values in stats.items()]
    columns = ["dataset", "images", "classes", "intra_mean", "inter_mean", "separation", "d_prime",
               "intra_std", "inter_std", "classes_with_pairs", "intra_pairs", "inter_pairs"]
    return pd.DataFrame(rows, columns=columns)
