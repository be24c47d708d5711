"""Every image read is capped (synface.data.imageio): a header that declares more than
MAX_IMAGE_PIXELS, PIL's decompression bombs and non-regular files are unreadable images, named."""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from synface.data.errors import DataError
from synface.data.imageio import MAX_IMAGE_PIXELS, image_problem, open_image, read_rgb
from tests.hostile import bomb_png, write_bomb


@pytest.mark.parametrize("side", [20000, 9000])  # past PIL's own error limit, and only past ours
def test_a_bomb_header_is_a_named_unreadable_image(tmp_path, side) -> None:
    path = write_bomb(tmp_path / "bomb.png", side, side)
    assert side * side > MAX_IMAGE_PIXELS and path.stat().st_size < 200
    with pytest.raises(DataError, match="bomb.png: the photo .*pixels an image may decode to"):
        read_rgb(path, "photo")
    assert "pixels an image may decode to" in image_problem(bomb_png(side, side))


def test_a_pil_decompression_bomb_is_caught_however_pil_reports_it(tmp_path, monkeypatch) -> None:
    """With PIL's limit below ours, PIL refuses first (an error, or its warning): still one DataError."""
    path = write_bomb(tmp_path / "b.png", 3000, 3000)
    for limit in (4_000_000, 8_000_000):  # 9 M pixels: past twice the first (error), past the second (warning)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", category=Image.DecompressionBombWarning)  # as imageio sets it (pytest resets it)
            with pytest.raises(DataError, match="decompression bomb"):
                read_rgb(path)


def test_images_under_the_cap_decode(tmp_path) -> None:
    path = tmp_path / "ok.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    assert read_rgb(path).size == (30, 20)
    with open_image(path.read_bytes()) as img:
        assert img.size == (30, 20)


def test_a_fifo_named_like_an_image_is_unreadable_without_blocking(tmp_path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(pytest.raises(DataError, read_rgb, fifo)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert "not a regular file" in str(result[0].value)


def test_bomb_files_in_a_bin_and_a_rec_are_named(tmp_path) -> None:
    from synface.data.recordio import RecordReader, write_recordio
    from synface.data.verification_bin import read_bin, write_bin

    small = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(small)
    write_bin(tmp_path / "x.bin", [small.read_bytes(), bomb_png()], [True])
    with pytest.raises(DataError, match="x.bin: the image 1 of pair 0 .*pixels an image may decode to"):
        read_bin(tmp_path / "x.bin").load_image(0, 1)
    write_recordio(tmp_path, [(bomb_png(), 0), (small.read_bytes(), 1)])
    with RecordReader(tmp_path / "train.rec") as reader:
        with pytest.raises(DataError, match="train.rec: the image of record 1 .*pixels an image may decode to"):
            reader.read(0)
