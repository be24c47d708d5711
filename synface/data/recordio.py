"""insightface training RecordIO (train.rec + train.idx), read and written without mxnet.

Framing (dmlc recordio): each part is `magic:uint32, lrec:uint32, data, zero pad to 4 bytes`
with lrec = cflag << 29 | length. cflag 0 is a whole record; 1/2/3 start, continue and end a
record that the writer split where its data held the magic word at a 4-byte boundary; the
reader joins the parts and puts the magic word back between them.
Payload: header '<IfQQ' (flag, label, id, id2), then `flag` float32 labels if flag > 0, then
the encoded image. Record 0 (flag 2) labels [N+1, N+1+num_ids]: images are records 1..N, and
record N+1+j holds identity j's image-key range [start, end) in its two labels.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, TextIO

import numpy as np
from PIL import Image

from synface.base.files import atomic_path, naming, sweep_temp_files
from synface.data.errors import DataError
from synface.data.imageio import open_image

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_FRAME = struct.Struct("<II")
_HEADER = struct.Struct("<IfQQ")
_LEN_MASK = (1 << 29) - 1
_MAX_FLOAT_INT = 1 << 24  # float32 labels hold integers exactly only up to here


@dataclass(frozen=True)
class RecordHeader:
    """Decoded IRHeader: `labels` holds the float32 label array (or the single label)."""

    flag: int
    labels: tuple[float, ...]
    id: int
    id2: int


def pack_record(labels: float | Iterable[float], payload: bytes, rec_id: int = 0, id2: int = 0) -> bytes:
    """Payload of one record: a scalar label goes in the header, an array after it."""
    if isinstance(labels, (int, float, np.integer, np.floating)):
        return _HEADER.pack(0, float(labels), rec_id, id2) + payload
    arr = np.asarray(list(labels), dtype="<f4")
    return _HEADER.pack(len(arr), 0.0, rec_id, id2) + arr.tobytes() + payload


def unpack_record(data: bytes, where: str = "") -> tuple[RecordHeader, bytes]:
    """Split a record payload into its header and the encoded image bytes."""
    if len(data) < _HEADER.size:
        raise DataError(f"record of {len(data)} bytes is shorter than its 24-byte header", path=where or None)
    flag, label, rec_id, id2 = _HEADER.unpack_from(data)
    end = _HEADER.size + 4 * flag
    if flag > 0:
        if len(data) < end:
            raise DataError(f"record header announces {flag} labels past the record end", path=where or None)
        labels = tuple(float(x) for x in np.frombuffer(data, dtype="<f4", count=flag, offset=_HEADER.size))
    else:
        labels = (float(label),)
    return RecordHeader(flag, labels, rec_id, id2), data[end:]


def _read_exact(f: BinaryIO, n: int, path: str, offset: int) -> bytes:
    buf = f.read(n)
    if len(buf) != n:
        raise DataError(f"truncated record at offset {offset}", path=path)
    return buf


def _file_size(f: BinaryIO) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):  # an in-memory file
        here = f.tell()
        size = f.seek(0, os.SEEK_END)
        f.seek(here)
        return size


def read_record_at(f: BinaryIO, offset: int, path: str = "") -> bytes:
    """Read one (possibly multi-part) record starting at byte `offset`.

    A frame whose length runs past the end of the file (a damaged header announcing up to half a
    gigabyte) is refused, naming the file and offset, before any of it is read or allocated.
    """
    size = _file_size(f)
    if not 0 <= offset < size:
        raise DataError(f"record offset {offset} lies outside the file ({size} bytes)", path=path)
    f.seek(offset)
    parts: list[bytes] = []
    pos = offset
    while True:
        magic, lrec = _FRAME.unpack(_read_exact(f, _FRAME.size, path, pos))
        if magic != MAGIC:
            raise DataError(f"bad RecordIO magic 0x{magic:08x} at offset {pos}", path=path)
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        padded = (length + 3) & ~3
        if pos + _FRAME.size + padded > size:
            raise DataError(f"record at offset {pos} announces {length:,} bytes, past the end of the file "
                            f"({size:,} bytes): a damaged header or a truncated file", path=path)
        parts.append(_read_exact(f, padded, path, pos)[:length])
        pos += _FRAME.size + padded
        if cflag in (0, 3):
            return _MAGIC_BYTES.join(parts)
        if cflag not in (1, 2) or (cflag == 1) != (len(parts) == 1):
            raise DataError(f"bad continuation flag {cflag} at offset {pos}", path=path)


def frame_record(data: bytes) -> bytes:
    """Frame one record, splitting it where the magic word sits at a 4-byte boundary."""
    if len(data) > _LEN_MASK:
        raise DataError(f"record of {len(data)} bytes exceeds RecordIO's 2^29 limit")
    pieces, start, i = [], 0, data.find(_MAGIC_BYTES)
    while i >= 0:
        if i % 4 == 0:  # only aligned occurrences would be mistaken for a frame
            pieces.append(data[start:i])
            start = i + 4
        i = data.find(_MAGIC_BYTES, i + 1)
    pieces.append(data[start:])
    out = []
    for k, piece in enumerate(pieces):
        last = k == len(pieces) - 1
        cflag = 0 if len(pieces) == 1 else 1 if k == 0 else 3 if last else 2
        out.append(_FRAME.pack(MAGIC, cflag << 29 | len(piece)) + piece)
        out.append(b"\0" * (-len(piece) % 4))
    return b"".join(out)


def read_index(idx_path: str | Path) -> dict[int, int]:
    """Parse train.idx (`key\\toffset` per line) into {key: offset}."""
    idx_path = Path(idx_path)
    try:
        text = idx_path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read index: {exc}", path=idx_path) from None
    index: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            key, offset = (int(x) for x in fields)
        except ValueError:
            raise DataError(
                f"expected 'key<TAB>offset' integers, got {line!r}", path=idx_path, line=lineno
            ) from None
        if key in index or offset < 0:
            raise DataError(f"duplicate key {key} or negative offset", path=idx_path, line=lineno)
        index[key] = offset
    return index


class RecordReader:
    """Random access to an insightface train.rec by image index (0..num_images-1).

    Picklable (the file handle is reopened per process), so DataLoader workers can share it.
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        if not self.rec_path.is_file():
            raise DataError("RecordIO file not found", path=self.rec_path)
        self._index = read_index(self.idx_path)
        self._file: BinaryIO | None = None
        self._pid = -1
        self.image_keys, self.identity_ranges = self._layout()

    # -- layout ---------------------------------------------------------------------------
    def _layout(self) -> tuple[list[int], list[tuple[int, int]] | None]:
        if 0 not in self._index:
            return sorted(self._index), None
        header, _ = self.read_record(0)
        if header.flag <= 0:  # plain im2rec file: every record is an image
            return sorted(self._index), None
        if len(header.labels) < 2:
            raise DataError("record 0 must label [first identity record, end]", path=self.rec_path)
        first_id, end_id = (self._as_int(x, 0) for x in header.labels[:2])
        listed = len(self._index)
        if not 1 <= first_id <= end_id <= listed:
            # each image and identity record needs a line of train.idx: checked before any list is built
            raise DataError(f"record 0 declares {first_id - 1:,} images and {max(0, end_id - first_id):,} identities, "
                            f"but {self.idx_path.name} lists {listed:,} records", path=self.rec_path)
        images = list(range(1, first_id))
        ranges = [self._identity_range(k) for k in range(first_id, end_id)]
        missing = [k for k in images if k not in self._index]
        if missing:
            raise DataError(
                f"{len(missing)} image keys missing from the index, e.g. {missing[0]}", path=self.idx_path
            )
        return images, ranges

    def _identity_range(self, key: int) -> tuple[int, int]:
        header, _ = self.read_record(key)
        if len(header.labels) < 2:
            raise DataError(f"identity record {key} lacks its [start, end) labels", path=self.rec_path)
        start, end = (self._as_int(x, key) for x in header.labels[:2])
        return start, end

    def _as_int(self, value: float, key: int) -> int:
        if not np.isfinite(value) or value < 0 or value != round(value):
            raise DataError(f"record {key} has non-integer label {value}", path=self.rec_path)
        return int(round(value))

    # -- access ---------------------------------------------------------------------------
    def _handle(self) -> BinaryIO:
        if self._file is None or self._pid != os.getpid():
            self._file = open(self.rec_path, "rb")
            self._pid = os.getpid()
        return self._file

    def read_record(self, key: int) -> tuple[RecordHeader, bytes]:
        """Header and payload of the record stored under `key` in train.idx."""
        if key not in self._index:
            raise DataError(f"key {key} not in index", path=self.idx_path)
        where = str(self.rec_path)
        return unpack_record(read_record_at(self._handle(), self._index[key], where), where)

    def read(self, i: int, decode: bool = True) -> tuple[Image.Image | bytes, int]:
        """Image `i` (RGB PIL image, or the encoded bytes) and its integer class label."""
        if not 0 <= i < len(self.image_keys):
            raise IndexError(f"image index {i} out of range 0..{len(self.image_keys) - 1}")
        key = self.image_keys[i]
        header, payload = self.read_record(key)
        label = self._as_int(header.labels[0], key)
        if not decode:
            return payload, label
        try:
            with open_image(payload, f"image of record {key}", self.rec_path) as img:
                return img.convert("RGB"), label
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"record {key} holds no decodable image: {exc}", path=self.rec_path) from None

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.read(i)  # type: ignore[return-value]  # decode=True: an image

    def __len__(self) -> int:
        return len(self.image_keys)

    @property
    def num_images(self) -> int:
        return len(self.image_keys)

    @property
    def num_identities(self) -> int:
        """From the identity records when present, otherwise by scanning every label once."""
        if self.identity_ranges is not None:
            return len(self.identity_ranges)
        return len({self.read(i, decode=False)[1] for i in range(len(self))})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "RecordReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, -1
        return state


def write_recordio(
    out_dir: str | Path, items: Iterable[tuple[bytes, int]], name: str = "train"
) -> tuple[int, int]:
    """Write `<name>.rec` + `<name>.idx` in insightface's layout; returns (images, identities).

    Labels must cover 0..C-1. Images are stored sorted by label (stable), which identity
    ranges require; items are spooled to a temp file first so memory stays flat.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(out_dir)  # of an export a kill interrupted
    with naming(out_dir), tempfile.TemporaryFile(dir=out_dir) as spool:  # a full disk names the folder
        entries = _spool(items, spool)
        ranges = _identity_ranges([label for label, _, _ in entries])
        n, num_ids = len(entries), len(ranges)
        if n + 1 + num_ids > _MAX_FLOAT_INT:
            raise DataError(f"{n} images + {num_ids} identities exceed float32's exact integers")
        # Each file is replaced whole; .rec goes first, .idx last.
        with atomic_path(out_dir / f"{name}.idx") as idx_tmp, atomic_path(out_dir / f"{name}.rec") as rec_tmp:
            with open(rec_tmp, "wb") as rec, open(idx_tmp, "w", encoding="ascii") as idx:
                put = _record_writer(rec, idx)
                put(0, pack_record([n + 1, n + 1 + num_ids], b"", 0))
                for key, (label, start, size) in enumerate(entries, 1):
                    spool.seek(start)
                    put(key, pack_record(label, spool.read(size), key))
                for j, (lo, hi) in enumerate(ranges):
                    put(n + 1 + j, pack_record([lo, hi], b"", n + 1 + j))
    return n, num_ids


def _spool(items: Iterable[tuple[bytes, int]], spool: BinaryIO) -> list[tuple[int, int, int]]:
    entries = []
    for k, (data, label) in enumerate(items):
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise DataError(f"item {k}: image must be non-empty encoded bytes, got {type(data).__name__}")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise DataError(f"item {k}: label must be an int >= 0, got {label!r}")
        entries.append((int(label), spool.tell(), len(data)))
        spool.write(data)
    if not entries:
        raise DataError("no images to write")
    entries.sort(key=lambda e: e[0])  # stable: keeps the given order within an identity
    return entries


def _identity_ranges(sorted_labels: list[int]) -> list[tuple[int, int]]:
    """[start, end) image keys per label; keys start at 1 because record 0 is the header."""
    counts = np.bincount(sorted_labels)
    if (counts == 0).any():
        gap = int(np.flatnonzero(counts == 0)[0])
        raise DataError(f"labels must cover 0..{len(counts) - 1} without gaps; {gap} has no image")
    ends = np.cumsum(counts) + 1
    return [(int(e - c), int(e)) for c, e in zip(counts, ends)]


def _record_writer(rec: BinaryIO, idx: TextIO) -> Callable[[int, bytes], None]:
    def put(key: int, payload: bytes) -> None:
        idx.write(f"{key}\t{rec.tell()}\n")
        rec.write(frame_record(payload))

    return put
