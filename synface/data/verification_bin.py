"""insightface verification `.bin` files (lfw.bin, cfp_fp.bin, agedb_30.bin, ...).

Format: a protocol-2 pickle of `(bins, issame_list)`; `bins` holds 2N encoded JPEG/PNG byte
strings with pair members consecutive, `issame_list` N bools. The files come from the web, so
they are read with `safe_loads` (no globals) and their structure is checked before use.
Writes emit the same opcodes Python 2 did (bytes as BINSTRING), so insightface's own
`pickle.load(f, encoding='bytes')` reads our files and our reader needs no globals.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from synface.base.files import atomic_path, sweep_temp_files
from synface.data.errors import DataError
from synface.data.safe_pickle import safe_loads
from synface.data.verification import VerificationPairs, contiguous_folds

#: pairs a `.bin` may hold (published sets hold 5,000-7,000; docs/limits.md)
MAX_PAIRS = 100_000


def read_bin(path: str | Path, num_folds: int = 10) -> VerificationPairs:
    """Load a `.bin`; folds are contiguous blocks in pair order, as insightface scores them."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read verification file: {exc.strerror or exc}", path=path) from None
    bins, issame = _check_structure(safe_loads(data, str(path)), path, len(data))
    n = len(issame)
    return VerificationPairs(
        images_a=bins[0::2],
        images_b=bins[1::2],
        issame=np.array(issame, dtype=bool),
        folds=contiguous_folds(n, min(num_folds, n)),
        source=str(path),
    )


def _check_structure(obj: object, path: Path, file_bytes: int | None = None) -> tuple[list[bytes], list[bool]]:
    """The (bins, issame_list) of an unpickled `.bin`, checked: types, counts, at most MAX_PAIRS
    pairs, and (with `file_bytes`) images that add up to no more bytes than the file holds."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"expected a pickled (bins, issame_list) pair, got {_describe(obj)}", path=path)
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise DataError(
            f"bins and issame_list must be lists, got {_describe(bins)} and {_describe(issame)}",
            path=path,
        )
    if len(issame) > MAX_PAIRS or len(bins) > 2 * MAX_PAIRS:
        raise DataError(f"declares {len(issame):,} pairs and {len(bins):,} images; a verification file holds at most "
                        f"{MAX_PAIRS:,} pairs", path=path)
    for i, b in enumerate(bins):
        if not isinstance(b, (bytes, bytearray)) or not b:
            raise DataError(f"bins[{i}] must be non-empty encoded image bytes, got {_describe(b)}", path=path)
    for i, s in enumerate(issame):
        if not (isinstance(s, bool) or (isinstance(s, int) and s in (0, 1))):
            raise DataError(f"issame_list[{i}] must be a bool, got {_describe(s)}", path=path)
    if not issame:
        raise DataError("issame_list is empty", path=path)
    if len(bins) != 2 * len(issame):
        raise DataError(
            f"{len(issame)} labels need {2 * len(issame)} images, bins holds {len(bins)}", path=path
        )
    declared = sum(len(b) for b in bins)
    if file_bytes is not None and declared > file_bytes:
        # a pickle can reference one stored image many times (its memo): a small file that decodes
        # to hundreds of thousands of images. Real files store every image once.
        raise DataError(f"its {len(bins):,} images add up to {declared:,} bytes in a {file_bytes:,}-byte file: images "
                        "repeated by reference, not a verification set", path=path)
    return [bytes(b) for b in bins], [bool(s) for s in issame]


def _describe(obj: object) -> str:
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__} of length {len(obj)}"
    return type(obj).__name__


def write_bin(
    path: str | Path,
    pairs: VerificationPairs | Sequence[bytes],
    issame: Sequence[bool] | None = None,
) -> None:
    """Write a `.bin` from a VerificationPairs (path entries are read as file bytes, as
    insightface's lfw2pack does) or from 2N encoded images plus N labels; atomic."""
    bins, labels = _bins_and_labels(pairs, issame)
    _check_structure((bins, labels), Path(path))
    sweep_temp_files(Path(path).parent)  # of a write a kill interrupted
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _dump_py2_pickle(f, bins, labels)


def _bins_and_labels(
    pairs: VerificationPairs | Sequence[bytes], issame: Sequence[bool] | None
) -> tuple[list[bytes], list[bool]]:
    if isinstance(pairs, VerificationPairs):
        if issame is not None:
            raise ValueError("issame comes from the VerificationPairs; do not pass it too")
        bins = [pairs.encoded(i, side) for i in range(len(pairs)) for side in (0, 1)]
        return bins, [bool(s) for s in pairs.issame]
    if issame is None:
        raise ValueError("pass issame with a list of encoded images")
    return list(pairs), [bool(s) for s in issame]


# Protocol-2 opcodes, as Python 2's pickle wrote insightface's files.
_PROTO2, _EMPTY_LIST, _MARK, _APPENDS = b"\x80\x02", b"]", b"(", b"e"
_SHORT_BINSTRING, _BINSTRING, _TRUE, _FALSE = b"U", b"T", b"\x88", b"\x89"
_TUPLE2, _STOP = b"\x86", b"."


def _dump_py2_pickle(f: BinaryIO, bins: Sequence[bytes], labels: Sequence[bool]) -> None:
    f.write(_PROTO2 + _EMPTY_LIST + _MARK)
    for b in bins:
        if len(b) < 256:
            f.write(_SHORT_BINSTRING + bytes([len(b)]))
        else:
            f.write(_BINSTRING + struct.pack("<i", len(b)))
        f.write(b)
    f.write(_APPENDS + _EMPTY_LIST + _MARK)
    f.write(b"".join(_TRUE if s else _FALSE for s in labels))
    f.write(_APPENDS + _TUPLE2 + _STOP)
