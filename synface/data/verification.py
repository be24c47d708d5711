"""The in-memory verification set every evaluator reads, whatever file it came from.

An LFW folder (paths) and an insightface `.bin` (encoded bytes) both become a
`VerificationPairs`, so the k-fold evaluator has one input type. Also home to `Pair` (one line
of an LFW pairs.txt) and `write_pairs` for benchmarks that ship their own pairs file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from synface.base.files import atomic_path
from synface.data.errors import DataError
from synface.data.imageio import open_image

ImageRef = str | Path | bytes


@dataclass(frozen=True)
class Pair:
    """One pairs.txt line: fold is 0-based, image numbers 1-based as in LFW's file names."""

    fold: int
    name_a: str
    num_a: int
    name_b: str
    num_b: int
    same: bool
    line: int = field(default=0, compare=False)  # 1-based source line, 0 when not from a file


@dataclass
class VerificationPairs:
    """N pairs of images (paths or encoded bytes) with same/different labels and fold ids."""

    images_a: Sequence[ImageRef] = field(repr=False)
    images_b: Sequence[ImageRef] = field(repr=False)
    issame: np.ndarray
    folds: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        self.issame = np.asarray(self.issame, dtype=bool).reshape(-1)
        self.folds = np.asarray(self.folds, dtype=np.int64).reshape(-1)
        n = len(self.issame)
        if not (len(self.images_a) == len(self.images_b) == n == len(self.folds)):
            raise DataError(
                f"pair lists disagree: {len(self.images_a)} a, {len(self.images_b)} b, "
                f"{n} labels, {len(self.folds)} fold ids",
                path=self.source or None,
            )
        if n and self.folds.min() < 0:
            raise DataError("fold ids must be >= 0", path=self.source or None)

    def __len__(self) -> int:
        return len(self.issame)

    @property
    def num_folds(self) -> int:
        """Number of folds (fold ids are 0..num_folds-1)."""
        return int(self.folds.max()) + 1 if len(self.folds) else 0

    def image_ref(self, i: int, side: int | str) -> ImageRef:
        """The path or bytes of pair `i`, side 0/'a' or 1/'b'."""
        images = self.images_a if side in (0, "a") else self.images_b if side in (1, "b") else None
        if images is None:
            raise ValueError(f"side must be 0/'a' or 1/'b', got {side!r}")
        return images[i]

    def encoded(self, i: int, side: int | str) -> bytes:
        """Encoded file bytes of one image (read from disk for path entries)."""
        ref = self.image_ref(i, side)
        if isinstance(ref, (bytes, bytearray)):
            return bytes(ref)
        try:
            return Path(ref).read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read image of pair {i}: {exc}", path=ref) from None

    def load_image(self, i: int, side: int | str) -> Image.Image:
        """Decode one image as RGB; undecodable data raises DataError naming the pair."""
        ref = self.image_ref(i, side)
        where = (self.source or None) if isinstance(ref, (bytes, bytearray)) else ref
        try:
            with open_image(ref, f"image {side} of pair {i}", where) as img:
                return img.convert("RGB")
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"cannot decode image {side} of pair {i}: {exc}", path=where) from None

    def select(self, index: slice | np.ndarray | Sequence[int]) -> "VerificationPairs":
        """A subset (slice, boolean mask or integer indices), keeping fold ids."""
        idx = np.arange(len(self))[index if isinstance(index, slice) else np.asarray(index)]
        return VerificationPairs(
            images_a=[self.images_a[i] for i in idx],
            images_b=[self.images_b[i] for i in idx],
            issame=self.issame[idx],
            folds=self.folds[idx],
            source=self.source,
        )


def contiguous_folds(n: int, num_folds: int = 10) -> np.ndarray:
    """Fold id per pair by contiguous blocks in order, sized like sklearn's unshuffled KFold.

    insightface scores `.bin` files this way; matching it keeps accuracies comparable.
    """
    if num_folds < 1 or n < num_folds:
        raise DataError(f"cannot split {n} pairs into {num_folds} folds")
    sizes = np.full(num_folds, n // num_folds)
    sizes[: n % num_folds] += 1
    return np.repeat(np.arange(num_folds), sizes)


def write_pairs(path: str | Path, pairs: Sequence[Pair], folds: int, n: int) -> None:
    """Write an LFW-format pairs.txt: header `folds\\tn`, per fold n same then n different lines.

    The order is checked rather than fixed up, so a benchmark's pairs keep their meaning.
    """
    _check_pairs_layout(pairs, folds, n)
    lines = [f"{folds}\t{n}"]
    for p in pairs:
        _check_pair_fields(p)
        if p.same:
            lines.append(f"{p.name_a}\t{p.num_a}\t{p.num_b}")
        else:
            lines.append(f"{p.name_a}\t{p.num_a}\t{p.name_b}\t{p.num_b}")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _check_pairs_layout(pairs: Sequence[Pair], folds: int, n: int) -> None:
    if folds < 1 or n < 1:
        raise DataError(f"folds and n must be >= 1, got {folds} and {n}")
    if len(pairs) != folds * 2 * n:
        raise DataError(f"{folds} folds x 2 x {n} needs {folds * 2 * n} pairs, got {len(pairs)}")
    for i, p in enumerate(pairs):
        fold, pos = divmod(i, 2 * n)
        want_same = pos < n
        if p.fold != fold or bool(p.same) != want_same:
            kind = "same" if want_same else "different"
            raise DataError(
                f"pair {i} should be a {kind}-person pair of fold {fold}, "
                f"got fold {p.fold} same={p.same}"
            )


def _check_pair_fields(p: Pair) -> None:
    for name in (p.name_a, p.name_b):
        if not name or any(c.isspace() for c in name):
            raise DataError(f"identity name {name!r} is empty or holds whitespace")
    if p.same and p.name_a != p.name_b:
        raise DataError(f"same-person pair names two people: {p.name_a}, {p.name_b}")
    if min(p.num_a, p.num_b) < 1:
        raise DataError(f"image numbers are 1-based, got {p.num_a} and {p.num_b}")
