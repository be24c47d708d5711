"""The evaluation sets of a run: their pairs, and a check, before any training, that each can be scored.

A run that trains for an hour and then finds that its evaluation folder has no pairs.txt, or that
a `.bin` is not a verification file, has wasted the hour. Launch (the queue, `train`, `eval --run`)
calls `check_eval_sets` first, and each problem is one line naming the set. Specs are EvalSetSpec-like
(a mapping, an object with `path` / `name` / `pairs` / `folds`, or a bare path), so this layer needs
no training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synface.data.errors import DataError
from synface.data.lfw import LFWLayout, lfw_verification_pairs, read_pairs
from synface.data.verification import VerificationPairs
from synface.data.verification_bin import read_bin

__all__ = ["load_pairs", "spec_field", "spec_label", "ScorableSet", "check_eval_set", "check_eval_sets"]

NEEDS_PAIRS = "an evaluation folder needs verification pairs (LFW layout: images/<Name>/..., pairs.txt)"


def spec_field(spec: Any, key: str, default: Any = None) -> Any:
    """A field of an eval-set spec, whether it is a mapping, an EvalSetSpec or a bare path."""
    if isinstance(spec, (str, Path)):
        return str(spec) if key == "path" else default
    if isinstance(spec, dict):
        return spec.get(key, default)
    return getattr(spec, key, default)


def spec_label(spec: Any) -> str:
    """The name results are stored under: `name`, else the file stem of a .bin or the folder name."""
    path = Path(str(spec_field(spec, "path") or ""))
    return spec_field(spec, "name") or (path.stem if path.suffix else path.name)


def load_pairs(path: str | Path, pairs_file: str | Path | None = None, folds: list[int] | None = None) -> VerificationPairs:
    """An LFW-layout folder (pairs.txt) or a .bin file, optionally restricted to some 0-based folds."""
    path = Path(path)
    pairs = read_bin(path) if path.suffix.lower() == ".bin" else lfw_verification_pairs(path, pairs_file)
    if folds is not None:
        missing = sorted(set(folds) - set(np.unique(pairs.folds).tolist()))
        if missing:
            raise DataError(f"folds {missing} not in the file (it has folds 0..{pairs.num_folds - 1})", path=path)
        pairs = pairs.select(np.isin(pairs.folds, folds))
    return pairs


@dataclass
class ScorableSet:
    """An evaluation set that can be scored: how many pairs and folds, and who is in them.

    names: (name a, name b) of every scored pair for named layouts (LFW); None for a `.bin` or an
    IJB set, which name no people, so theirs cannot be compared with anyone's.
    """

    label: str
    path: str
    pairs: int
    folds: int
    names: list[tuple[str, str]] | None


def _pairs_path(path: Path, pairs_file: Any) -> Path:
    if pairs_file:
        return Path(pairs_file)
    if not path.is_dir():
        raise DataError("not an LFW-layout folder or an insightface .bin file", path=path)
    layout = LFWLayout(path)
    if not layout.pairs_file.is_file():
        raise DataError(f"no pairs.txt: {NEEDS_PAIRS}", path=path)
    return layout.pairs_file


def _check_ijb(spec: Any, path: Path) -> ScorableSet:
    """An IJB folder: every meta file checked (the reader names a bad line), its first face read."""
    from synface.data.ijb import read_ijb  # noqa: PLC0415

    ijb = read_ijb(path)
    ijb.load_face(0, 112)
    return ScorableSet(spec_label(spec), str(path), len(ijb.pair_labels), min(10, len(ijb.pair_labels)), None)


def _check(spec: Any) -> ScorableSet:
    from synface.data.ijb import is_ijb_folder  # noqa: PLC0415

    raw = spec_field(spec, "path")
    if not raw or not str(raw).strip():
        raise DataError("no path given")
    path = Path(str(raw)).expanduser()
    if not path.exists():
        raise DataError("path not found", path=path)
    if is_ijb_folder(path):
        return _check_ijb(spec, path)
    folds = spec_field(spec, "folds")
    names = None
    if path.suffix.lower() != ".bin":
        pairs_path = _pairs_path(path, spec_field(spec, "pairs"))
        names = [(p.name_a, p.name_b) for p in read_pairs(pairs_path) if folds is None or p.fold in folds]
    pairs = load_pairs(path, spec_field(spec, "pairs"), folds)
    if len(np.unique(pairs.folds)) < 2:
        raise DataError(f"{len(pairs)} pairs in {len(np.unique(pairs.folds))} fold; k-fold verification needs "
                        "at least 2 folds (each threshold is chosen on the others)", path=path)
    if pairs.issame.all() or not pairs.issame.any():
        raise DataError("needs both same-person and different-person pairs", path=path)
    pairs.load_image(0, 0)  # the first images decode: not a file of something else
    pairs.load_image(0, 1)
    return ScorableSet(spec_label(spec), str(path), len(pairs), len(np.unique(pairs.folds)), names)


def check_eval_set(spec: Any) -> ScorableSet:
    """One set's pairs loaded and checked; a DataError 'evaluation set NAME cannot be scored: ...'."""
    try:
        return _check(spec)
    except DataError as exc:
        raise DataError(f"evaluation set {spec_label(spec)!r} cannot be scored: {exc}") from None


def check_eval_sets(specs: Sequence[Any]) -> list[ScorableSet]:
    """Every set checked in order; the first that cannot be scored is a DataError naming it, and two
    sets of one name (their results would overwrite each other) are refused."""
    labels = [spec_label(spec) for spec in specs]
    twice = sorted({n for n in labels if labels.count(n) > 1})
    if twice:
        raise DataError(f"two evaluation sets are named {twice[0]!r}; give them different names")
    return [check_eval_set(spec) for spec in specs]
