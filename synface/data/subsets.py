"""Real_{R_ID}_{k}: the real-data subsets of SynFace's mixed-training tables.

The first R_ID identities (sorted by name) that have at least k images, with the first k
images (sorted) of each. Fully determined by the folder contents, so two machines building
"Real_2K_10" train on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from synface.data.errors import DataError
from synface.data.imagefolder import ImageFolderIndex

ImageSource = ImageFolderIndex | Mapping[str, Sequence[str | Path]]


@dataclass(frozen=True)
class Subset:
    """A chosen subset: identities in label order, each with its k image paths."""

    name: str
    identities: tuple[str, ...]
    images: tuple[tuple[Path, ...], ...]

    def samples(self) -> list[tuple[Path, int]]:
        """(path, label) pairs, label = position of the identity in `identities`."""
        return [(p, label) for label, paths in enumerate(self.images) for p in paths]

    def __len__(self) -> int:
        return sum(len(paths) for paths in self.images)


def subset_name(r_id: int, k: int, prefix: str = "Real") -> str:
    """Paper-style name: 2000, 10 -> 'Real_2K_10'; 500, 20 -> 'Real_500_20'."""
    ids = f"{r_id // 1000}K" if r_id >= 1000 and r_id % 1000 == 0 else str(r_id)
    return f"{prefix}_{ids}_{k}"


def real_subset(source: ImageSource, r_id: int, k: int) -> Subset:
    """Real_{r_id}_{k} from an ImageFolderIndex or an {identity: image paths} mapping."""
    if r_id < 1 or k < 1:
        raise DataError(f"r_id and k must be >= 1, got {r_id} and {k}")
    mapping = source.images if isinstance(source, ImageFolderIndex) else source
    name = subset_name(r_id, k)
    eligible = [ident for ident in sorted(mapping) if len(mapping[ident]) >= k]
    if len(eligible) < r_id:
        raise DataError(
            f"{name} needs {r_id} identities with >= {k} images; only {len(eligible)} of "
            f"{len(mapping)} have that many; lower R_ID to {len(eligible)} or k"
        )
    chosen = eligible[:r_id]
    images = tuple(tuple(sorted((Path(p) for p in mapping[i]), key=str)[:k]) for i in chosen)
    return Subset(name=name, identities=tuple(chosen), images=images)
