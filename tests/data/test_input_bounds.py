"""Counts a file or an option declares are bounded before work starts, the bound named: a `.bin`'s
pairs (and images repeated by reference), a `.rec` header's records, benchmark counts."""

from __future__ import annotations

import io
import pickle
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from synface.data.errors import DataError
from synface.data.recordio import RecordReader, frame_record, pack_record
from synface.data.verification_bin import MAX_PAIRS, read_bin
from tests.support import cli_error


def _tiny_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_a_small_bin_declaring_200000_images_by_reference_is_refused(tmp_path) -> None:
    """One stored JPEG referenced 400,000 times (pickle's memo): a file of a few hundred KB that
    would make every evaluation decode 400,000 images."""
    image = _tiny_jpeg()
    path = tmp_path / "big.bin"
    path.write_bytes(pickle.dumps(([image] * 400_000, [True] * 200_000), protocol=2))
    assert path.stat().st_size < 2_000_000
    with pytest.raises(DataError, match=r"big.bin: declares 200,000 pairs and 400,000 images; a verification file "
                                        r"holds at most 100,000 pairs"):
        read_bin(path)
    path.write_bytes(pickle.dumps(([image] * 2000, [True] * 1000), protocol=2))  # under the pair bound
    with pytest.raises(DataError, match=r"images add up to .* bytes in a .*-byte file: images repeated by reference"):
        read_bin(path)
    assert MAX_PAIRS == 100_000


def test_a_rec_header_declaring_half_a_billion_records_is_refused_without_building_them(tmp_path) -> None:
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    header = frame_record(pack_record([5e8, 5e8], b"", 0))
    rec.write_bytes(header)
    idx.write_text("0\t0\n")
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"train.rec: record 0 declares 499,999,999 images and 0 identities, but "
                                            r"train.idx lists 1 records"):
            RecordReader(rec, idx)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak


@pytest.mark.parametrize("argv, needle", [
    (["bench", "leakage", "--model", "m", "--identities", "1000000000"], "--identities: must be at most 100,000"),
    (["bench", "realism", "--pairs", "99999999"], "--pairs: must be at most 100,000"),
    (["bench", "render", "--batch", "1000000"], "--batch: must be at most 4,096"),
    (["bench", "landmarks", "--photos", "999999999"], "--photos must be in 0..100,000"),
    (["align", "src", "--out", "o", "--workers", "100000"], "--workers: must be at most 64"),
    (["eval", "--checkpoint", "c.pt", "--lfw", "x", "--batch", "10000000"], "--batch: must be at most 4,096"),
    (["generate", "--ids", "2", "--samples", "1", "--batch", "99999999"], "--batch: must be at most 4,096"),
])
def test_absurd_counts_are_refused_naming_the_bound(capsys, argv, needle) -> None:
    cli_error(capsys, argv, needle)
