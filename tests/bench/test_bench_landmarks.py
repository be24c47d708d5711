"""bench landmarks: the fit's landmark source measured where the truth is known."""

from __future__ import annotations

import importlib.util

import pytest


def test_dlib_landmarks_recover_pose_on_renders() -> None:
    from synface.bench.landmarks import bench_landmarks

    record = bench_landmarks("dlib", renders=12, photos=0)
    assert record["points"] == 68 and record["renders"] == 12
    assert record["render_detected"] >= 0.75
    assert record["yaw_error_deg_median"] < 10.0  # the prior spreads yaw over +-30 degrees
    assert 0 < record["shape_error_iod_median"] < 1.0 and record["shape_error_of_mean_head_iod_median"] > 0
    assert "photos" not in record


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed here")
def test_mediapipe_absent_is_one_line_with_the_install_hint() -> None:
    from synface.bench.landmarks import bench_landmarks

    with pytest.raises(ValueError, match="pip install mediapipe==0.10.21"):
        bench_landmarks("mediapipe", renders=2)
    with pytest.raises(ValueError, match="choose from dlib, mediapipe"):
        bench_landmarks("openface", renders=2)
