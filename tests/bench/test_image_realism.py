"""The image-level realism measure of `bench realism --real-crops`: a real-vs-synthetic classifier
on tiny sets of made-up crops, its reading of real crops from disk, and its CLI wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.bench.image_features import FEATURE_GROUPS, crop_features, feature_columns
from synface.bench.image_realism import (
    classifier_test,
    group_folds,
    image_realism_report,
    load_real_crops,
    minimum_crops,
    split_halves,
    wilson_interval,
)
from synface.data.errors import DataError
from tests.support import cli_error

SIDE = 112


def made_up_crops(n: int, seed: int, flat_background: bool = False) -> np.ndarray:
    """(n,112,112,3) crops with random smooth colour, fine grain and an oval 'face'; with
    `flat_background` everything outside the oval is one flat grey (no grain, no colour)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    oval = ((xx - 56) / 38) ** 2 + ((yy - 60) / 48) ** 2 <= 1
    out = np.empty((n, SIDE, SIDE, 3), np.uint8)
    for i in range(n):
        coarse = rng.uniform(60, 200, (4, 4, 3))
        smooth = np.kron(coarse, np.ones((28, 28, 1)))
        image = smooth + rng.normal(0, 12, (SIDE, SIDE, 3))
        if flat_background:
            image[~oval] = 128
        out[i] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def two_crops_per_person(n: int) -> np.ndarray:
    return np.repeat(np.arange(n // 2), 2).astype(str)


def test_a_set_against_another_draw_of_itself_is_near_chance():
    """Two independent draws of one distribution. The pooled held-out accuracy of 80 predictions
    has a standard deviation of about 0.056 when nothing separates the sets (0.079 if the two
    crops of a person always agreed): 0.25 from 0.5 is over 3 of the larger, so only a
    classifier that learns noise, or leaks people across folds, fails this."""
    a, b = crop_features(made_up_crops(40, 1)), crop_features(made_up_crops(40, 2))
    result = classifier_test(a, two_crops_per_person(40), b, np.char.add("b", two_crops_per_person(40)))
    assert 0.25 <= result["accuracy"] <= 0.75, result
    assert result["crops"] == "40 + 40"
    low, high = result["ci95"]
    assert low < result["accuracy"] < high


def test_a_flat_background_is_told_from_a_textured_one():
    textured, flat = made_up_crops(40, 3), made_up_crops(40, 4, flat_background=True)
    result = classifier_test(crop_features(flat), two_crops_per_person(40), crop_features(textured),
                             np.char.add("b", two_crops_per_person(40)))
    assert result["accuracy"] >= 0.9, result
    assert result["ci95"][0] > 0.75  # far above chance, not just above it


def test_folds_keep_each_person_whole_and_balance_counts():
    groups = np.array(["a"] * 7 + ["b"] * 3 + [f"p{i}" for i in range(30)])
    fold = group_folds(groups, 5, seed=0)
    for person in np.unique(groups):
        assert len(set(fold[groups == person])) == 1, person
    counts = np.bincount(fold, minlength=5)
    assert counts.sum() == 40 and counts.max() - counts.min() <= 1, counts
    assert np.array_equal(fold, group_folds(groups, 5, seed=0))  # seeded
    first, second = split_halves(groups, seed=0)
    assert len(first) == len(second) and not set(groups[first]) & set(groups[second])


def test_jpeg_round_trip_is_a_light_touch():
    from synface.bench.image_realism import jpeg_round_trip

    ramp = np.linspace(40, 220, SIDE)
    smooth = np.stack([np.broadcast_to(ramp, (SIDE, SIDE)), np.broadcast_to(ramp[:, None], (SIDE, SIDE)),
                       np.full((SIDE, SIDE), 128.0)], -1)
    crops = np.stack([smooth, smooth[::-1]]).astype(np.uint8)
    stored = jpeg_round_trip(crops)
    assert stored.shape == crops.shape and stored.dtype == np.uint8
    change = np.abs(stored.astype(int) - crops.astype(int))
    assert change.max() > 0 and change.mean() < 2  # encoded and decoded at a high quality, not replaced


def test_wilson_interval_is_a_sane_95_percent_interval():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson_interval(100, 100)
    assert high == 1.0 and 0.95 < low < 0.97  # never past 1, not a zero-width interval


def test_features_are_per_crop_and_grouped():
    crops = made_up_crops(5, 6)
    rows = crop_features(crops)
    assert rows.dtype == np.float32 and np.isfinite(rows).all()
    np.testing.assert_allclose(crop_features(crops[3:4])[0], rows[3], rtol=1e-4, atol=1e-4)  # batch-independent
    columns = feature_columns(SIDE)
    assert tuple(columns) == FEATURE_GROUPS
    assert columns["colour and framing"].start == 0 and columns["texture"].stop == rows.shape[1]
    assert all(columns[a].stop == columns[b].start for a, b in zip(FEATURE_GROUPS, FEATURE_GROUPS[1:]))
    with pytest.raises(ValueError, match="uint8"):
        crop_features(crops.astype(np.float32))


def write_crops(root: Path, images: np.ndarray, per_person: int = 2) -> Path:
    """`root/<person>/<crop>.jpg`, JPEG at quality 95 as `python -m synface align` writes crops."""
    for i, image in enumerate(images):
        folder = root / f"person_{i // per_person:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.jpg", quality=95)
    return root


def test_report_on_tiny_sets_has_every_reference(tmp_path):
    real = load_real_crops(write_crops(tmp_path / "real", made_up_crops(40, 7)), 40, seed=0, side=SIDE)
    assert len(real) == 40 and real.identities_known and len(np.unique(real.groups)) == 20
    ticks = []
    report = image_realism_report(made_up_crops(40, 8, flat_background=True), real, seed=0,
                                  tick=lambda *t: ticks.append(t))
    assert report["synthetic_vs_real"]["accuracy"] >= 0.9
    assert 0.2 <= report["real_vs_real"]["accuracy"] <= 0.8  # 20 + 20 crops: wider than above
    assert report["real_vs_real"]["crops"] == "20 + 20"
    assert set(report["real_vs_real_blurred"]) == {"0.5 px", "1 px"}
    assert set(report["synthetic_vs_real_by_region"]) == {"inner face only", "outside the inner face"}
    assert set(report["synthetic_vs_real_by_feature"]) == set(FEATURE_GROUPS)
    # the renders differ outside the oval only, and the inner face's grain is alike: the outside gives them away
    regions = report["synthetic_vs_real_by_region"]
    assert regions["outside the inner face"]["accuracy"] >= 0.9
    assert regions["inner face only"]["accuracy"] < regions["outside the inner face"]["accuracy"] - 0.1
    frechet = report["frechet_on_description"]
    assert frechet["renders"] > 2 * frechet["real_vs_real"] > 0 and frechet["crops"] == "20 vs 20"
    assert ticks[0][1] == 0 and ticks[-1][1] == ticks[-1][2]  # progress from empty to full
    assert report["identity_disjoint"] is True and report["folds"] == 5


def test_real_crops_flat_folder_and_seeded_choice(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, image in enumerate(made_up_crops(24, 9)):
        Image.fromarray(image).save(flat / f"{i:03d}.png")
    crops = load_real_crops(flat, 20, seed=1, side=SIDE)
    assert len(crops) == 20 and not crops.identities_known and len(set(crops.groups)) == 20
    again = load_real_crops(flat, 20, seed=1, side=SIDE)
    assert np.array_equal(crops.images, again.images)
    assert not np.array_equal(crops.groups, load_real_crops(flat, 20, seed=2, side=SIDE).groups)


def test_real_crops_bad_input_is_one_named_error(tmp_path):
    with pytest.raises(DataError, match="real crops folder not found"):
        load_real_crops(tmp_path / "missing", 10, 0, SIDE)
    need_crops, need_people = minimum_crops()
    few = write_crops(tmp_path / "few", made_up_crops(need_crops - 2, 10))
    with pytest.raises(DataError, match=r"too few real crops: \d+ crops of \d+ people") as raised:
        load_real_crops(few, 100, 0, SIDE)
    assert str(few) in str(raised.value)
    one_person = write_crops(tmp_path / "one_person", made_up_crops(need_crops, 11), per_person=need_crops)
    with pytest.raises(DataError, match=f"needs at least {need_crops} crops of {need_people} people"):
        load_real_crops(one_person, 100, 0, SIDE)  # at most a few crops of one person count
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="too few real crops: 0 crops"):
        load_real_crops(empty, 100, 0, SIDE)
    wrong = write_crops(tmp_path / "wrong", made_up_crops(need_crops, 12))
    Image.new("RGB", (250, 250)).save(next((wrong / "person_000").iterdir()))
    with pytest.raises(DataError, match="expected 112x112 aligned crops") as raised:
        load_real_crops(wrong, 100, 0, SIDE)
    assert "person_000" in str(raised.value)


def test_cli_refuses_bad_real_crops_before_rendering(tmp_path, capsys):
    base = ["bench", "realism", "--device", "cpu", "--detect", "1", "--pairs", "1", "--phi-pairs", "1"]
    cli_error(capsys, base + ["--real-crops", tmp_path / "missing"], "real crops folder not found", "missing")
    few = write_crops(tmp_path / "few", made_up_crops(6, 13))
    cli_error(capsys, base + ["--real-crops", few], "too few real crops", str(few))
    cli_error(capsys, base + ["--real-crops", few, "--crops", "0"], "--crops", "positive integer")
    cli_error(capsys, base + ["--real-crops", few, "--crops", "5"], "--crops must be at least 20")


def test_cli_reports_the_image_section_with_real_crops(tmp_path, capsys):
    pytest.importorskip("dlib")
    from synface.__main__ import main

    real = write_crops(tmp_path / "real", made_up_crops(20, 14))
    code = main(["bench", "realism", "--device", "cpu", "--detect", "1", "--pairs", "1", "--phi-pairs", "1",
                 "--real-crops", str(real), "--crops", "20", "--seed", "3"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    section = result["image_realism"]
    assert section["renders"].startswith("20,") and section["synthetic_vs_real"]["crops"] == "20 + 20"
    assert section["real_crops"].startswith("20 crops of 10 people") and str(real) in section["real_crops"]
    assert section["synthetic_vs_real"]["accuracy"] >= 0.8  # renders against grainy colour blocks


def test_image_section_is_absent_without_real_crops():
    pytest.importorskip("dlib")
    from synface.bench.realism import bench_realism

    assert "image_realism" not in bench_realism(n_detect=1, n_pairs=1, n_phi_pairs=1, device="cpu")

