"""Attribute controls in degrees and plain weights, and the face `FaceGenerator.compose` makes of them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from synface.face.controls import FaceControls, hex_to_rgb, picked_identity, region_picks, rgb_to_hex
from synface.generator import FaceGenerator


@pytest.fixture(scope="module")
def gen() -> FaceGenerator:
    return FaceGenerator("cpu")


def test_compose_mixes_the_identities_and_poses_the_face_as_the_controls_say(gen):
    a, b = gen.sample(1, 1), gen.sample(1, 2)
    expr = tuple((info.low + info.high) / 2 for info in gen.model.expr_info)
    controls = FaceControls(pose_deg=(30.0, -10.0, 5.0), expr=expr, light_yaw_deg=20.0)
    face, notes = gen.compose(a, b, 0.25, controls)
    assert notes == []
    assert torch.allclose(face.shape, 0.25 * a.shape + 0.75 * b.shape, atol=1e-6)
    assert torch.allclose(face.albedo, 0.25 * a.albedo + 0.75 * b.albedo, atol=1e-6)
    assert torch.allclose(face.pose, torch.tensor([[math.radians(30.0), math.radians(-10.0), math.radians(5.0)]]))
    assert torch.allclose(face.expr, torch.tensor([expr]))
    assert torch.count_nonzero(face.jitter) == 0 and torch.equal(face.background, a.background)
    assert gen.render(face).images.shape == (1, 112, 112, 3)


def test_compose_clamps_what_lies_outside_the_prior_and_says_so(gen):
    a = gen.sample(1, 3)
    face, notes = gen.compose(a, a, 1.0, FaceControls(pose_deg=(120.0, 0.0, 0.0)))
    assert any("pose clamped" in n for n in notes)
    assert float(face.pose[0, 0]) < math.radians(120.0)
    assert torch.count_nonzero(face.expr) == 0  # no expression weights: neutral
    with pytest.raises(ValueError, match="phi must lie in"):
        gen.compose(a, a, 1.5, FaceControls())
    with pytest.raises(ValueError, match="2 expression weights; this model has"):
        gen.compose(a, a, 1.0, FaceControls(expr=(0.0, 0.0)))


def test_controls_read_back_from_drawn_attributes_give_the_same_face(gen):
    attrs = gen.sample_attributes(4, 11)
    for i in range(4):
        controls = FaceControls.from_attributes(attrs, i)
        back = controls.attributes(attrs["jitter"].shape[1], attrs["expr"].shape[1])
        assert torch.allclose(back["pose"], attrs["pose"][i:i + 1], atol=1e-5)
        assert torch.allclose(back["expr"], attrs["expr"][i:i + 1], atol=1e-6)
        assert all(0.0 <= c <= 1.0 for c in controls.colour)
        assert back["light"].shape == attrs["light"][i:i + 1].shape


def test_neutral_controls_light_the_face_from_the_front():
    neutral = FaceControls()
    sh = neutral.attributes(4, 2)["light"]
    again = FaceControls.from_attributes({"light": sh, "pose": torch.zeros(1, 3), "expr": torch.zeros(1, 0)})
    assert again.light_yaw_deg == pytest.approx(0.0, abs=0.5)
    assert again.light_pitch_deg == pytest.approx(neutral.light_pitch_deg, abs=0.5)
    assert again.intensity == pytest.approx(neutral.intensity, abs=0.01)
    assert again.ambient == pytest.approx(neutral.ambient, abs=0.01)


def test_colours_convert_both_ways_and_a_bad_one_is_named():
    assert rgb_to_hex((1.0, 1.0, 1.0)) == "#FFFFFF"
    assert hex_to_rgb("#FF8000") == pytest.approx((1.0, 128 / 255, 0.0))
    assert rgb_to_hex(hex_to_rgb("#12AB9c")) == "#12AB9C"
    for bad in ("#FFF", "#GGGGGG", "red"):
        with pytest.raises(ValueError, match="is not #RRGGBB"):
            hex_to_rgb(bad)


def test_a_learned_identity_picks_one_bank_person_per_region():
    model = SimpleNamespace(regions=3, people=5, version="test-1")
    shape, albedo = picked_identity(model, (0.5, -1.0), (4, 0, 2))
    assert shape.shape == (1, 2) and shape.dtype == torch.float32
    assert albedo.shape == (1, 15) and float(albedo.sum()) == 3.0
    assert region_picks(model, albedo[0]) == [4, 0, 2]
    with pytest.raises(ValueError, match="one of 5 bank people for each of its 3 regions"):
        picked_identity(model, (0.0,), (5, 0, 0))
    with pytest.raises(ValueError, match="regions"):
        picked_identity(model, (0.0,), (1, 2))
