"""The realism benchmark's protocol on a handful of renders (dlib's real-photo models)."""

import pytest
import torch

from synface.bench.realism import bench_realism


def test_bench_realism_reports_rates_and_both_phi_curves():
    pytest.importorskip("dlib")
    ticks: list[tuple] = []
    result = bench_realism(n_detect=4, n_pairs=4, n_phi_pairs=3, progress=lambda *t: ticks.append(t))
    stages: dict[str, list[tuple]] = {}
    for stage, done, total in ticks:
        stages.setdefault(stage, []).append((done, total))
    assert set(stages) == {"render detect", "detect", "render verify", "verify", "phi"}  # progress in every stage
    assert all(seen[-1][0] == seen[-1][1] for seen in stages.values()), stages  # every bar ends full
    assert stages["render detect"][0] == (0, 4) and stages["render verify"][-1] == (16, 16)
    assert 0.0 <= result["detect_exactly_one"] <= 1.0
    assert result["detect_exactly_one"] + result["detect_none"] + result["detect_multiple"] == pytest.approx(1.0)
    assert 0.5 <= result["verification_accuracy"] <= 1.0  # best threshold is never below chance
    same, own = result["phi_mean_dist_to_A"], result["phi_mean_dist_to_A_own_attributes"]
    assert len(same) == len(own) == len(result["phi_grid"]) == 11
    # the same-attribute reference is the phi = 1 render itself; A under other attributes is not
    assert same[0] == 0.0 and own[0] > 0.05
    assert same[-1] > 0.1  # phi = 0 is identity B


def test_real_pairs_reference_uses_the_same_protocol(tmp_path):
    """A .bin of renders as 'real' pairs: identical images give distance 0, and the
    reference fields appear in the result."""
    pytest.importorskip("dlib")
    import io

    from PIL import Image

    from synface.data.verification_bin import write_bin
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu")
    images = gen.render(gen.sample(3, 5)).images.numpy()

    def png(i: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="PNG")
        return buf.getvalue()

    # pairs: (0,0) same, (1,1) same, (0,2) different, (1,2) different
    write_bin(tmp_path / "real.bin", [png(0), png(0), png(1), png(1), png(0), png(2), png(1), png(2)],
              [True, True, False, False])
    result = bench_realism(n_detect=2, n_pairs=2, n_phi_pairs=2, real_pairs=str(tmp_path / "real.bin"))
    assert result["real_genuine_dist_mean"] == 0.0
    assert result["real_impostor_dist_mean"] > 0.1
    assert result["real_verification_accuracy"] == 1.0
    assert result["real_pairs"].startswith("2 genuine + 2 impostor")


def test_identity_scale_spreads_identities_and_rejects_nonsense():
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu")
    base = gen.sample(3, 5)
    wide = gen.sample(3, 5, identity_scale=2.0)
    assert torch.allclose(wide.shape, base.shape * 2) and torch.allclose(wide.albedo, base.albedo * 2)
    assert torch.equal(wide.pose, base.pose)  # attributes are not spread
    assert gen.sample(3, 5, identity_scale=0.0).shape.abs().max() == 0
    with pytest.raises(ValueError, match="identity_scale"):
        gen.sample(3, 5, identity_scale=float("nan"))


def test_bench_realism_records_identity_scale():
    pytest.importorskip("dlib")
    result = bench_realism(n_detect=2, n_pairs=2, n_phi_pairs=2, identity_scale=0.0)
    assert result["identity_scale"] == 0.0
    # every identity is the mean face: "impostors" differ only by their attributes, like genuine pairs
    assert result["impostor_dist_mean"] < 0.5


def test_identity_power_separates_a_feature_from_the_back_of_the_head():
    pytest.importorskip("dlib")
    from synface.bench.identity import bench_identity

    result = bench_identity(n_identities=2, coefficients=["head_depth", "eye_spacing"])
    power = {row["coefficient"]: row["distance"] for row in result["coefficients"]}
    assert result["coefficients"][0]["coefficient"] == "eye_spacing"  # sorted, strongest first
    assert power["eye_spacing"] > power["head_depth"] + 0.1  # the back of the head is out of view
    assert result["reference_impostor_neutral"] > 0.1 and result["reference_attributes_only"] > 0.05
    with pytest.raises(ValueError, match="no_such_field"):
        bench_identity(n_identities=2, coefficients=["no_such_field"])


def test_frechet_report_splits_a_shift_from_a_change_of_spread():
    import numpy as np

    from synface.bench.realism import frechet_distance, frechet_parts, frechet_report

    rng = np.random.default_rng(0)
    real = rng.normal(size=(4000, 4))
    shifted = rng.normal(size=(4000, 4)) + np.array([0.5, 0.0, 0.0, 0.0])
    widened = rng.normal(size=(4000, 4)) * 2.0
    mean_term, cov_term = frechet_parts(shifted, real)
    assert mean_term == pytest.approx(0.25, abs=0.05) and cov_term < 0.02  # a shift shows in the mean term
    mean_term, cov_term = frechet_parts(widened, real)
    assert mean_term < 0.02 and cov_term == pytest.approx(4.0, abs=0.3)  # (2 - 1)^2 per dimension
    report = frechet_report(widened, real)
    assert report["frechet_to_real"] == pytest.approx(frechet_distance(widened, real), abs=1e-3)
    assert report["frechet_to_real"] == pytest.approx(report["frechet_mean_term"] + report["frechet_cov_term"], abs=2e-4)
    assert 0 < report["frechet_real_split_half"] < 0.05  # two halves of one population: sampling only
    assert frechet_report(widened, real[:3])["frechet_real_split_half"] is None  # a half of 1 has no covariance
