"""`bench mixup`: detection and steadiness along identity mixup strips."""

from __future__ import annotations

import json

import numpy as np

from synface.bench.mixup import strip_statistics
from tests.support import HAVE_DLIB


def test_a_strip_is_steady_only_when_it_moves_from_b_to_a() -> None:
    steps = np.linspace(0, 1, 11)
    a, b = np.zeros(128), np.ones(128) * 0.1
    straight = np.stack([[b + t * (a - b) for t in steps]])  # (1, 11, 128): a straight walk from B to A
    found = np.ones((1, 11), np.int64)
    stats = strip_statistics(straight, found)
    assert stats["steady_strips"] == 1.0 and stats["one_face"] == 1.0 and stats["largest_wrong_step"] < 1e-9
    back = straight.copy()
    back[0, 5] = b  # halfway, the face jumps back to B
    found[0, 3] = 2
    stats = strip_statistics(back, found)
    assert stats["steady_strips"] == 0.0 and stats["several_faces"] == round(1 / 11, 4)
    assert stats["largest_wrong_step"] > 0.4


def test_the_cli_reports_strips(capsys) -> None:
    import pytest

    if not HAVE_DLIB:
        pytest.skip("dlib missing")
    from synface.__main__ import main

    assert main(["bench", "mixup", "--strips", "2", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["strips"] == 2 and len(report["mean_dist_to_a"]) == 11 and 0 <= report["one_face"] <= 1
