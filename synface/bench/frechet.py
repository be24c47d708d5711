"""The Fréchet distance between Gaussians fitted to two sets of feature rows (as FID does for
images), shared by the descriptor (synface/bench/realism.py) and image-level
(synface/bench/image_realism.py) realism figures."""

from __future__ import annotations

import numpy as np


def frechet_parts(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The two terms of the Fréchet distance between Gaussians fitted to two sets of rows: the
    squared distance of the means and the covariance term. Why both: a rise in the distance can be
    a shifted population (the mean) or a differently spread one (the covariance)."""
    from scipy import linalg  # noqa: PLC0415

    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(ca @ cb)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum()), float(np.trace(ca + cb - 2 * root))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of rows (as FID does for images)."""
    return sum(frechet_parts(a, b))
