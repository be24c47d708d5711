"""The alignment calibration: its record, and its effect on both render paths (batch-exact)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from synface.face.model import KeepsBaseMesh
from synface.generator import FaceGenerator
from synface.render.alignment_calibration import (
    AXES, FEATURES, LANDMARKS, YAW_LIMIT, AlignmentCalibration, CalibrationError, template_eye_spacing,
    template_pixels,
)


def _constant(dx: float, dy: float, version: str = "test-shift") -> AlignmentCalibration:
    coefficients = np.zeros((LANDMARKS, AXES, len(FEATURES)))
    coefficients[:, 0, 0], coefficients[:, 1, 0] = dx, dy
    return AlignmentCalibration.from_array(coefficients, version)


def _posed(version: str = "test-posed") -> AlignmentCalibration:
    """A calibration whose offsets depend on every feature."""
    rng = np.random.default_rng(4)
    return AlignmentCalibration.from_array(rng.uniform(-0.05, 0.05, (LANDMARKS, AXES, len(FEATURES))), version)


def _render_with(gen: FaceGenerator, calibration: AlignmentCalibration, coeffs, fast_cpu: bool = True):
    saved, saved_fast = gen.pipeline.alignment_calibration, gen.fast_cpu
    gen.pipeline.alignment_calibration, gen.fast_cpu = calibration, fast_cpu
    try:
        return gen.render(coeffs)
    finally:
        gen.pipeline.alignment_calibration, gen.fast_cpu = saved, saved_fast


# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------
def test_a_calibration_round_trips_through_its_json_record() -> None:
    calibration = _posed()
    again = AlignmentCalibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert again == calibration
    assert torch.equal(again.array(), calibration.array())
    assert AlignmentCalibration.from_dict(AlignmentCalibration.none().to_dict()).is_none()


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(features=["1", "yaw"]), "features"),
    (lambda r: r.update(coefficients=r["coefficients"][:4]), "coefficients must be"),
    (lambda r: r["coefficients"][0][0].append(0.0), "coefficients must be"),
    (lambda r: r["coefficients"][1][1].__setitem__(2, float("nan")), "finite"),
    (lambda r: r["coefficients"][1][1].__setitem__(2, "0.1"), "finite"),
    (lambda r: r["coefficients"][1][1].__setitem__(2, True), "finite"),
    (lambda r: r["coefficients"][2][0].__setitem__(0, 3.0), "inter-ocular"),
    (lambda r: r.update(coefficients=None), "nested lists"),
    (lambda r: r.update(version="../x"), "version"),
    (lambda r: r.update(extra=1), "unknown fields"),
])
def test_bad_records_are_refused_by_name(change, message) -> None:
    record = _posed().to_dict()
    change(record)
    with pytest.raises(CalibrationError, match=message):
        AlignmentCalibration.from_dict(record)
    with pytest.raises(CalibrationError, match="JSON object"):
        AlignmentCalibration.from_dict([1, 2])


def test_offsets_hold_their_value_beyond_the_fitted_yaw_and_are_the_same_in_any_batch() -> None:
    calibration = _posed()
    pose = torch.tensor([[0.3, -0.1, 0.2], [YAW_LIMIT, 0.0, 0.0], [1.3, 0.0, 0.0], [-0.2, 0.05, 0.0]],
                        dtype=torch.float64)
    batch = calibration.offsets(pose)
    assert batch.shape == (4, LANDMARKS, 2) and batch.dtype == torch.float64
    assert torch.equal(batch[1], batch[2])  # clamped at the limit
    for i in range(4):
        assert torch.equal(calibration.offsets(pose[i:i + 1])[0], batch[i])


def test_the_template_is_in_pixel_index_coordinates() -> None:
    """A landmark on pixel (i, j) is at x = j for detectors and the template, at j + 0.5 for the
    rasteriser (pixel centres)."""
    from synface.render.camera import ARCFACE_TEMPLATE

    assert torch.allclose(template_pixels(112) - 0.5, ARCFACE_TEMPLATE)
    assert template_eye_spacing(224) == pytest.approx(2 * template_eye_spacing(112))


# ---------------------------------------------------------------------------------------------
# The renderer applies it
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fast_cpu", [True, False], ids=["fused-cpu", "torch"])
def test_a_constant_offset_moves_the_face_the_other_way_in_both_render_paths(gen: FaceGenerator, fast_cpu: bool) -> None:
    """Aligning points that lie 0.1 inter-ocular distances right of the landmarks onto the
    template moves the face 0.1 inter-ocular distances left, in either path."""
    coeffs = gen.sample(4, seed=3)
    coeffs = coeffs.replace(jitter=torch.zeros_like(coeffs.jitter))
    plain = _render_with(gen, AlignmentCalibration.none(), coeffs, fast_cpu)
    shifted = _render_with(gen, _constant(0.1, -0.05), coeffs, fast_cpu)
    iod = template_eye_spacing(gen.image_size)
    moved = shifted.landmarks - plain.landmarks
    assert torch.allclose(moved, torch.tensor([-0.1 * iod, 0.05 * iod]).expand_as(moved), atol=2e-3)
    assert not torch.equal(shifted.images, plain.images)


def test_a_posed_calibration_gives_the_same_pixels_in_both_paths_within_rounding(gen: FaceGenerator) -> None:
    coeffs = gen.sample(6, seed=8)
    fused = _render_with(gen, _posed(), coeffs, True)
    reference = _render_with(gen, _posed(), coeffs, False)
    assert torch.allclose(fused.landmarks, reference.landmarks, atol=1e-3)
    diff = (fused.images.float() - reference.images.float()).abs()
    assert diff.mean() < 1.0 and torch.quantile(diff.flatten(), 0.99) <= 3.0


def test_a_calibrated_image_is_the_same_alone_or_in_any_batch(gen: FaceGenerator) -> None:
    coeffs = gen.sample(23, seed=41)
    calibration = _posed()
    full = _render_with(gen, calibration, coeffs)
    for start, stop in ((0, 1), (1, 6), (6, 23), (22, 23)):
        part = _render_with(gen, calibration, coeffs[start:stop])
        assert torch.equal(part.images, full.images[start:stop]), f"images {start}:{stop}"
        assert torch.equal(part.landmarks, full.landmarks[start:stop])


def test_the_builtin_head_renders_with_its_own_calibration(gen: FaceGenerator) -> None:
    from synface.face.builtin import GENERATOR_MODEL_VERSION
    from synface.face.builtin_alignment import BUILTIN_ALIGNMENT
    from synface.render.pipeline import RENDERER_REVISION

    assert gen.pipeline.alignment_calibration is BUILTIN_ALIGNMENT and not BUILTIN_ALIGNMENT.is_none()
    assert gen.model.version == GENERATOR_MODEL_VERSION and gen.version == f"{GENERATOR_MODEL_VERSION}+{RENDERER_REVISION}"
    coeffs = gen.sample(2, seed=5)
    assert not torch.equal(gen.render(coeffs).images, _render_with(gen, AlignmentCalibration.none(), coeffs).images)


def test_models_on_another_models_mesh_take_its_calibration_unless_they_carry_their_own(gen: FaceGenerator) -> None:
    class OnBase(KeepsBaseMesh):
        def __init__(self, base) -> None:
            self.base = base

    model = OnBase(gen.model)
    assert model.alignment_calibration is gen.model.alignment_calibration
    own = _posed("own")
    model.own_alignment_calibration = own
    assert model.alignment_calibration is own
    assert OnBase(gen.model).alignment_calibration is gen.model.alignment_calibration  # not shared


def test_zoom_and_shift_offsets_zoom_about_the_eye_midpoint_and_shift_the_face(gen: FaceGenerator) -> None:
    from synface.fitting.alignment import zoom_and_shift

    coeffs = gen.neutral(gen.sample(3, seed=12))
    plain = _render_with(gen, AlignmentCalibration.none(), coeffs).landmarks.double()
    zoom, shift = 1.05, np.array([1.0, -2.0])
    offsets = np.zeros((LANDMARKS, AXES, len(FEATURES)))
    offsets[..., 0] = zoom_and_shift(zoom, shift)
    moved = _render_with(gen, AlignmentCalibration.from_array(offsets, "zoom"), coeffs).landmarks.double()
    eye_mid = template_pixels(112, dtype=torch.float64)[:2].mean(0)
    expected = eye_mid + zoom * (plain - eye_mid - torch.from_numpy(shift))
    # exact for faces on the template; a neutral face's landmarks are within a few pixels of it
    assert (moved - expected).norm(dim=-1).max() < 0.3
    spacing = (moved[:, 1] - moved[:, 0]).norm(dim=-1) / (plain[:, 1] - plain[:, 0]).norm(dim=-1)
    assert math.isclose(float(spacing.mean()), zoom, rel_tol=1e-3)
