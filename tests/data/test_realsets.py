"""Real-set registry: format detection with clear errors, registration, atomic registry file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from synface.data.errors import DataError
from synface.data.realsets import detect_format, get_real_set, list_real_sets, register_real_set, remove_real_set


def _imagefolder(root, ids=2, per=2):
    for i in range(ids):
        d = root / f"person_{i}"
        d.mkdir(parents=True)
        for k in range(per):
            Image.fromarray(np.full((60, 60, 3), 40 * i + 10 * k, np.uint8)).save(d / f"{k}.jpg")
    return root


def test_detect_errors(tmp_path):
    with pytest.raises(DataError, match="path does not exist"):
        detect_format(tmp_path / "missing")
    with pytest.raises(DataError, match="no path given"):
        detect_format("  ")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found under"):
        detect_format(tmp_path / "empty")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.jpg")
    with pytest.raises(DataError, match="one subfolder per identity"):
        detect_format(flat)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type"):
        detect_format(tmp_path / "x.txt")
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "train.rec").write_bytes(b"")
    with pytest.raises(DataError, match="train.idx is missing"):
        detect_format(rec)


def test_detect_formats(tmp_path):
    assert detect_format(_imagefolder(tmp_path / "folder")) == "imagefolder"
    lfw = _imagefolder(tmp_path / "lfw" / "images")
    (lfw.parent / "pairs.txt").write_text("1\t1\nperson_0\t1\t2\nperson_0\t1\tperson_1\t1\n")
    assert detect_format(lfw.parent) == "lfw"
    (tmp_path / "lfw.bin").write_bytes(b"")
    assert detect_format(tmp_path / "lfw.bin") == "bin"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "train.rec").write_bytes(b"")
    (tmp_path / "r" / "train.idx").write_text("")
    assert detect_format(tmp_path / "r") == "recordio"
    assert detect_format(tmp_path / "r" / "train.rec") == "recordio"


def test_register_align_and_list(tmp_path):
    src = _imagefolder(tmp_path / "faces", ids=2, per=2)
    ws = tmp_path / "ws"
    seen = []
    entry = register_real_set(src, "mine", align=True, progress=lambda d, t: seen.append((d, t)), root=ws, workers=1)
    assert entry.format == "imagefolder" and entry.identities == 2 and entry.images == 4
    assert entry.aligned == str(ws / "real" / "mine") and entry.train_root == entry.aligned
    assert len(list((ws / "real" / "mine").glob("*/*.jpg"))) == 4
    assert seen[-1] == (4, 4)
    assert [s.name for s in list_real_sets(ws)] == ["mine"]
    assert json.loads((ws / "real_sets.json").read_text())["mine"]["images"] == 4
    # same name, other source: refused; same source again: fine (resumable re-registration)
    other = _imagefolder(tmp_path / "other", ids=1, per=1)
    with pytest.raises(DataError, match="already exists"):
        register_real_set(other, "mine", align=False, root=ws)
    register_real_set(src, "mine", align=False, root=ws)
    with pytest.raises(DataError, match="must be 1-64"):
        register_real_set(src, "bad name!", align=False, root=ws)
    lfw = _imagefolder(tmp_path / "lfw" / "images")
    (lfw.parent / "pairs.txt").write_text("1\t1\nperson_0\t1\t2\nperson_0\t1\tperson_1\t1\n")
    entry = register_real_set(lfw.parent, None, align=False, root=ws)
    assert entry.name == "lfw" and entry.pairs == 2 and entry.can_verify and entry.train_root == str(lfw.parent)
    assert get_real_set("lfw", ws).pairs_file.endswith("pairs.txt")
    remove_real_set("lfw", ws)
    with pytest.raises(DataError, match="no real set named"):
        get_real_set("lfw", ws)
