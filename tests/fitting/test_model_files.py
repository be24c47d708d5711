"""A learned model folder is checked one way by every reader (synface.face.model_files): hostile
but parseable files give one error naming the file and key; FIFOs and huge declared arrays are
refused before anything is read; damaged folders are listed as damaged and can be removed; a
model is named by its folder."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from synface.face.catalog import (
    FaceModelBusy, damaged_models, hold_name, list_models, load_model, model_card, model_names, remove_model,
)
from synface.face.learned import FaceModelError
from tests.hostile import write_model_folder
from tests.support import REPO, cli_error


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A workspace holding one valid (synthetic, unfitted) model 'good', copied by each test."""
    ws = tmp_path_factory.mktemp("models")
    write_model_folder(ws, "good")
    return ws


def _copy(good: Path, tmp_path: Path, name: str) -> Path:
    import shutil

    folder = tmp_path / "face_models" / name
    shutil.copytree(good / "face_models" / "good", folder)
    return folder


def _rewrite_npz(path: Path, **changes) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def _card(folder: Path, **changes) -> None:
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card))


def _tones(folder: Path) -> np.ndarray:
    return np.load(folder / "model.npz")["tones"]


HOSTILE = {
    # name: (damage(folder), what the one message must say)
    "strings-in-tones": (lambda f: _rewrite_npz(f / "model.npz", tones=np.full(_tones(f).shape, "abc")),
                         "model.npz 'tones' has dtype <U3, expected float"),
    "complex-tones": (lambda f: _rewrite_npz(f / "model.npz", tones=_tones(f).astype(np.complex64)),
                      "model.npz 'tones' has dtype complex64, expected float"),
    "regions-scalar": (lambda f: _rewrite_npz(f / "model.npz", regions=np.array(5.0)),
                       "model.npz 'regions' has 0 dimensions"),
    "components-1e30": (lambda f: _rewrite_npz(f / "model.npz", shape_components=np.load(f / "model.npz")["shape_components"] * 1e30),
                        "model.npz 'shape_components' spans"),
    "tones-nan": (lambda f: _rewrite_npz(f / "model.npz", tones=np.full(_tones(f).shape, np.nan, np.float32)),
                  "model.npz 'tones' holds NaN"),
    "alignment-inf": (lambda f: _rewrite_npz(f / "model.npz", alignment=np.full((5, 2, 6), np.inf)),
                      "model.npz 'alignment' holds NaN or infinite values"),
    "textures-altered": (lambda f: (f / "textures.npy").write_bytes((f / "textures.npy").read_bytes()[:-1] + b"\x07"),
                         "textures.npy: its contents differ"),
    "textures-other-people": (lambda f: np.save(f / "textures.npy", np.zeros((3, 16, 16, 3), np.uint8)),
                              "textures.npy: 3 textures of 16 x 16; expected 4"),
    "regions-other-texels": (lambda f: _rewrite_npz(f / "model.npz", regions=np.full((4, 64 * 64), 0.25, np.float32)),
                             "'regions' covers 4,096 texels, the textures 16 x 16"),
    "empty-format": (lambda f: _rewrite_npz(f / "model.npz", format=np.zeros(0, np.int64)),
                     "model.npz 'format' dimension 0 is 0, expected 1"),
    "missing-array": (lambda f: _rewrite_npz(f / "model.npz", tones=None), "model.npz 'tones' is missing"),
    "tones-wrong-people": (lambda f: _rewrite_npz(f / "model.npz", tones=np.zeros((3, 3), np.float32)),
                           "model.npz 'tones' dimension 0 gives P=3, elsewhere P=4"),
    "texture-size-card": (lambda f: _card(f, texture_size=3), "card.json 'texture_size' is 3"),
    "landmark-past-vertices": (lambda f: _rewrite_npz(f / "model.npz", landmarks68=np.full(68, 10**7)),
                               "model.npz 'landmarks68' spans"),
    "no-eligible-person": (lambda f: _rewrite_npz(f / "model.npz", eligible=np.zeros((4, 4), bool)),
                           "'eligible': region 0 has no bank person"),
    "threshold-nan": (lambda f: _card(f, genuine_threshold=float("nan")), "card.json 'genuine_threshold' is nan"),
    "regions-number": (lambda f: _card(f, regions=5), "card.json 'regions' is an integer, expected list"),
    "people-strings": (lambda f: _card(f, source_people=[1, 2, 3, 4]), "card.json 'source_people'[0] is an integer"),
    "people-count": (lambda f: _card(f, people_fitted=9), "card.json 'people_fitted' gives F=9, elsewhere F=4"),
    "card-list": (lambda f: (f / "card.json").write_text("[1, 2]"), "card.json holds a list, not a JSON object"),
    "card-version": (lambda f: _card(f, version="learned-good-000000000000"), "card.json 'version'"),
    "descriptors-nan": (lambda f: _rewrite_npz(f / "sources.npz", descriptors=np.full((6, 128), np.nan, np.float32)),
                        "sources.npz 'descriptors' holds NaN"),
    "person-out-of-range": (lambda f: _rewrite_npz(f / "sources.npz", person=np.full(6, 99)),
                            "sources.npz 'person' spans 99..99, outside 0..3"),
    "pickle-in-sources": (lambda f: _rewrite_npz(f / "sources.npz", descriptors=np.array([{"x": 1}], dtype=object)),
                          "sources.npz 'descriptors' has dtype object"),
    "no-sources": (lambda f: (f / "sources.npz").unlink(), "no sources.npz"),
    "foreign-head": (lambda f: _card(f, builtin_version="builtin-1"), "fitted to built-in head 'builtin-1'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_but_parseable_model_is_one_named_error_everywhere(good, tmp_path, case) -> None:
    damage, message = HOSTILE[case]
    folder = _copy(good, tmp_path, "bad")
    _copy(good, tmp_path, "fine")
    damage(folder)
    with pytest.raises(FaceModelError) as refused:
        load_model("bad", tmp_path)
    text = str(refused.value)
    assert message in text and str(folder) in text and "\n" not in text
    listed = {m["name"]: m for m in list_models(tmp_path)}
    assert listed["bad"]["damaged"] and listed["bad"]["error"] == text  # the same check, the same words
    assert model_names(tmp_path) == ["builtin", "fine"]  # one damaged folder hides nothing else
    with pytest.raises(FaceModelError, match="bad"):
        model_card("bad", tmp_path)


def test_a_valid_model_loads_and_is_named_by_its_folder(good, tmp_path) -> None:
    _copy(good, tmp_path, "copy")
    model = load_model("copy", tmp_path)
    original = load_model("good", good)
    assert model.name == "copy" and model.card["name"] == "good"
    assert model.version.startswith("learned-copy-") and original.version.startswith("learned-good-")
    assert model.version.split("-")[-1] == original.version.split("-")[-1]  # same arrays
    assert [m["name"] for m in list_models(tmp_path)] == ["copy"] and model_card("copy", tmp_path)["name"] == "good"


def _npy_header(shape: tuple, descr: str = "<f2") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_huge_declared_arrays_are_refused_from_their_headers(good, tmp_path, monkeypatch) -> None:
    """A few-KB model.npz whose tones header declares 100,000 bank people: refused by its header,
    its data never read (np.load is never reached)."""
    folder = _copy(good, tmp_path, "huge")
    with np.load(folder / "model.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "tones"}
    with zipfile.ZipFile(folder / "model.npz", "w") as archive:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.save(buf, value)
            archive.writestr(f"{key}.npy", buf.getvalue())
        archive.writestr("tones.npy", _npy_header((100_000, 3), "<f4") + b"\0" * 64)
    assert (folder / "model.npz").stat().st_size < 200_000
    card = json.loads((folder / "card.json").read_text())
    del card["bank_people"]  # optional: the arrays' header alone declares the bank's size
    (folder / "card.json").write_text(json.dumps(card))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("the data of a refused file was read"))
    with pytest.raises(FaceModelError, match=r"model.npz 'tones' dimension 0 gives P=100,000, outside 2..5,000"):
        load_model("huge", tmp_path)


def test_fifos_and_links_are_refused_without_opening_them(good, tmp_path) -> None:
    for name, file in (("fifo-card", "card.json"), ("fifo-model", "model.npz"), ("fifo-sources", "sources.npz"),
                       ("fifo-textures", "textures.npy")):
        folder = _copy(good, tmp_path, name)
        (folder / file).unlink()
        os.mkfifo(folder / file)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    _copy(good, tmp_path, "linked-card")
    (tmp_path / "face_models" / "linked-card" / "card.json").unlink()
    (tmp_path / "face_models" / "linked-card" / "card.json").symlink_to(outside / "secret.json")
    (tmp_path / "face_models" / "linked-folder").symlink_to(good / "face_models" / "good")
    result: list = []
    worker = threading.Thread(target=lambda: result.append(list_models(tmp_path)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "listing models blocked on a FIFO"
    listed = {m["name"]: m for m in result[0]}
    assert all(m["damaged"] for m in listed.values()) and len(listed) == 6
    assert "textures.npy: not a regular file" in listed["fifo-textures"]["error"]
    assert "card.json is unreadable" in listed["fifo-card"]["error"] and "FIFO" in listed["fifo-card"]["error"]
    assert "model.npz is unreadable" in listed["fifo-model"]["error"]
    assert "symbolic link" in listed["linked-card"]["error"] and "a link" in listed["linked-folder"]["error"]
    with pytest.raises(FaceModelError, match="FIFO"):
        load_model("fifo-sources", tmp_path)


def test_damaged_models_are_listed_with_their_reason_and_can_be_removed(good, tmp_path, capsys) -> None:
    from synface.__main__ import main

    _copy(good, tmp_path, "fine")
    bad = _copy(good, tmp_path, "bad")
    (bad / "model.npz").write_bytes(b"PK\x03\x04 garbage")
    (tmp_path / "face_models" / "empty").mkdir()  # an old unfinished fit
    assert [d["name"] for d in damaged_models(tmp_path)] == ["bad", "empty"]
    assert main(["face-model", "list", "--workspace", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in rows] == ["builtin", "bad", "empty", "fine"]
    assert rows[1]["damaged"] and "model.npz is unreadable" in rows[1]["error"]
    assert err.startswith("warning: damaged face models") and "bad, empty" in err
    cli_error(capsys, ["face-model", "show", "bad", "--workspace", tmp_path], "model.npz is unreadable")
    with hold_name("bad", tmp_path):  # a fit of that name runs: no removal
        with pytest.raises(FaceModelBusy, match=f"process {os.getpid()}"):
            remove_model("bad", tmp_path)
    assert main(["face-model", "remove", "bad", "--workspace", str(tmp_path)]) == 0
    remove_model("empty", tmp_path)
    assert [m["name"] for m in list_models(tmp_path)] == ["fine"] and not bad.exists()
    left = sorted(p.name for p in (tmp_path / "face_models").iterdir())
    assert [n for n in left if not n.endswith(".lock")] == ["fine"]  # nothing set aside is left behind


def test_generate_refuses_a_hostile_model_with_one_line(good, tmp_path) -> None:
    folder = _copy(good, tmp_path, "bad")
    _card(folder, genuine_threshold=float("nan"))
    out = subprocess.run([sys.executable, "-m", "synface", "generate", "--ids", "2", "--samples", "1", "--model", "bad",
                          "--root", str(tmp_path), "--out", str(tmp_path / "set"), "--device", "cpu"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "card.json 'genuine_threshold' is nan" in out.stderr and not (tmp_path / "set").exists()
