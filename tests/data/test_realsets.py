"""Real-set registry: format detection with clear errors, registration, atomic registry file."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert entry.name == "lfw" and entry.pairs == 2 and entry.can_verify and entry.train_root == str(lfw)  # images/
    assert get_real_set("lfw", ws).pairs_file.endswith("pairs.txt")
    remove_real_set("lfw", ws)
    with pytest.raises(DataError, match="no real set named"):
        get_real_set("lfw", ws)


# ----------------------------------------------------------------------------- LFW training folds, .bin sets


def test_lfw_training_folds_train_only_their_people_and_test_on_the_rest(tmp_path):
    from synface.data.identity_overlap import check_launch
    from synface.data.realsets import eval_specs, lfw_fold_count, parse_train_folds, verification_sets
    from tests.data.identity_sets import PEOPLE, make_lfw

    lfw, ws = make_lfw(tmp_path / "lfw"), tmp_path / "ws"
    assert lfw_fold_count(lfw) == 3 and parse_train_folds("1", 3) == [0] and parse_train_folds("all", 3) == [0, 1, 2]
    with pytest.raises(DataError, match=r"fold number 1..3 .*got '4'"):
        parse_train_folds("1,4", 3)
    entry = register_real_set(lfw, "lfw", align=False, root=ws, train_folds=[0])
    assert entry.train_people == 2 and entry.test_folds == [1, 2] and entry.can_verify
    assert sorted(p.name for p in Path(entry.train_root).iterdir()) == PEOPLE[:2]
    assert "trains on folds 1 (2 people), tests on pairs folds 2,3" in entry.describe()
    spec = entry.eval_spec(center_crop=0.6)
    assert spec["folds"] == [1, 2] and spec["center_crop"] == 0.6 and spec["pairs"].endswith("pairs.txt")
    # training on the registered set and scoring its own test pairs: identity-disjoint
    report = check_launch({"real_root": entry.train_root, "eval_sets": [spec]}, ws)
    assert report.overlapping == [] and report.sets[0].pairs == 4
    # the whole copy scored instead: refused, naming the people
    with pytest.raises(ValueError, match=r"shares 2 people with the training data \(2 from the real training set lfw\), 2 of 6 "
                                         r"pairs on them: Ann_Lee, Bob_Ray"):
        check_launch({"real_root": entry.train_root, "eval_sets": [str(lfw)]}, ws)

    # re-registered with other folds: the training people follow
    entry = register_real_set(lfw, "lfw", align=False, root=ws, train_folds=[1])
    assert sorted(p.name for p in Path(entry.train_root).iterdir()) == PEOPLE[2:4] and entry.test_folds == [0, 2]
    with pytest.raises(DataError, match="leaves 1 test fold"):
        register_real_set(lfw, "lfw", align=False, root=ws, train_folds=[0, 1])
    entry = register_real_set(lfw, "lfw_all", align=False, root=ws, train_folds=[0, 1, 2])
    assert not entry.can_verify and entry.train_people == 6
    with pytest.raises(DataError, match="every pairs fold trains"):
        entry.eval_spec()
    entry = register_real_set(lfw, "lfw_test", align=False, root=ws, train_folds=[])
    assert entry.train_root is None and entry.can_verify and entry.eval_spec()["folds"] is None
    assert [s.name for s in verification_sets(ws)] == ["lfw", "lfw_test"]
    assert [s["name"] for s in eval_specs(None, ws)] == ["lfw", "lfw_test"] == [s["name"] for s in eval_specs(["all"], ws)]
    view = Path(get_real_set("lfw", ws).train_view)
    remove_real_set("lfw", ws)
    assert not view.exists() and (lfw / "images" / "Ann_Lee").is_dir()  # links gone, images kept


def test_training_folds_need_people_txt_and_an_lfw_copy(tmp_path):
    from tests.data.identity_sets import make_bin, make_lfw

    lfw = make_lfw(tmp_path / "lfw", people=False)
    with pytest.raises(DataError, match="training folds need people.txt"):
        register_real_set(lfw, "x", align=False, root=tmp_path / "ws", train_folds=[0])
    with pytest.raises(DataError, match="training folds are for LFW copies"):
        register_real_set(make_bin(tmp_path / "a.bin"), "a", root=tmp_path / "ws", train_folds=[0])
    legacy = register_real_set(lfw, "legacy", align=False, root=tmp_path / "ws")  # no folds: every identity, as before
    assert legacy.train_root == str(lfw / "images") and legacy.test_folds is None


def test_bin_sets_register_once_and_bad_ones_are_named(tmp_path):
    from synface.data.realsets import eval_specs
    from tests.data.identity_sets import bad_bins, make_bin

    ws = tmp_path / "ws"
    for name in ("cfp_fp", "agedb_30"):
        entry = register_real_set(make_bin(tmp_path / f"{name}.bin", pairs=10), None, root=ws)
        assert entry.format == "bin" and entry.pairs == 10 and entry.can_verify and entry.train_root is None
    assert [s["name"] for s in eval_specs(None, ws)] == ["agedb_30", "cfp_fp"]
    assert eval_specs(["cfp_fp"], ws) == [{"path": str(tmp_path / "cfp_fp.bin"), "name": "cfp_fp"}]
    with pytest.raises(DataError, match="no real set named 'nope'"):
        eval_specs(["nope"], ws)
    with pytest.raises(DataError, match="no real set named 'nosuch'"):  # beside 'all' too: never dropped
        eval_specs(["all", "nosuch"], ws)
    assert [s["name"] for s in eval_specs(["cfp_fp", "all"], ws)] == ["cfp_fp", "agedb_30"]
    for kind, path in bad_bins(tmp_path / "bad").items():
        with pytest.raises(DataError) as err:
            register_real_set(path, None, root=ws)
        assert str(path) in str(err.value) and "\n" not in str(err.value), kind
    assert len(list_real_sets(ws)) == 2  # nothing recorded for the bad files
