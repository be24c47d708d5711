"""`bench selfswap`: people's own fitted faces drawn into their own photos, verified by dlib."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import LFW_ROOT, requires_lfw


@pytest.mark.slow
@requires_lfw
def test_a_self_composite_keeps_the_photo_around_the_face_and_the_persons_identity(gen) -> None:
    from synface.bench.selfswap import self_images
    from synface.data.imageio import read_rgb
    from synface.data.realface import aligned_descriptor
    from synface.fitting.landmarks import calibrate_landmark_vertices, photo_landmarks
    from synface.fitting.reconstruct import fit_photo
    from synface.fitting.unwrap import texel_geometry

    ids, _ = calibrate_landmark_vertices(gen)
    geo = texel_geometry(gen)
    sets = []
    for name in ("Zico/Zico_0001.jpg", "Timothy_Rigas/Timothy_Rigas_0001.jpg"):
        image = np.asarray(read_rgb(LFW_ROOT / "images" / name))
        fit = fit_photo(gen, image, photo_landmarks(image) + 0.5, ids, geo, warp=False)
        sets.append(self_images(gen, fit, image, 75, seed=1))
    for images in sets:
        original, drawn = images["original"].astype(int), images["self_composite_unmatched"].astype(int)
        assert np.abs(original[:10, :10] - drawn[:10, :10]).max() <= 1  # the photo's corner, untouched
        assert np.abs(original[50:70, 44:68] - drawn[50:70, 44:68]).mean() > 1  # the face is drawn
    a, b = ({k: aligned_descriptor(v) for k, v in images.items()} for images in sets)
    # each self-composite is nearer its own photo than the other person's
    assert np.linalg.norm(a["self_composite"] - a["original"]) < np.linalg.norm(a["self_composite"] - b["original"])
    assert np.linalg.norm(b["self_composite"] - b["original"]) < np.linalg.norm(b["self_composite"] - a["original"])


@pytest.mark.slow
@requires_lfw
def test_bench_selfswap_reports_every_variant_beside_the_original() -> None:
    from synface.bench.selfswap import VARIANTS, bench_selfswap

    result = bench_selfswap(str(LFW_ROOT), folds=[4], people=3, others=1, seed=0)
    assert result["people"] == 3 and set(VARIANTS) <= set(result)
    for variant in VARIANTS:
        assert 0.0 <= result[variant]["verified"] <= 1.0 and result[variant]["genuine_pairs"] == 3
        assert 0.0 <= result[variant]["false_accept"] <= 1.0
    assert isinstance(result["bar_within_2_points"], bool)
    assert "distance_minus_original_ci95" in result["self_composite"]


def test_bad_selfswap_input_is_named(tmp_path, capsys) -> None:
    from tests.support import cli_error

    cli_error(capsys, ["bench", "selfswap", "--photos", tmp_path / "nowhere"], "not found")
    cli_error(capsys, ["bench", "selfswap", "--photos", tmp_path, "--people", "1"], "at least 2")
    from PIL import Image

    for person in "abcdefghijkl":  # one photo each: nobody to verify against
        (tmp_path / person).mkdir()
        Image.new("RGB", (64, 64), (120, 100, 90)).save(tmp_path / person / "1.jpg")
    cli_error(capsys, ["bench", "selfswap", "--photos", tmp_path], "fewer than 2 people with two or more photos")


@requires_lfw
def test_write_sets_redraws_every_photo_in_three_folders_and_resumes(tmp_path) -> None:
    from PIL import Image

    from synface.bench.selfswap_sets import SET_VARIANTS, write_self_sets

    photos = tmp_path / "photos"
    people = sorted(p.name for p in (LFW_ROOT / "images").iterdir())[:10]
    for name in people:  # ten people, their first photo each
        (photos / name).mkdir(parents=True)
        first = sorted((LFW_ROOT / "images" / name).glob("*.jpg"))[0]
        (photos / name / first.name).write_bytes(first.read_bytes())
    Image.new("RGB", (250, 250), (120, 120, 120)).save(photos / people[0] / "blank_0009.jpg")  # no face in it
    out = tmp_path / "sets"
    (photos / people[1] / "broken_0007.jpg").write_bytes(b"not a jpeg")
    first = write_self_sets(photos, out, workers=1)
    assert first["photos"] == 12 and first["written_now"] == 10 and first["no_face_found"] == 1
    assert first["unreadable"] == 1
    files = {v: sorted(p.relative_to(out / v) for p in (out / v).rglob("*.jpg")) for v in SET_VARIANTS}
    assert len(files["original"]) == 10 and files["original"] == files["self_composite"] == files["self_plain"]
    assert not any("blank" in str(p) for p in files["original"])
    with Image.open(out / "self_composite" / files["original"][0]) as im:
        assert im.size == (112, 112)
    again = write_self_sets(photos, out, workers=1)  # resumed: nothing redrawn, the faceless photo tried again
    assert again["present_before"] == 10 and again["written_now"] == 0 and again["no_face_found"] == 1
    with pytest.raises(ValueError, match="other photos, folds or seed"):  # one folder, one draw
        write_self_sets(photos, out, workers=1, seed=1)
    Image.new("RGB", (250, 250)).save(photos / people[2] / "twin.png")
    Image.new("RGB", (250, 250)).save(photos / people[2] / "twin.jpg")
    with pytest.raises(ValueError, match="two photos of one name"):
        write_self_sets(photos, tmp_path / "other", workers=1)


def test_write_sets_input_is_named(tmp_path, capsys) -> None:
    from tests.support import cli_error

    (tmp_path / "file").write_text("x")
    cli_error(capsys, ["bench", "selfswap", "--photos", tmp_path / "nowhere", "--write-sets", tmp_path / "o"],
              "not found")
    cli_error(capsys, ["bench", "selfswap", "--photos", tmp_path, "--write-sets", tmp_path / "o", "--seed", "-1"],
              "--seed")
    cli_error(capsys, ["bench", "selfswap", "--photos", tmp_path, "--workers", "2"], "--write-sets only")
