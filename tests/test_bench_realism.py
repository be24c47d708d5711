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
