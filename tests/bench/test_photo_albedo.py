"""PhotoAlbedoModel and bench photo: real appearance carried through the built-in renderer."""

import numpy as np
import pytest
import torch
from PIL import Image

from synface.bench.photo_albedo import (
    PhotoAlbedoModel,
    one_hot_identities,
    vertex_colours_from_photos,
)
from synface.generator import FaceGenerator


def _mean_shape_photos(gen, n, seed):
    """Neutral frontal renders of built-in identities on the mean shape: 'photos' whose true
    per-vertex colours the photo model should recover."""
    c = gen.neutral(gen.sample(n, seed))
    c = c.replace(shape=torch.zeros_like(c.shape))
    return c, gen.render(c).images


def test_photo_identity_re_renders_its_photo(gen):
    coeffs, photos = _mean_shape_photos(gen, 3, 5)
    photo_gen = FaceGenerator(device="cpu", model=PhotoAlbedoModel(gen.model, vertex_colours_from_photos(gen, photos)))
    again = photo_gen.render(coeffs.replace(albedo=one_hot_identities(3, 3))).images.float()
    face = (photos.float() - gen.render(coeffs.replace(background=coeffs.background * 0 + 1)).images.float()).abs().sum(-1) == 0
    own = (again - photos.float()).abs().mean(-1)[face].mean()
    swapped = (again.roll(1, 0) - photos.float()).abs().mean(-1)[face].mean()
    assert own < 4.0, f"a photo identity differs from its own photo by {own:.1f} grey levels on the face"
    assert swapped > 3 * own  # and it is that photo's appearance, not any face's


def test_prior_draws_one_photo_per_identity_and_mixup_blends_photos(gen):
    _, photos = _mean_shape_photos(gen, 4, 6)
    photo_gen = FaceGenerator(device="cpu", model=PhotoAlbedoModel(gen.model, vertex_colours_from_photos(gen, photos)))
    drawn = photo_gen.sample(400, 1).albedo
    assert torch.equal(drawn.sum(1), torch.ones(400)) and set(drawn.unique().tolist()) == {0.0, 1.0}
    counts = drawn.sum(0)
    assert counts.min() > 60  # about 100 each: uniform over the photos
    a, b = photo_gen.sample(2, 2), photo_gen.sample(2, 3)
    half = FaceGenerator.mix(a, b, 0.5)
    assert torch.allclose(half.albedo, 0.5 * a.albedo + 0.5 * b.albedo)
    assert photo_gen.render(half).images.shape == (2, 112, 112, 3)


def test_version_names_the_photos_and_bad_input_is_named(gen):
    _, photos = _mean_shape_photos(gen, 2, 7)
    colours = vertex_colours_from_photos(gen, photos)
    one, other = PhotoAlbedoModel(gen.model, colours), PhotoAlbedoModel(gen.model, colours.flip(0))
    assert one.version.startswith(gen.model.version + "+photos-2-") and one.version != other.version
    assert FaceGenerator(device="cpu", model=one).version.startswith(one.version + "+render-")
    with pytest.raises(ValueError, match="uint8 square crops"):
        vertex_colours_from_photos(gen, photos.float())
    with pytest.raises(ValueError, match="uint8 square crops"):
        vertex_colours_from_photos(gen, photos[:, :, :100])
    with pytest.raises(ValueError, match=r"colours must be \(photos, 6553, 3\)"):
        PhotoAlbedoModel(gen.model, colours[:, :100])
    with pytest.raises(ValueError, match="3 identities need as many photos"):
        one_hot_identities(3, 2)


def test_bench_photo_on_a_folder_of_renders(tmp_path, gen):
    pytest.importorskip("dlib")
    from synface.bench.photo import bench_photo

    _, photos = _mean_shape_photos(gen, 4, 8)
    for i, image in enumerate(photos.numpy()):
        (tmp_path / f"person_{i}").mkdir()
        Image.fromarray(np.ascontiguousarray(image)).resize((150, 150)).save(tmp_path / f"person_{i}" / "0.png")
    result = bench_photo(tmp_path, identities=4, mean_shape=True, region="inner-face", device="cpu")
    assert result["identities"] == 4 and result["shapes"] == "mean shape"
    assert result["photo_colours"] == "only in region 'inner-face', built-in elsewhere"
    for key in ("photo_identities", "builtin_identities", "builtin_colours_photo_path"):
        stats = result[key]
        assert 0.5 <= stats["verification_accuracy"] <= 1.0
        assert 0 < stats["genuine_dist_mean"] < 1.5 and 0 < stats["impostor_dist_mean"] < 1.5


def test_region_masks_pick_the_seen_vertices_in_that_part_of_the_crop(gen):
    from synface.bench.photo_albedo import seen_vertices_in_region

    masks = {r: seen_vertices_in_region(gen, r) for r in ("inner-face", "eyes", "nose", "mouth")}
    assert all(int(m.sum()) > 50 for m in masks.values())
    assert not (masks["eyes"] & masks["mouth"]).any()  # the boxes do not overlap
    inner = masks["inner-face"]
    assert (masks["nose"] & ~inner).sum() < 0.1 * masks["nose"].sum()  # the nose lies in the inner face
    # only vertices a frontal photo sees: none from the back of the head
    verts = gen.model.geometry(torch.zeros(1, gen.layout.shape), torch.zeros(1, gen.layout.expr))[0]
    assert (verts[inner, 2] > 0).all()
    with pytest.raises(ValueError, match="unknown region 'ears'"):
        seen_vertices_in_region(gen, "ears")


def test_bench_photo_names_a_folder_with_too_few_people(tmp_path):
    pytest.importorskip("dlib")
    from synface.bench.photo import bench_photo
    from synface.data.errors import DataError

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (112, 112)).save(tmp_path / name / "0.png")
    with pytest.raises(DataError, match="only 2 identities have at least 1 images; the impostor pairs need 3 people"):
        bench_photo(tmp_path, identities=5, device="cpu")
