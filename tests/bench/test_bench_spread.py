"""bench spread: between- vs within-identity statistics of descriptors, renders and real folders."""

import numpy as np
import pytest
from PIL import Image

from synface.bench.spread import TOP_WITHIN_DIRECTIONS, bench_spread, spread_statistics
from synface.data.errors import DataError


def _gaussian_set(rng, m, r, d, between_std, within_std):
    means = rng.normal(size=(m, 1, d)) * between_std
    return means + rng.normal(size=(m, r, d)) * within_std


def test_statistics_recover_known_between_and_within_variance():
    rng = np.random.default_rng(0)
    stats = spread_statistics(_gaussian_set(rng, 400, 5, 16, between_std=0.2, within_std=0.1))
    assert stats["within_variance"] == pytest.approx(16 * 0.01, rel=0.1)
    # the finite-R correction removes within/R from the spread of identity means
    assert stats["between_variance"] == pytest.approx(16 * 0.04, rel=0.15)
    assert stats["between_to_within"] == pytest.approx(4.0, rel=0.2)
    assert stats["identities"] == 400 and stats["images_per_identity"] == 5


def test_overlap_says_whether_identities_differ_where_attributes_move_them():
    rng = np.random.default_rng(1)
    m, r, d = 300, 4, 32
    k = TOP_WITHIN_DIRECTIONS
    noise = rng.normal(size=(m, r, d)) * 0.01
    noise[:, :, :k] += rng.normal(size=(m, r, k)) * 0.3  # attributes move identities along dims 0..k-1

    def with_identity(dims):
        means = np.zeros((m, 1, d))
        means[:, :, dims] = rng.normal(size=(m, 1, len(dims)))
        return means + noise

    aligned = spread_statistics(with_identity(list(range(k))))
    apart = spread_statistics(with_identity(list(range(k, 2 * k))))
    assert aligned["between_in_top_within"] > 0.9
    assert apart["between_in_top_within"] < 0.1
    assert aligned["within_top10_share"] > 0.9


def test_overlap_stays_a_share_when_few_identities_make_the_corrected_between_matrix_indefinite():
    rng = np.random.default_rng(2)
    for _ in range(20):
        stats = spread_statistics(rng.normal(size=(3, 2, 16)))
        assert 0.0 <= stats["between_in_top_within"] <= 1.0


def test_statistics_reject_a_set_that_cannot_be_split():
    with pytest.raises(ValueError, match="identities >= 3"):
        spread_statistics(np.zeros((2, 4, 8)))
    with pytest.raises(ValueError, match="images >= 2"):
        spread_statistics(np.zeros((5, 1, 8)))


def _folder_of_renders(root, images, copies=2):
    for i, image in enumerate(images):
        person = root / f"person_{i}"
        person.mkdir(parents=True)
        for j in range(copies):
            Image.fromarray(image).save(person / f"{j}.png")


def test_bench_spread_on_renders_and_a_real_style_folder(tmp_path):
    pytest.importorskip("dlib")
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu")
    images = gen.render(gen.neutral(gen.sample(3, 11))).images.numpy()
    _folder_of_renders(tmp_path / "real", images)  # each "person" is one image twice
    result = bench_spread(identities=3, draws=2, real=tmp_path / "real")
    assert result["generator"] == gen.version
    assert result["renders"]["within_variance"] > 0  # pose, light and expression move a render
    real = result["real"]
    assert real["within_variance"] == 0.0 and real["genuine_dist_mean"] == 0.0
    assert real["between_variance"] > 0 and real["impostor_dist_mean"] > 0.1


def test_bench_spread_names_bad_real_input(tmp_path):
    (tmp_path / "few" / "a").mkdir(parents=True)
    Image.new("RGB", (112, 112)).save(tmp_path / "few" / "a" / "0.png")
    with pytest.raises(DataError, match="only 0 identities have at least 2 images"):
        bench_spread(identities=3, draws=2, real=tmp_path / "few")

    pytest.importorskip("dlib")
    wide = tmp_path / "wide"
    for name in ("a", "b", "c"):
        (wide / name).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (150, 112)).save(wide / name / f"{j}.png")
    with pytest.raises(DataError, match=r"a[/\\]0\.png.*square aligned face crop"):
        bench_spread(identities=3, draws=2, real=wide)


def test_region_masks_keep_their_features_and_grey_the_rest():
    from synface.bench.crop_regions import MASK_GREY, REGIONS, mask_to_region

    assert set(REGIONS) == {"inner-face", "eyes", "nose", "mouth"}
    for size in (112, 224):
        image = np.full((size, size, 3), 7, dtype=np.uint8)
        kept = {name: mask_to_region(image, name)[..., 0] == 7 for name in REGIONS}
        assert image[0, 0, 0] == 7  # the input is untouched
        face = kept["inner-face"]
        assert not face[0, 0] and not face[-1, -1] and (mask_to_region(image, "inner-face")[0, 0] == MASK_GREY).all()
        assert 0.3 < face.mean() < 0.55  # an ellipse of about 0.46 of the crop
        # ArcFace template points, scaled: left eye, nose tip, left mouth corner
        eye, nose, mouth = [(int(size * y / 112), int(size * x / 112)) for x, y in ((38.3, 51.7), (56.0, 71.7), (41.5, 92.4))]
        assert face[eye] and face[nose] and face[mouth]
        assert kept["eyes"][eye] and not kept["eyes"][nose] and not kept["eyes"][mouth]
        assert kept["nose"][nose] and not kept["nose"][eye] and not kept["nose"][mouth]
        assert kept["mouth"][mouth] and not kept["mouth"][eye] and not kept["mouth"][nose]
    with pytest.raises(ValueError, match="unknown region 'ears'"):
        mask_to_region(image, "ears")
    with pytest.raises(ValueError, match="unknown region 'ears'"):
        bench_spread(identities=3, draws=2, region="ears")
