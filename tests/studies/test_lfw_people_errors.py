"""A person whom people.txt names but who has no images is an error naming the person and the file,
never a silently smaller training or test set (issue 16 item 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.data.errors import DataError
from synface.studies.plan import DatasetStep
from synface.studies.run import prepare_lfw


def _lfw(root: Path, people: list[str], with_images: list[str]) -> Path:
    rng = np.random.default_rng(0)
    for name in with_images:
        (root / "images" / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "images" / name / f"{name}_0001.jpg")
    (root / "people.txt").write_text("1\n" + f"{len(people)}\n" + "".join(f"{n}\t1\n" for n in people))
    (root / "pairs.txt").write_text("1\n")
    return root


def test_a_training_person_without_images_is_named(tmp_path) -> None:
    lfw = _lfw(tmp_path / "lfw", ["Ann", "Ghost", "Bob"], ["Ann", "Bob"])
    (lfw / "images" / "Empty").mkdir()
    step = DatasetStep("real", "real-train", str(tmp_path / "ws" / "real"), 3, {"people_folds": [0]})
    with pytest.raises(DataError) as info:
        prepare_lfw(step, lfw)
    message = str(info.value)
    assert str(lfw / "people.txt") in message and "1 person named here has no images" in message
    assert "Ghost" in message and "Ann" not in message
    assert not (tmp_path / "ws").exists()  # nothing staged or aligned


def test_several_missing_people_are_counted(tmp_path) -> None:
    lfw = _lfw(tmp_path / "lfw", ["Ann", "Gus", "Hal"], ["Ann"])
    step = DatasetStep("real", "real-train", str(tmp_path / "ws" / "real"), 3, {"people_folds": [0]})
    with pytest.raises(DataError, match="2 people named here have no images under .*: Gus, Hal"):
        prepare_lfw(step, lfw)
