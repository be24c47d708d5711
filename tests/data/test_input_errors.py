"""Bad data and absurd sizes are refused with one named line before anything is allocated or
written; non-images are never packed into a .rec or .bin (issue 16 items 3-4)."""

from __future__ import annotations

import errno
import json
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.data.errors import DataError
from synface.data.lfw import LFWLayout, people_without_images
from synface.data.recordio import MAGIC, RecordReader
from tests.support import HAVE_DLIB, cli_error


def _jpeg(path: Path, seed: int = 0, side: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# -- generate: sizes and options ----------------------------------------------------------


@pytest.mark.parametrize("argv, needles", [
    (["--batch", "0"], ["--batch", "got 0"]),
    (["--batch", "-5"], ["--batch", "got -5"]),
    (["--im", "--phi-grid", ""], ["--phi-grid", "at least one value"]),
    (["--im", "--phi-grid", ","], ["--phi-grid", "','"]),
    (["--im", "--phi-grid", "0.5,2"], ["--phi-grid", "[0, 1]", "2"]),
    (["--im", "--phi-grid", "nan"], ["--phi-grid", "nan"]),
])
def test_generate_refuses_bad_options_before_work(capsys, tmp_path, argv, needles) -> None:
    out = tmp_path / "set"
    cli_error(capsys, ["generate", "--ids", 2, "--samples", 2, "--out", out, *argv], *needles)
    assert not out.exists()


@pytest.mark.parametrize("argv, needles", [
    (["--folds", "1"], ["--folds", "at least 2", "got 1"]),
    (["--folds", "2", "--pairs-per-fold", "1"], ["--pairs-per-fold", "got 1"]),
    (["--folds", "100000", "--pairs-per-fold", "100000"], ["--folds x --pairs-per-fold", "10,000,000,000"]),
])
def test_a_verification_benchmark_needs_two_folds(capsys, tmp_path, argv, needles) -> None:
    out = tmp_path / "bench"
    cli_error(capsys, ["generate", "--verification", "--out", out, *argv], *needles)
    assert not out.exists()


def test_the_builders_check_sizes_themselves(tmp_path) -> None:
    """The app and the studies call the library directly: it refuses the same things."""
    from synface.data.benchmark import build_synthetic_benchmark
    from synface.data.synthetic import SynthConfig, build_dataset

    with pytest.raises(DataError, match="'ids' must be at most 1,000,000, got 1,000,000,000"):
        SynthConfig(ids=10**9, samples=2)
    with pytest.raises(DataError, match="'samples' must be at most"):
        SynthConfig(ids=2, samples=10**9)
    with pytest.raises(DataError, match="at most 50,000,000 images"):
        SynthConfig(ids=1_000_000, samples=100)
    with pytest.raises(DataError, match="batch size must be a positive integer, got 0"):
        build_dataset(SynthConfig(ids=2, samples=2), tmp_path / "a", batch_size=0)
    with pytest.raises(ValueError, match="folds >= 2"):
        build_synthetic_benchmark(tmp_path / "b", folds=1, pairs_per_fold=2)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_image_it_stopped_at(monkeypatch, tmp_path) -> None:
    from synface.data import synthetic

    def full(self, fp, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    target = tmp_path / "00000" / "000.jpg"
    target.parent.mkdir()
    with pytest.raises(OSError) as info:
        synthetic._encode_and_write(target, np.zeros((4, 4, 3), np.uint8), "jpg", 95)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)


# -- RecordIO: a header announcing gigabytes ------------------------------------------------


def test_a_recordio_length_past_the_file_end_is_refused_without_allocating(tmp_path) -> None:
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    rec.write_bytes(struct.pack("<II", MAGIC, (1 << 29) - 1) + b"\0" * 32)  # announces 512 MB
    idx.write_text("0\t0\n1\t0\n")
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            RecordReader(rec, idx)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert str(rec) in message and "offset 0" in message and "536,870,911 bytes" in message
    assert peak < 16 * 2**20, peak


def test_a_recordio_offset_outside_the_file_is_refused(tmp_path) -> None:
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    rec.write_bytes(struct.pack("<II", MAGIC, 4) + b"\0" * 4)
    idx.write_text("0\t999999\n")
    with pytest.raises(DataError, match=r"train.rec: record offset 999999 lies outside the file \(12 bytes\)"):
        RecordReader(rec, idx)


# -- export: never pack a non-image -----------------------------------------------------------


def test_export_rec_refuses_a_set_without_one_whole_image(capsys, tmp_path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "0.jpg").write_text("not an image")
    _truncate(_jpeg(src / "a" / "1.jpg"))
    cli_error(capsys, ["export", src, "--to", "rec", "--out", tmp_path / "rec"], str(src), "none of the 2 images",
              "0.jpg")
    assert not (tmp_path / "rec").exists()


def test_export_rec_skips_and_names_non_images(capsys, tmp_path) -> None:
    from synface.cli.main import main

    src = tmp_path / "src"
    _jpeg(src / "a" / "0.jpg", 0)
    (src / "b").mkdir()
    (src / "b" / "0.jpg").write_text("nope")  # identity b has no image left: c becomes label 1
    _jpeg(src / "c" / "0.jpg", 1)
    _truncate(_jpeg(src / "c" / "1.jpg", 2))
    assert main(["export", str(src), "--to", "rec", "--out", str(tmp_path / "rec")]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["images"] == 2 and report["identities"] == 2 and report["skipped"] == 2
    assert sorted(Path(f.split(" (")[0]).name for f in report["skipped_files"]) == ["0.jpg", "1.jpg"]
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "skipped 2 of 4" in warning[0]
    with RecordReader(tmp_path / "rec" / "train.rec") as reader:
        assert [reader.read(i)[1] for i in range(len(reader))] == [0, 1]  # every record decodes


def _lfw(root: Path) -> Path:
    for name in ("Ann", "Bob"):
        for k in (1, 2):
            _jpeg(root / "images" / name / f"{name}_{k:04d}.jpg", seed=k)
    (root / "pairs.txt").write_text("1\nAnn\t1\t2\nAnn\t1\tBob\t2\n")
    return root


def test_export_bin_refuses_a_pair_image_that_does_not_decode(capsys, tmp_path) -> None:
    lfw = _lfw(tmp_path / "lfw")
    _truncate(lfw / "images" / "Bob" / "Bob_0002.jpg")
    cli_error(capsys, ["export", lfw, "--to", "bin", "--out", tmp_path / "x.bin"], "Bob_0002.jpg", "1 of the 3 images",
              "nothing written")
    assert not (tmp_path / "x.bin").exists()


# -- align: nothing usable ------------------------------------------------------------------


def test_align_fails_when_every_image_is_unreadable(capsys, tmp_path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "0.jpg").write_text("not an image")
    _truncate(_jpeg(src / "a" / "1.jpg"))
    cli_error(capsys, ["align", src, "--out", tmp_path / "out", "--workers", 1], str(src), "none of the 2 images",
              stdout_ok=False)
    assert not list((tmp_path / "out").glob("*/*.jpg"))


@pytest.mark.skipif(not HAVE_DLIB, reason="dlib missing")
def test_align_exits_2_when_no_face_is_found_anywhere(capsys, tmp_path) -> None:
    from synface.cli.main import main

    for k in range(2):
        _jpeg(tmp_path / "src" / "a" / f"{k}.jpg", seed=k, side=48)
    assert main(["align", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["fallback"] == 2
    lines = [line for line in err.split("\n") if line.strip() and "\r" not in line and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: no face found in any of the 2"), err


# -- people.txt naming someone without images ---------------------------------------------------


def test_people_without_images_are_named(tmp_path) -> None:
    lfw = _lfw(tmp_path / "lfw")
    (lfw / "images" / "Empty").mkdir()
    assert people_without_images(LFWLayout(lfw), ["Ann", "Ghost", "Empty", "Bob"]) == ["Ghost", "Empty"]
