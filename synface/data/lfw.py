"""LFW's own text formats (pairs.txt, people.txt) and folder layout.

Parsing is strict because a silently misread pairs file changes every reported accuracy:
field counts, integers and per-fold line counts are checked, and each error names the file
and 1-based line. Works for the full 10-fold LFW, the 5-fold copy in shared/data/lfw, and
View-1 files whose header is a single count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from synface.data.errors import DataError
from synface.data.verification import Pair, VerificationPairs

__all__ = [
    "Pair",
    "read_pairs",
    "read_people",
    "LFWLayout",
    "lfw_verification_pairs",
    "people_of_folds",
    "people_without_images",
]

IMAGE_PATTERN = "{name}/{name}_{num:04d}.jpg"


def _content_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split fields) of each non-blank line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", path=path) from None
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if fields:
            yield lineno, fields


def _int_field(value: str, what: str, path: Path, line: int, minimum: int = 1) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{what} must be an integer, got {value!r}", path=path, line=line) from None
    if number < minimum:
        raise DataError(f"{what} must be >= {minimum}, got {number}", path=path, line=line)
    return number


def _pairs_header(fields: list[str], path: Path, line: int) -> tuple[int, int]:
    """`folds n` or, View-1 style, a single `n` meaning one fold of n same + n different."""
    if len(fields) not in (1, 2):
        raise DataError(
            f"header must be '<folds>\\t<pairs per class>' or '<pairs>', got {len(fields)} fields",
            path=path,
            line=line,
        )
    numbers = [_int_field(f, "header value", path, line) for f in fields]
    return (1, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])


def read_pairs(path: str | Path) -> list[Pair]:
    """All pairs in file order; fold ids are 0-based."""
    path = Path(path)
    lines = _content_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError("empty pairs file", path=path)
    folds, n = _pairs_header(first[1], path, first[0])
    pairs: list[Pair] = []
    last_line = first[0]
    for lineno, fields in lines:
        index = len(pairs)
        if index >= folds * 2 * n:
            raise DataError(
                f"extra line: header announces {folds} folds x 2 x {n} pairs", path=path, line=lineno
            )
        fold, same = index // (2 * n), index % (2 * n) < n
        pairs.append(_parse_pair(fields, fold, same, path, lineno))
        last_line = lineno
    if len(pairs) != folds * 2 * n:
        raise DataError(
            f"header announces {folds} folds x 2 x {n} = {folds * 2 * n} pairs, file ends after {len(pairs)}",
            path=path,
            line=last_line,
        )
    return pairs


def _parse_pair(fields: list[str], fold: int, same: bool, path: Path, line: int) -> Pair:
    if len(fields) not in (3, 4):
        raise DataError(f"expected 3 or 4 tab-separated fields, got {len(fields)}", path=path, line=line)
    expected = 3 if same else 4
    if len(fields) != expected:
        kind = "same-person 'name A B'" if same else "different-person 'name1 A name2 B'"
        raise DataError(
            f"fold {fold + 1} expects a {kind} line here ({expected} fields), got {len(fields)}",
            path=path,
            line=line,
        )
    if same:
        name, a, b = fields
        return Pair(fold, name, _int_field(a, "image number", path, line), name,
                    _int_field(b, "image number", path, line), True, line)
    name_a, a, name_b, b = fields
    return Pair(fold, name_a, _int_field(a, "image number", path, line), name_b,
                _int_field(b, "image number", path, line), False, line)


def read_people(path: str | Path) -> list[list[tuple[str, int]]]:
    """Per fold, the (name, image count) entries of an LFW people.txt."""
    path = Path(path)
    lines = _content_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError("empty people file", path=path)
    header_line, header = first
    if len(header) != 1:
        raise DataError(
            f"header must be the number of folds, got {len(header)} fields", path=path, line=header_line
        )
    num_folds = _int_field(header[0], "number of folds", path, header_line)
    folds: list[list[tuple[str, int]]] = []
    remaining, last_line = 0, header_line
    for lineno, fields in lines:
        last_line = lineno
        if remaining == 0:
            if len(folds) == num_folds:
                raise DataError(f"extra line: header announces {num_folds} folds", path=path, line=lineno)
            if len(fields) != 1:
                raise DataError(
                    f"expected fold {len(folds) + 1}'s person count (1 field), got {len(fields)}",
                    path=path,
                    line=lineno,
                )
            remaining = _int_field(fields[0], "person count", path, lineno)
            folds.append([])
            continue
        if len(fields) != 2:
            raise DataError(
                f"expected 2 tab-separated fields 'name count', got {len(fields)}", path=path, line=lineno
            )
        folds[-1].append((fields[0], _int_field(fields[1], "image count", path, lineno)))
        remaining -= 1
    if remaining or len(folds) != num_folds:
        raise DataError(
            f"file ends early: {len(folds)} of {num_folds} folds, {remaining} people missing in the last",
            path=path,
            line=last_line,
        )
    return folds


def people_of_folds(people: Sequence[Sequence[tuple[str, int]]], folds: Iterable[int]) -> list[str]:
    """Names in the given 0-based folds, in fold then file order, without repeats."""
    names: dict[str, None] = {}
    for fold in folds:
        if not 0 <= fold < len(people):
            raise DataError(f"fold {fold} out of range 0..{len(people) - 1}")
        names.update((name, None) for name, _ in people[fold])
    return list(names)


class LFWLayout:
    """Where an LFW copy keeps its images: `root/images/<Name>/...` or `root/<Name>/...`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("LFW folder not found", path=self.root)
        nested = self.root / "images"
        self.images_root = nested if nested.is_dir() else self.root

    @property
    def pairs_file(self) -> Path:
        return self.root / "pairs.txt"

    @property
    def people_file(self) -> Path:
        return self.root / "people.txt"

    def image_path(self, name: str, num: int) -> Path:
        """Path of `name`'s image number `num` (1-based), whether or not it exists."""
        return self.images_root / IMAGE_PATTERN.format(name=name, num=num)

    def identity_images(self, names: Iterable[str]) -> dict[str, list[Path]]:
        """Sorted .jpg files of each named person (for building Real_{R}_{k} subsets)."""
        out = {}
        for name in names:
            folder = self.images_root / name
            if not folder.is_dir():
                raise DataError(f"no image folder for {name}", path=folder)
            out[name] = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg")
        return out


def people_without_images(layout: LFWLayout, names: Iterable[str]) -> list[str]:
    """The names (in order) that have no `.jpg` under the layout's images: no folder, or an empty one.
    A people.txt that names them would otherwise pick fewer images than it says, silently."""
    missing = []
    for name in names:
        folder = layout.images_root / name
        if not folder.is_dir() or not any(p.suffix.lower() == ".jpg" for p in folder.iterdir()):
            missing.append(name)
    return missing


def lfw_verification_pairs(root: str | Path, pairs_file: str | Path | None = None) -> VerificationPairs:
    """LFW pairs as a VerificationPairs of image paths; a missing image names its pairs line."""
    layout = LFWLayout(root)
    pairs_path = Path(pairs_file) if pairs_file is not None else layout.pairs_file
    pairs = read_pairs(pairs_path)
    images_a, images_b = [], []
    for p in pairs:
        a, b = layout.image_path(p.name_a, p.num_a), layout.image_path(p.name_b, p.num_b)
        for img in (a, b):
            if not img.is_file():
                raise DataError(f"image not found: {img}", path=pairs_path, line=p.line)
        images_a.append(str(a))
        images_b.append(str(b))
    return VerificationPairs(
        images_a=images_a,
        images_b=images_b,
        issame=np.array([p.same for p in pairs], dtype=bool),
        folds=np.array([p.fold for p in pairs], dtype=np.int64),
        source=str(pairs_path),
    )
