"""The readers on the real LFW folds 1-5 in shared/data/lfw (skipped where that copy is absent)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.data.imagefolder import ImageFolderIndex
from synface.data.lfw import (
    LFWLayout,
    lfw_verification_pairs,
    people_of_folds,
    read_pairs,
    read_people,
)
from synface.data.subsets import real_subset
from synface.data.verification_bin import read_bin, write_bin
from tests.support import LFW_ROOT

if not (LFW_ROOT / "pairs.txt").is_file():
    pytest.skip(f"LFW copy not found at {LFW_ROOT} (set SYNFACE_LFW)", allow_module_level=True)


@pytest.fixture(scope="module")
def pairs() -> list:
    return read_pairs(LFW_ROOT / "pairs.txt")


@pytest.fixture(scope="module")
def people() -> list:
    return read_people(LFW_ROOT / "people.txt")


def test_pairs_shape(pairs: list) -> None:
    assert len(pairs) == 5 * 600
    for fold in range(5):
        block = pairs[fold * 600 : (fold + 1) * 600]
        assert {p.fold for p in block} == {fold}
        assert [p.same for p in block] == [True] * 300 + [False] * 300
        assert all(p.name_a == p.name_b for p in block[:300])
        assert all(p.name_a != p.name_b for p in block[300:])


def test_people_folds_disjoint_and_match_pairs(pairs: list, people: list) -> None:
    assert len(people) == 5
    names = [set(people_of_folds(people, [f])) for f in range(5)]
    assert sum(len(s) for s in names) == len(set().union(*names)) == 2835
    assert sum(count for fold in people for _, count in fold) == 6165
    for p in pairs:
        assert p.name_a in names[p.fold] and p.name_b in names[p.fold], p


def test_every_pair_image_exists() -> None:
    verification = lfw_verification_pairs(LFW_ROOT)
    assert len(verification) == 3000 and verification.num_folds == 5
    assert np.bincount(verification.folds).tolist() == [600] * 5
    assert int(verification.issame.sum()) == 1500
    img = verification.load_image(0, "a")
    assert img.mode == "RGB" and img.size == (250, 250)


def test_people_counts_match_folders(people: list) -> None:
    layout = LFWLayout(LFW_ROOT)
    first = people[0][:25]
    found = layout.identity_images(name for name, _ in first)
    assert [len(found[name]) for name, _ in first] == [count for _, count in first]


def test_real_subset_from_people_folds(people: list) -> None:
    layout = LFWLayout(LFW_ROOT)
    names = people_of_folds(people, [0, 1, 2])  # people.txt folds 1-3
    images = layout.identity_images(names)
    subset = real_subset(images, r_id=50, k=4)
    assert subset.name == "Real_50_4" and len(subset) == 200
    assert list(subset.identities) == sorted(subset.identities)
    assert all(len(paths) == 4 for paths in subset.images)
    counts = dict(p for f in people[:3] for p in f)
    assert all(counts[name] >= 4 for name in subset.identities)
    assert real_subset(layout.identity_images(reversed(names)), 50, 4) == subset


def test_imagefolder_on_lfw_layout() -> None:
    index = ImageFolderIndex(LFWLayout(LFW_ROOT).images_root)
    assert index.num_identities == 2835 and len(index) == 6165 and index.skipped_empty == 0


def test_bin_of_first_fold_round_trip(tmp_path: Path) -> None:
    fold0 = lfw_verification_pairs(LFW_ROOT).select(slice(0, 600))
    bins = []
    for i in range(len(fold0)):
        for side in ("a", "b"):
            buf = io.BytesIO()
            fold0.load_image(i, side).resize((112, 112)).save(buf, "JPEG", quality=90)
            bins.append(buf.getvalue())
    path = tmp_path / "lfw_fold1.bin"
    write_bin(path, bins, fold0.issame.tolist())
    back = read_bin(path)
    assert [*back.images_a] == bins[0::2] and [*back.images_b] == bins[1::2]
    assert np.array_equal(back.issame, fold0.issame)
    assert np.bincount(back.folds).tolist() == [60] * 10
    assert np.asarray(back.load_image(7, "b")).shape == (112, 112, 3)
    Image.open(io.BytesIO(back.images_a[0])).verify()
