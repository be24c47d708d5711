"""UMAP of face embeddings (Figure 3), with a warm-up that pays numba's JIT cost up front.

umap-learn compiles its kernels on the first call (tens of seconds on a cold cache), so the app
calls `warmup_umap()` at start-up: a tiny fit with the same metric, init and seeding as
`embed_umap`, in a background thread, which compiles the very code paths a real call uses.

Choices (measured on the shared 2-core dev CPU, 10,000 x 512 clustered unit vectors, after
warm-up): cosine metric, spectral init, `random_state` set: 16 s at light load, 26-29 s at load
average ~5.5; the unseeded (parallel) fit 23-31 s. With two busy cores the parallel path gains
nothing, so the default is seeded and reproducible. The warm-up uses > 4,096 points because UMAP
switches to NN-descent there (a cold first 10k call took 64 s with a smaller warm-up).
`seed=None` gives the parallel, non-deterministic fit for bigger machines.
`low_memory=True` keeps the nearest-neighbour descent's memory flat for large sets.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings

import numpy as np

__all__ = ["embed_umap", "warmup_umap", "umap_available"]

_WARM = threading.Event()
_WARM_LOCK = threading.Lock()
_WARM_THREAD: threading.Thread | None = None


def _ensure_numba_cache() -> None:
    """numba writes its cache beside site-packages by default; fall back to a writable folder."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "synface-numba-cache")


def umap_available() -> bool:
    try:
        _ensure_numba_cache()
        import umap  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 - a broken numba install raises odd types
        return False
    return True


def _fallback(x: np.ndarray, n_components: int) -> np.ndarray:
    """Too few points for UMAP: PCA coordinates (zero-padded), so small sets still plot."""
    centred = x - x.mean(axis=0, keepdims=True)
    if len(x) < 2:
        return np.zeros((len(x), n_components), dtype=np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:n_components].T
    out = np.zeros((len(x), n_components), dtype=np.float32)
    out[:, : coords.shape[1]] = coords
    return out


def embed_umap(features: np.ndarray, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1,
               seed: int | None = 0, metric: str = "cosine", n_epochs: int | None = None) -> np.ndarray:
    """(N, n_components) float32 UMAP coordinates of (N, D) features.

    seed: an int gives a reproducible single-threaded fit; None lets numba use every core.
    Sets with fewer than 6 points fall back to PCA (UMAP needs a neighbourhood).
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array, got shape {x.shape}")
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or inf")
    if len(x) < 6:
        return _fallback(x, n_components)
    _ensure_numba_cache()
    import umap  # noqa: PLC0415 - slow import (numba), only when needed

    kwargs = dict(n_components=n_components, n_neighbors=int(max(2, min(n_neighbors, len(x) - 1))),
                  min_dist=float(min_dist), metric=metric, init="spectral", low_memory=True, n_epochs=n_epochs)
    if seed is not None:
        kwargs["random_state"] = int(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init fallbacks
        try:
            coords = umap.UMAP(**kwargs).fit_transform(x)
        except (ValueError, TypeError):
            # spectral init can fail on disconnected tiny graphs; random init always works
            kwargs["init"] = "random"
            coords = umap.UMAP(**kwargs).fit_transform(x)
    return np.asarray(coords, dtype=np.float32)


def _warm() -> None:
    try:
        # > 4096 points: UMAP switches from exact neighbours to NN-descent there, a separate kernel
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(16, 16))
        x = centres[rng.integers(0, 16, 4200)] + 0.3 * rng.normal(size=(4200, 16))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        embed_umap(x, 2, seed=0, n_epochs=5)
        embed_umap(x[:300], 3, seed=None, n_epochs=5)
    except Exception as exc:  # noqa: BLE001 - warm-up must never break start-up
        warnings.warn(f"UMAP warm-up failed: {exc}", stacklevel=2)
    finally:
        _WARM.set()


def warmup_umap(background: bool = True) -> threading.Thread | None:
    """Compile UMAP's kernels once per process (idempotent); returns the thread when started."""
    global _WARM_THREAD
    with _WARM_LOCK:
        if _WARM.is_set() or (_WARM_THREAD is not None and _WARM_THREAD.is_alive()):
            return _WARM_THREAD
        if not background:
            _warm()
            return None
        _WARM_THREAD = threading.Thread(target=_warm, name="umap-warmup", daemon=True)
        _WARM_THREAD.start()
        return _WARM_THREAD


def is_warm() -> bool:
    return _WARM.is_set()
