"""Launch checks: every evaluation set can be scored, and training people are not test people."""

from __future__ import annotations

import json
import shutil

import pytest

from synface.data.errors import DataError
from synface.data.eval_sets import check_eval_set
from synface.data.identity_overlap import (
    IdentityOverlapError,
    check_launch,
    folder_people,
    training_people,
)
from tests.data.identity_sets import PEOPLE, bad_bins, make_bin, make_lfw
from tests.hostile import write_model_folder


def _train_folder(tmp_path, names):
    """An ImageFolder holding the LFW people `names` (what a real training set looks like)."""
    src = make_lfw(tmp_path / "src_lfw") / "images"
    dst = tmp_path / "train"
    for name in names:
        shutil.copytree(src / name, dst / name)
    return dst


def test_overlap_is_refused_naming_count_pairs_and_people(tmp_path):
    lfw = make_lfw(tmp_path / "lfw")
    cfg = {"real_root": str(_train_folder(tmp_path, PEOPLE[:3])), "eval_sets": [{"path": str(lfw), "name": "lfw"}]}
    with pytest.raises(IdentityOverlapError) as err:
        check_launch(cfg, tmp_path / "ws", override_hint="pass --allow-overlap")
    msg = str(err.value)
    assert "'lfw' shares 3 people" in msg and "4 of 6 pairs on them" in msg  # folds 1-2 fully, nothing of fold 3
    assert "Ann_Lee, Bob_Ray, Cid_Moe" in msg and msg.endswith("pass --allow-overlap") and "\n" not in msg

    report = check_launch({**cfg, "allow_overlap": True}, tmp_path / "ws")
    assert report.to_dict()["overridden"] and report.summary().startswith("identity overlap accepted")
    # Cid_Moe of fold 2 is trained on: pairs folds 2-3 still overlap, on him alone
    with pytest.raises(IdentityOverlapError, match=r"shares 1 person with the training data \(1 from the real "
                                                   r"training set train\), 2 of 4 pairs on them: Cid_Moe;.* real "
                                                   r"training set holds people this set tests"):
        check_launch({**cfg, "eval_sets": [{"path": str(lfw), "name": "lfw", "folds": [1, 2]}]}, tmp_path / "ws")
    # training on fold 1's people, testing on the pairs of folds 2-3: no overlap
    clean = check_launch({**cfg, "real_root": str(_train_folder(tmp_path / "b", PEOPLE[:2])),
                          "eval_sets": [{"path": str(lfw), "folds": [1, 2]}]}, tmp_path / "ws")
    assert clean.overlapping == [] and clean.sets[0].checked and not clean.to_dict()["overridden"]
    assert clean.summary() == "no identity overlap found (1 of 1 evaluation sets checked)"


def test_subset_people_are_the_chosen_identities(tmp_path):
    folder = _train_folder(tmp_path, PEOPLE)
    people = folder_people(folder, "real", r_id=2, k=2)
    assert people.names == frozenset(PEOPLE[:2]) and "R_ID=2" in people.source
    assert training_people({"real_root": str(folder), "real_ids": 2, "real_k": 2})[0].names == frozenset(PEOPLE[:2])


def test_learned_model_sets_count_their_source_people(tmp_path):
    ws = tmp_path / "ws"
    write_model_folder(ws, "m1", people=2, source_people=["Eve_Kim", "Zed"])
    syn = tmp_path / "syn"
    syn.mkdir()
    (syn / "dataset.json").write_text(json.dumps({"name": "syn", "model": "m1"}))
    builtin = tmp_path / "builtin_syn"
    builtin.mkdir()
    (builtin / "dataset.json").write_text(json.dumps({"name": "b", "model": "builtin"}))
    lfw = make_lfw(tmp_path / "lfw")
    with pytest.raises(IdentityOverlapError, match=r"'lfw' shares 1 person .*: Eve_Kim") as err:
        check_launch({"data": str(syn), "eval_sets": [str(lfw)]}, ws)
    # the refusal says where the overlap comes from and what to do about it
    msg = str(err.value)
    assert "(1 from the source people of face model 'm1' (2))" in msg
    assert "fit the face model on other people (for LFW: folds 1-3" in msg and "LFW folds 4-5" in msg
    assert "real training set holds" not in msg
    # both sources: each counted, both remedies given
    both = {"data": str(syn), "real_root": str(_train_folder(tmp_path, PEOPLE[:1])), "eval_sets": [str(lfw)]}
    with pytest.raises(IdentityOverlapError) as err:
        check_launch(both, ws)
    msg = str(err.value)
    assert "1 from the source people of face model 'm1' (2); 1 from the real training set train" in msg
    assert "fit the face model on other people" in msg and "real training set holds people this set tests" in msg
    assert check_launch({"data": str(builtin), "eval_sets": [str(lfw)]}, ws).overlapping == []
    # a model the workspace does not have: said, not assumed clean
    report = check_launch({"data": str(syn), "eval_sets": [str(lfw)]}, tmp_path / "other_ws")
    assert report.overlapping == [] and any("cannot be checked" in n and "'m1'" in n for n in report.notes())


def test_bin_sets_cannot_be_checked_and_say_so(tmp_path):
    b = make_bin(tmp_path / "cfp_fp.bin")
    report = check_launch({"real_root": str(_train_folder(tmp_path, PEOPLE)), "eval_sets": [str(b)]}, tmp_path)
    assert report.sets[0].label == "cfp_fp" and not report.sets[0].checked
    assert report.notes() == ["evaluation set 'cfp_fp' cannot be checked: a .bin holds images only, no names"]
    assert "0 of 1 evaluation sets checked" in report.summary()


def test_unscorable_sets_are_named_before_training(tmp_path):
    lfw = make_lfw(tmp_path / "nopairs", pairs=False)
    with pytest.raises(DataError, match=r"evaluation set 'nopairs' cannot be scored: .*nopairs: no pairs.txt"):
        check_launch({"data": "/x", "eval_sets": [str(lfw)]})
    with pytest.raises(DataError, match="evaluation set 'gone' cannot be scored: .*path not found"):
        check_eval_set({"path": str(tmp_path / "gone")})
    with pytest.raises(DataError, match="at least 2 folds"):
        check_eval_set({"path": str(make_lfw(tmp_path / "lfw")), "folds": [0]})
    with pytest.raises(DataError, match=r"folds \[7\] not in the file"):
        check_eval_set({"path": str(tmp_path / "lfw"), "folds": [0, 7]})
    (tmp_path / "lfw" / "images" / "Ann_Lee" / "Ann_Lee_0002.jpg").unlink()
    with pytest.raises(DataError, match="image not found"):
        check_eval_set({"path": str(tmp_path / "lfw")})


@pytest.mark.parametrize("kind, needle", [("random", "not a readable pickle"), ("other", "expected a pickled (bins"),
                                          ("globals", "unsafe pickle: refused to load global")])
def test_a_bin_that_is_not_a_verification_file_is_one_named_line(tmp_path, kind, needle):
    path = bad_bins(tmp_path)[kind]
    with pytest.raises(DataError) as err:
        check_eval_set({"path": str(path), "name": "mine"})
    msg = str(err.value)
    assert msg.startswith("evaluation set 'mine' cannot be scored: ") and str(path) in msg and needle in msg
    assert "\n" not in msg


def test_a_bin_of_undecodable_images_is_named(tmp_path):
    from synface.data.verification_bin import write_bin

    write_bin(tmp_path / "junk.bin", [b"not an image"] * 4, [True, False])
    with pytest.raises(DataError, match="cannot decode image 0 of pair 0"):
        check_eval_set({"path": str(tmp_path / "junk.bin")})


def test_a_learned_model_benchmark_is_compared_with_real_training_people_only(tmp_path):
    ws = tmp_path / "ws"
    write_model_folder(ws, "m1", people=3, source_people=PEOPLE[:3])
    bench = make_lfw(tmp_path / "bench")  # its pairs name LFW people, but its card says what it is
    (bench / "benchmark.json").write_text(json.dumps({"model": "m1", "folds": 3}))
    syn = tmp_path / "syn"
    syn.mkdir()
    (syn / "dataset.json").write_text(json.dumps({"model": "m1"}))
    # a synthetic set of the same model: other identities of the same source bank
    assert check_launch({"data": str(syn), "eval_sets": [str(bench)]}, ws).overlapping == []
    # the model's source people trained on as real photos: refused
    with pytest.raises(IdentityOverlapError, match=r"'bench' shares 2 people with the training data "
                                                   r"\(2 from the real training set train\): Ann_Lee, Bob_Ray;"):
        check_launch({"data": str(syn), "real_root": str(_train_folder(tmp_path, PEOPLE[:2])), "eval_sets": [str(bench)]}, ws)


def test_two_sets_of_one_name_are_refused(tmp_path):
    a, b = make_bin(tmp_path / "a" / "x.bin"), make_bin(tmp_path / "b" / "x.bin")
    with pytest.raises(DataError, match="two evaluation sets are named 'x'"):
        check_launch({"data": "/nowhere", "eval_sets": [str(a), str(b)]})
