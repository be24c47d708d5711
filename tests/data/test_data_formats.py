"""Real-data readers and writers on tiny synthetic files (no external data)."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.data.errors import DataError
from synface.data.imagefolder import ImageFolderIndex
from synface.data.lfw import (
    LFWLayout,
    lfw_verification_pairs,
    people_of_folds,
    read_pairs,
    read_people,
)
from synface.data.recordio import MAGIC, RecordReader, read_record_at, write_recordio
from synface.data.safe_pickle import safe_loads
from synface.data.subsets import real_subset, subset_name
from synface.data.verification import (
    Pair,
    VerificationPairs,
    contiguous_folds,
    write_pairs,
)
from synface.data.verification_bin import read_bin, write_bin


def encode(color: tuple[int, int, int], fmt: str = "JPEG", size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, fmt)
    return buf.getvalue()


def save_image(path: Path, color: tuple[int, int, int] = (10, 20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)


# -- errors -------------------------------------------------------------------------------


def test_data_error_message_and_pickling() -> None:
    err = DataError("expected 3 or 4 tab-separated fields, got 2", path="pairs.txt", line=17)
    assert str(err) == "pairs.txt line 17: expected 3 or 4 tab-separated fields, got 2"
    assert isinstance(err, ValueError) and err.line == 17 and err.path == "pairs.txt"
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == 17
    assert str(DataError("no path")) == "no path"


# -- RecordIO -----------------------------------------------------------------------------


def test_recordio_round_trip(tmp_path: Path) -> None:
    labels = [2, 0, 1, 0, 2, 2, 1]
    images = [encode((30 * i, 5 * i, 0), "PNG" if i % 2 else "JPEG") for i in range(len(labels))]
    # A payload holding the magic word at a 4-byte boundary must survive multi-part framing.
    tricky = b"abcd" + struct.pack("<I", MAGIC) + b"xyz" + struct.pack("<I", MAGIC) * 2
    items = list(zip(images, labels)) + [(tricky, 1)]
    assert write_recordio(tmp_path, items) == (8, 3)
    assert sorted(os.listdir(tmp_path)) == ["train.idx", "train.rec"]

    order = sorted(range(len(items)), key=lambda j: items[j][1])  # stable sort by label
    with RecordReader(tmp_path / "train.rec", tmp_path / "train.idx") as reader:
        assert (reader.num_images, reader.num_identities, len(reader)) == (8, 3, 8)
        assert reader.identity_ranges == [(1, 3), (3, 6), (6, 9)]
        assert reader.image_keys == list(range(1, 9))
        for i, j in enumerate(order):
            data, label = reader.read(i, decode=False)
            assert data == items[j][0] and label == items[j][1]
        img, label = reader.read(0)
        assert img.mode == "RGB" and img.size == (8, 8) and label == 0
        header, payload = reader.read_record(0)
        assert header.flag == 2 and header.labels == (9.0, 12.0) and payload == b""
        clone = pickle.loads(pickle.dumps(reader))  # DataLoader workers pickle the reader
        assert clone.read(3, decode=False) == reader.read(3, decode=False)
        clone.close()


def test_recordio_bad_magic_names_offset(tmp_path: Path) -> None:
    write_recordio(tmp_path, [(encode((1, 2, 3)), 0), (encode((4, 5, 6)), 0)])
    rec = tmp_path / "train.rec"
    offsets = dict(line.split("\t") for line in (tmp_path / "train.idx").read_text().splitlines())
    off = int(offsets["2"])
    data = bytearray(rec.read_bytes())
    data[off : off + 4] = b"\0\0\0\0"
    rec.write_bytes(bytes(data))
    reader = RecordReader(rec)
    with pytest.raises(DataError, match=f"bad RecordIO magic .* at offset {off}"):
        reader.read(1)
    with open(rec, "rb") as f, pytest.raises(DataError, match="truncated"):
        read_record_at(f, len(data) - 4, str(rec))


def test_recordio_rejects_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="without gaps"):
        write_recordio(tmp_path, [(encode((1, 2, 3)), 0), (encode((1, 2, 3)), 2)])
    with pytest.raises(DataError, match="label must be an int"):
        write_recordio(tmp_path, [(encode((1, 2, 3)), -1)])
    assert not list(tmp_path.glob("train.*"))  # nothing half-written left behind
    write_recordio(tmp_path, [(encode((1, 2, 3)), 0)])
    (tmp_path / "train.idx").write_text("0\t0\n1\tforty\n")
    with pytest.raises(DataError, match=r"train.idx line 2: expected 'key<TAB>offset'"):
        RecordReader(tmp_path / "train.rec")


# -- .bin and safe pickle -----------------------------------------------------------------


def test_bin_round_trip_from_bytes_and_paths(tmp_path: Path) -> None:
    images = [encode((i * 20, 0, 0), "PNG" if i % 3 == 0 else "JPEG") for i in range(24)]
    issame = [i % 2 == 0 for i in range(12)]
    path = tmp_path / "tiny.bin"
    write_bin(path, images, issame)
    pairs = read_bin(path)
    assert list(pairs.images_a) == images[0::2] and list(pairs.images_b) == images[1::2]
    assert pairs.issame.tolist() == issame and pairs.num_folds == 10
    assert pairs.folds.tolist() == [0, 0, 1, 1] + list(range(2, 10))  # sklearn KFold sizes
    assert pairs.load_image(3, "b").getpixel((0, 0))[0] == pytest.approx(140, abs=3)
    # insightface's own loader reads our files (Python 2 opcodes, encoding='bytes').
    bins, labels = pickle.loads(path.read_bytes(), encoding="bytes")
    assert bins == images and labels == issame

    files = []
    for i, data in enumerate(images[:4]):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(data)
    from_paths = VerificationPairs(files[0::2], files[1::2], np.array([True, False]), np.array([0, 1]))
    write_bin(tmp_path / "p.bin", from_paths)
    back = read_bin(tmp_path / "p.bin")
    assert list(back.images_a) == images[0:4:2] and back.folds.tolist() == [0, 1]


def test_bin_accepts_python3_protocol2_pickle(tmp_path: Path) -> None:
    path = tmp_path / "py3.bin"
    path.write_bytes(pickle.dumps(([b"\xff\xd8a", b"", b"c", b"d"], [True, False]), protocol=2))
    with pytest.raises(DataError, match=r"bins\[1\] must be non-empty"):
        read_bin(path)
    path.write_bytes(pickle.dumps(([b"\xff\xd8a", b"b", b"c", b"d"], [True, False]), protocol=2))
    assert read_bin(path).images_a == [b"\xff\xd8a", b"c"]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(([_Payload(marker)], [True]), protocol=protocol)
    path = tmp_path / "evil.bin"
    path.write_bytes(evil)
    with pytest.raises(DataError, match=r"evil.bin: unsafe pickle: refused to load global (posix|nt).system"):
        read_bin(path)
    with pytest.raises(DataError, match="unsafe pickle"):
        safe_loads(pickle.dumps(np.zeros(2, dtype=bool)), "arr.pkl")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([b"a", b"b", b"c"], "expected a pickled \\(bins, issame_list\\) pair, got list of length 3"),
        ([b"a", b"b"], "bins and issame_list must be lists, got bytes and bytes"),
        (([b"a", b"b", b"c"], [True]), "1 labels need 2 images, bins holds 3"),
        (([b"a", "b"], [True]), r"bins\[1\] must be non-empty encoded image bytes, got str"),
        (([b"a", b"b"], [2]), r"issame_list\[0\] must be a bool, got int"),
        (({"a": 1}, [True]), "bins and issame_list must be lists, got dict and list of length 1"),
        (([], []), "issame_list is empty"),
    ],
)
def test_bin_wrong_structure_names_file(tmp_path: Path, obj: object, message: str) -> None:
    path = tmp_path / "broken.bin"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(DataError, match=f"broken.bin: {message}"):
        read_bin(path)


def test_bin_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x80\x02]q\x00(U\x05ab")  # truncated
    with pytest.raises(DataError, match="junk.bin: not a readable pickle"):
        read_bin(path)
    with pytest.raises(DataError, match="cannot read"):
        read_bin(tmp_path / "absent.bin")


def test_contiguous_folds_match_kfold_sizes() -> None:
    assert np.bincount(contiguous_folds(6000)).tolist() == [600] * 10
    assert np.bincount(contiguous_folds(13, 4)).tolist() == [4, 3, 3, 3]
    with pytest.raises(DataError):
        contiguous_folds(3, 10)


# -- LFW text formats ---------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD_PAIRS = ["2\t1", "Ann\t1\t2", "Ann\t1\tBob\t1", "Cid\t1\t2", "Cid\t2\tDee\t1"]


def test_read_pairs_good_and_view1_header(tmp_path: Path) -> None:
    pairs = read_pairs(write_lines(tmp_path / "pairs.txt", GOOD_PAIRS))
    assert [p.fold for p in pairs] == [0, 0, 1, 1] and [p.same for p in pairs] == [True, False] * 2
    assert pairs[3] == Pair(1, "Cid", 2, "Dee", 1, False) and pairs[3].line == 5
    view1 = read_pairs(write_lines(tmp_path / "dev.txt", ["1", "Ann\t1\t2", "Ann\t1\tBob\t1"]))
    assert len(view1) == 2 and {p.fold for p in view1} == {0}


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["2 1 7"] + GOOD_PAIRS[1:], 1, "header must be"),
        (["two\t1"] + GOOD_PAIRS[1:], 1, "header value must be an integer, got 'two'"),
        (GOOD_PAIRS[:3] + ["Cid\t1"] + GOOD_PAIRS[4:], 4, "expected 3 or 4 tab-separated fields, got 2"),
        (GOOD_PAIRS[:1] + ["Ann\t1\tBob\t1"] + GOOD_PAIRS[2:], 2, "fold 1 expects a same-person"),
        (GOOD_PAIRS[:2] + ["Ann\tone\tBob\t1"] + GOOD_PAIRS[3:], 3, "image number must be an integer"),
        (GOOD_PAIRS[:2] + ["Ann\t0\tBob\t1"] + GOOD_PAIRS[3:], 3, "image number must be >= 1"),
        (GOOD_PAIRS[:4], 4, "file ends after 3"),
        (GOOD_PAIRS + ["Eve\t1\t2"], 6, "extra line"),
    ],
)
def test_read_pairs_errors_name_file_and_line(
    tmp_path: Path, lines: list[str], line: int, message: str
) -> None:
    with pytest.raises(DataError, match=f"pairs.txt line {line}: .*{message}") as info:
        read_pairs(write_lines(tmp_path / "pairs.txt", lines))
    assert info.value.line == line and info.value.path.endswith("pairs.txt")


GOOD_PEOPLE = ["2", "2", "Ann\t2", "Bob\t1", "1", "Cid\t3"]


def test_read_people_and_people_of_folds(tmp_path: Path) -> None:
    people = read_people(write_lines(tmp_path / "people.txt", GOOD_PEOPLE))
    assert people == [[("Ann", 2), ("Bob", 1)], [("Cid", 3)]]
    assert people_of_folds(people, [1, 0]) == ["Cid", "Ann", "Bob"]
    with pytest.raises(DataError, match="fold 2 out of range"):
        people_of_folds(people, [2])


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["2\t1"] + GOOD_PEOPLE[1:], 1, "header must be the number of folds"),
        (GOOD_PEOPLE[:2] + ["Ann"] + GOOD_PEOPLE[3:], 3, "expected 2 tab-separated fields"),
        (GOOD_PEOPLE[:3] + ["Bob\tx"] + GOOD_PEOPLE[4:], 4, "image count must be an integer"),
        (GOOD_PEOPLE[:4] + ["Cid\t3"], 5, "person count"),
        (GOOD_PEOPLE[:5], 5, "file ends early"),
        (GOOD_PEOPLE + ["1"], 7, "extra line"),
    ],
)
def test_read_people_errors_name_file_and_line(
    tmp_path: Path, lines: list[str], line: int, message: str
) -> None:
    with pytest.raises(DataError, match=f"people.txt line {line}: .*{message}"):
        read_people(write_lines(tmp_path / "people.txt", lines))


@pytest.mark.parametrize("nested", [True, False])
def test_lfw_layout_and_missing_image(tmp_path: Path, nested: bool) -> None:
    images = tmp_path / "images" if nested else tmp_path
    for name, num in [("Ann", 1), ("Ann", 2), ("Bob", 1), ("Cid", 1), ("Cid", 2), ("Dee", 1)]:
        save_image(images / name / f"{name}_{num:04d}.jpg")
    write_lines(tmp_path / "pairs.txt", GOOD_PAIRS)
    layout = LFWLayout(tmp_path)
    assert layout.image_path("Ann", 2) == images / "Ann" / "Ann_0002.jpg"
    pairs = lfw_verification_pairs(tmp_path)
    assert len(pairs) == 4 and pairs.num_folds == 2 and pairs.issame.tolist() == [True, False] * 2
    assert pairs.load_image(1, "b").size == (8, 8)
    (images / "Dee" / "Dee_0001.jpg").unlink()
    with pytest.raises(DataError, match=r"pairs.txt line 5: image not found: .*Dee_0001.jpg"):
        lfw_verification_pairs(tmp_path)


def test_write_pairs_round_trip(tmp_path: Path) -> None:
    pairs = read_pairs(write_lines(tmp_path / "in.txt", GOOD_PAIRS))
    write_pairs(tmp_path / "out.txt", pairs, folds=2, n=1)
    assert read_pairs(tmp_path / "out.txt") == pairs
    assert (tmp_path / "out.txt").read_text().splitlines() == GOOD_PAIRS
    with pytest.raises(DataError, match="should be a same-person pair"):
        write_pairs(tmp_path / "bad.txt", pairs[1:] + pairs[:1], folds=2, n=1)
    assert not (tmp_path / "bad.txt").exists()


# -- image folders and subsets ------------------------------------------------------------


def make_folder(root: Path) -> None:
    for ident, count in [("b", 3), ("a", 2), ("c", 5), ("d", 1)]:
        for i in range(count):
            save_image(root / ident / f"{i:03d}.{'png' if i % 2 else 'jpg'}", (i, i, i))
    (root / "empty").mkdir()
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "README").write_text("stray file")
    (root / "c" / "005.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")


def test_imagefolder_counts_and_verify(tmp_path: Path) -> None:
    make_folder(tmp_path)
    index = ImageFolderIndex(tmp_path)
    assert index.identities == ["a", "b", "c", "d"]
    assert index.skipped_empty == 1 and index.ignored_files == 2 and len(index) == 12
    assert [p.name for p in index.images["c"]][:2] == ["000.jpg", "001.png"]
    assert index.samples()[2] == (tmp_path / "b" / "000.jpg", 1)
    assert index.verify_images() == 1 and index.corrupt == 1
    assert index.corrupt_files == [tmp_path / "c" / "005.jpg"] and len(index.images["c"]) == 5


def test_imagefolder_missing_or_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="image folder not found"):
        ImageFolderIndex(tmp_path / "absent")
    (tmp_path / "only_empty").mkdir()
    with pytest.raises(DataError, match=r"no identity folders with images \(1 empty\)"):
        ImageFolderIndex(tmp_path)


def test_real_subset_deterministic_and_error(tmp_path: Path) -> None:
    make_folder(tmp_path)
    index = ImageFolderIndex(tmp_path)
    subset = real_subset(index, r_id=2, k=3)
    assert subset.name == "Real_2_3" and subset.identities == ("b", "c") and len(subset) == 6
    assert [p.name for p in subset.images[1]] == ["000.jpg", "001.png", "002.jpg"]
    shuffled = {k: list(reversed(v)) for k, v in reversed(list(index.images.items()))}
    assert real_subset(shuffled, 2, 3) == subset
    assert subset.samples()[3] == (tmp_path / "c" / "000.jpg", 1)
    with pytest.raises(DataError, match=r"Real_3_3 needs 3 identities with >= 3 images; only 2 of 4"):
        real_subset(index, 3, 3)


def test_subset_name() -> None:
    assert subset_name(2000, 10) == "Real_2K_10"
    assert subset_name(10000, 50, prefix="Syn") == "Syn_10K_50"
    assert subset_name(1500, 5) == "Real_1500_5"
    assert subset_name(500, 20) == "Real_500_20"


def test_every_loader_reads_through_one_reader_that_rotates_and_names_broken_files(tmp_path: Path) -> None:
    from PIL import Image

    from synface.analysis.features import load_image_112
    from synface.data.align import load_rgb
    from synface.data.imageio import read_rgb
    from synface.train.data import load_image_uint8

    # a 40x20 photo whose EXIF says "rotate 90": every loader must see it upright (20 wide, 40 tall)
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    rotated = tmp_path / "phone.jpg"
    Image.fromarray(wide).save(rotated, exif=exif, quality=95)
    assert read_rgb(rotated).size == (20, 40)
    upright = load_rgb(rotated)
    assert upright.shape == (40, 20, 3)
    assert upright[:15].mean() > 200 and upright[25:].mean() < 50  # white half is now on top
    assert load_image_112(rotated)[:40].mean() > load_image_112(rotated)[72:].mean() + 100
    assert load_image_uint8(rotated, 16).shape == (3, 16, 16)

    broken = tmp_path / "truncated.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    for load in (read_rgb, load_rgb, load_image_112, lambda p: load_image_uint8(p, 16)):
        with pytest.raises(DataError, match="truncated.png"):
            load(broken)
