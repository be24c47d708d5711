"""The photographs a face model is learned from: an identity-per-folder set or an LFW copy."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from synface.data.errors import DataError
from synface.data.imagefolder import ImageFolderIndex

#: fewer people than this cannot give a shape spread or a reflectance bank worth sampling
MIN_PEOPLE = 10


@dataclass
class PhotoSet:
    """People (sorted by folder name) and their photos, as chosen for one fit."""

    root: Path
    people: list[str]
    photos: list[list[Path]]
    missing: list[str] = field(default_factory=list)  # people the LFW folds name who have no photo folder

    @property
    def files(self) -> list[tuple[int, Path]]:
        """(person index, photo) in a fixed order: the order fits are cached in."""
        return [(p, path) for p, paths in enumerate(self.photos) for path in paths]

    def digest(self) -> str:
        """sha256 of the relative file list: names the exact photos a model was learned from."""
        h = hashlib.sha256()
        for _, path in self.files:
            h.update(str(path.relative_to(self.root)).encode() + b"\n")
        return h.hexdigest()


def _lfw_people_of_folds(root: Path, folds: list[int]) -> set[str]:
    from synface.data.lfw import people_of_folds, read_people  # noqa: PLC0415

    people_file = root / "people.txt"
    if not people_file.is_file():
        raise DataError("--folds needs an LFW copy with people.txt", path=root)
    table = read_people(people_file)
    bad = [f for f in folds if not 1 <= f <= len(table)]
    if bad:
        raise DataError(f"fold {bad[0]} is out of range 1..{len(table)}", path=people_file)
    return set(people_of_folds(table, [f - 1 for f in folds]))


def find_photos(root: str | Path, people: int | None = None, folds: list[int] | None = None,
                max_photos_per_person: int | None = None) -> PhotoSet:
    """The photos under `root` (`root/<person>/*.jpg`, or an LFW copy with `root/images/`),
    optionally only the people of LFW `folds` (1-based), the first `people` people, and at most
    `max_photos_per_person` photos each."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("photo folder not found", path=root)
    images_root = root / "images" if (root / "images").is_dir() else root
    index = ImageFolderIndex(images_root)
    chosen = dict(index.images)
    missing: list[str] = []
    if folds:
        allowed = _lfw_people_of_folds(root, folds)
        missing = sorted(allowed - set(chosen))
        chosen = {name: files for name, files in chosen.items() if name in allowed}
    names = sorted(chosen)
    if people is not None:
        if people < MIN_PEOPLE:
            raise DataError(f"--people {people}: a model needs at least {MIN_PEOPLE} people", path=root)
        names = names[:people]
    if len(names) < MIN_PEOPLE:
        raise DataError(f"{len(names)} people with photos; a face model needs at least {MIN_PEOPLE}", path=root)
    photos = [chosen[n][:max_photos_per_person] if max_photos_per_person else chosen[n] for n in names]
    return PhotoSet(images_root, names, photos, missing)
