"""A fit's per-chunk cache files: written atomically, read back as nothing when torn or odd.

Why a module of its own: every stage of a fit (build.py, contexts.py) caches its chunks the same
way, so a killed fit resumes with what was finished and recomputes the rest.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from synface.base.files import atomic_path, open_regular


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """A cached chunk, or None when missing, torn or not a regular file (it is then recomputed)."""
    try:
        with open_regular(path) as handle, np.load(handle, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def save_npz(path: Path, /, **arrays: np.ndarray) -> None:
    """Write a chunk's arrays to `path` atomically (a kill leaves the old file or none)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle among the **kwds
