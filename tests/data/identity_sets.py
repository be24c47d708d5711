"""Tiny real-data layouts for the identity-overlap and bring-your-own-benchmark tests: an LFW copy
with people.txt folds and pairs.txt, and insightface .bin files (good and bad)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from synface.data.verification_bin import write_bin

#: people.txt folds of `make_lfw`: fold f holds PEOPLE[2f], PEOPLE[2f + 1]
PEOPLE = ["Ann_Lee", "Bob_Ray", "Cid_Moe", "Dee_Poe", "Eve_Kim", "Fay_Roe"]
FOLDS = 3


def jpeg(seed: int, size: int = 56) -> bytes:
    """A small random JPEG."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_lfw(root: Path, pairs: bool = True, people: bool = True) -> Path:
    """An LFW copy (`images/<Name>/<Name>_NNNN.jpg`) of 6 people in 3 folds, 2 images each; pairs.txt
    holds per fold 1 same-person and 1 different-person pair of that fold's two people."""
    for i, name in enumerate(PEOPLE):
        folder = root / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in (1, 2):
            (folder / f"{name}_{k:04d}.jpg").write_bytes(jpeg(10 * i + k))
    if people:
        lines = [str(FOLDS)]
        for f in range(FOLDS):
            lines += ["2", f"{PEOPLE[2 * f]}\t2", f"{PEOPLE[2 * f + 1]}\t2"]
        (root / "people.txt").write_text("\n".join(lines) + "\n")
    if pairs:
        lines = [f"{FOLDS}\t1"]
        for f in range(FOLDS):
            a, b = PEOPLE[2 * f], PEOPLE[2 * f + 1]
            lines += [f"{a}\t1\t2", f"{a}\t1\t{b}\t2"]
        (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def make_bin(path: Path, pairs: int = 20, seed: int = 0) -> Path:
    """A verification .bin of `pairs` pairs (half same, alternating) written by our writer."""
    bins = [jpeg(1000 * seed + i) for i in range(2 * pairs)]
    write_bin(path, bins, [i % 2 == 0 for i in range(pairs)])
    return path


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def bad_bins(folder: Path) -> dict[str, Path]:
    """Files named .bin that are not verification files: random bytes, a pickle of something else,
    a pickle with globals."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"random": folder / "random.bin", "other": folder / "other.bin", "globals": folder / "globals.bin"}
    out["random"].write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    out["other"].write_bytes(pickle.dumps({"hello": [1, 2, 3]}, protocol=2))
    out["globals"].write_bytes(pickle.dumps((_Evil(), [True]), protocol=2))
    return out
