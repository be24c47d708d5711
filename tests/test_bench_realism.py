"""The realism benchmark's protocol on a handful of renders (dlib's real-photo models)."""

import pytest

from synface.bench import bench_realism


def test_bench_realism_reports_rates_and_both_phi_curves():
    pytest.importorskip("dlib")
    result = bench_realism(n_detect=4, n_pairs=4, n_phi_pairs=3)
    assert 0.0 <= result["detect_exactly_one"] <= 1.0
    assert result["detect_exactly_one"] + result["detect_none"] + result["detect_multiple"] == pytest.approx(1.0)
    assert 0.5 <= result["verification_accuracy"] <= 1.0  # best threshold is never below chance
    same, own = result["phi_mean_dist_to_A"], result["phi_mean_dist_to_A_own_attributes"]
    assert len(same) == len(own) == len(result["phi_grid"]) == 11
    # the same-attribute reference is the phi = 1 render itself; A under other attributes is not
    assert same[0] == 0.0 and own[0] > 0.05
    assert same[-1] > 0.1  # phi = 0 is identity B
