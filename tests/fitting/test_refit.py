"""Refits (synface.fitting.build): caches keyed by the photos' content, one rename to swap a new
model in, one fit per name at a time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from synface.base.files import swap_folder
from synface.face.catalog import FaceModelBusy, hold_name, load_model, staging_folder
from synface.fitting.build import _chunk_key, fit_face_model
from tests.hostile import write_bomb
from tests.support import LFW_ROOT, REPO, requires_lfw

FIT = dict(bank=10, chunk=4, workers=1, framing_renders=60)


def _people_folder(root: Path, first: int, count: int = 12) -> Path:
    """root/p00..p11/1.jpg: the first photo of LFW people first..first+count-1 under fixed names."""
    people = sorted(p.name for p in (LFW_ROOT / "images").iterdir())[first:first + count]
    for k, person in enumerate(people):
        target = root / f"p{k:02d}" / "1.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LFW_ROOT / "images" / person / f"{person}_0001.jpg", target)
    return root


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _same_model(a: Path, b: Path) -> None:
    """Two model folders hold the same model: every array, texture, chunk and card entry (but the
    time it was made) identical."""
    for file in ("model.npz", "sources.npz", *(f"cache/{c.name}" for c in sorted((a / "cache").glob("*.npz")))):
        x, y = _arrays(a / file), _arrays(b / file)
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x), file
    assert np.array_equal(np.load(a / "textures.npy"), np.load(b / "textures.npy"))
    card_a, card_b = (json.loads((f / "card.json").read_text()) for f in (a, b))
    card_a.pop("created"), card_b.pop("created")
    assert card_a == card_b
    assert (a / "no_face.txt").read_text() == (b / "no_face.txt").read_text()


def test_a_chunk_key_follows_content_and_the_photo_folder(tmp_path) -> None:
    root = tmp_path / "a"
    photo = root / "p" / "1.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"first photo")
    files = [(0, photo)]
    key = _chunk_key(files, root)
    assert _chunk_key(files, root) == key
    stamp = photo.stat()
    photo.write_bytes(b"other photo")  # same name, same size, same modification time: other bytes
    os.utime(photo, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert _chunk_key(files, root) != key
    photo.write_bytes(b"first photo")
    os.utime(photo, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert _chunk_key(files, root) == key
    copy = tmp_path / "b"
    shutil.copytree(root, copy)
    assert _chunk_key([(0, copy / "p" / "1.jpg")], copy) != key  # another photo folder


def test_swap_folder_replaces_a_folder_in_one_step(tmp_path, monkeypatch) -> None:
    import synface.base.files as files

    for exchange in (True, False):  # renameat2's exchange, and the two-rename fallback
        if not exchange:
            monkeypatch.setattr(files, "_exchange", lambda a, b: False)
        target, new = tmp_path / f"model{exchange}", tmp_path / f".model{exchange}.fitting"
        target.mkdir()
        (target / "card.json").write_text("old")
        new.mkdir()
        (new / "card.json").write_text("new")
        swap_folder(new, target)
        assert (target / "card.json").read_text() == "new" and not new.exists()
        assert not list(tmp_path.glob("*.old"))
    fresh = tmp_path / ".first.fitting"
    fresh.mkdir()
    swap_folder(fresh, tmp_path / "first")
    assert (tmp_path / "first").is_dir() and not fresh.exists()


def test_a_second_fit_of_a_busy_name_is_refused_naming_the_pid(tmp_path) -> None:
    photos = tmp_path / "photos"
    for k in range(10):
        (photos / f"p{k}").mkdir(parents=True)
        (photos / f"p{k}" / "1.jpg").write_bytes(b"x")
    with hold_name("busy", tmp_path):
        with pytest.raises(FaceModelBusy, match=f"face model 'busy' is being fitted by process {os.getpid()}"):
            fit_face_model(photos, "busy", workspace=tmp_path, **FIT)
    assert not (tmp_path / "face_models" / "busy").exists()
    with pytest.raises(ValueError, match="--bank 6000: the reflectance bank holds 10 to 5,000 people"):
        fit_face_model(photos, "big", workspace=tmp_path, bank=6000)


@requires_lfw
@pytest.mark.slow
def test_a_refit_from_other_photos_under_the_same_names_equals_a_fresh_fit(tmp_path) -> None:
    """The bar: photos replaced by other people's under the same file names give, on a refit,
    exactly the model a fresh fit in another workspace gives (no cached landmarks or descriptors
    of the people who left); a decompression bomb among them is one more unreadable photo."""
    photos = _people_folder(tmp_path / "photos", 0)
    first = fit_face_model(photos, "m", workspace=tmp_path / "ws1", **FIT)
    shutil.rmtree(photos)
    _people_folder(photos, 40)
    write_bomb(photos / "p03" / "2.jpg")
    refit = fit_face_model(photos, "m", workspace=tmp_path / "ws1", **FIT)
    fresh = fit_face_model(photos, "m", workspace=tmp_path / "ws2", **FIT)
    assert refit["source_people"] == fresh["source_people"]
    assert refit["version"] != first["version"] and refit["images_unreadable"] == 1
    _same_model(tmp_path / "ws1" / "face_models" / "m", tmp_path / "ws2" / "face_models" / "m")
    assert not staging_folder("m", tmp_path / "ws1").exists()
    first_desc = _arrays(tmp_path / "ws2" / "face_models" / "m" / "sources.npz")["descriptors"]
    assert load_model("m", tmp_path / "ws1").sources["descriptors"].tobytes() == first_desc.tobytes()


def _start_fit(photos: Path, ws: Path, name: str) -> subprocess.Popen:
    code = ("from synface.fitting.build import fit_face_model; "
            f"fit_face_model({str(photos)!r}, {name!r}, workspace={str(ws)!r}, **{FIT!r})")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)


@requires_lfw
@pytest.mark.slow
def test_a_refit_killed_at_any_moment_leaves_the_old_model_or_the_new_one(tmp_path) -> None:
    """kill -9 of a refit at each of its moments on disk (a cached chunk, the source index, the
    model file written in its staging folder): the name always loads, as the old model or the new
    one, its files one set; a second fit started meanwhile is refused naming the first's pid."""
    ws, photos = tmp_path / "ws", _people_folder(tmp_path / "photos", 0)
    old = fit_face_model(photos, "m", workspace=ws, **FIT)["version"]
    shutil.rmtree(photos)
    _people_folder(photos, 40)
    staging = staging_folder("m", ws)
    moments = [lambda: any((staging / "cache").glob("landmarks-*.npz")), lambda: (staging / "sources.npz").exists(),
               lambda: (staging / "model.npz").exists()]
    seen = set()
    for k, moment in enumerate(moments):
        proc = _start_fit(photos, ws, "m")
        deadline = time.time() + 240
        while proc.poll() is None and not moment() and time.time() < deadline:
            time.sleep(0.01)
        if k == 0:  # while it runs, a second fit of the name is refused, naming it
            second = subprocess.run([sys.executable, "-m", "synface", "face-model", "fit", "--photos", str(photos),
                                     "--name", "m", "--workspace", str(ws), "--bank", "10"], cwd=REPO,
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == 2 and f"being fitted by process {proc.pid}" in second.stderr, second.stderr
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        seen.add(load_model("m", ws).card["version"])  # it loads: the check every reader makes passed
    new = fit_face_model(photos, "m", workspace=ws, **FIT)["version"]
    assert seen <= {old, new} and new != old
    assert load_model("m", ws).card["version"] == new
