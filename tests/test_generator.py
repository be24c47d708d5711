"""The face generator: mesh sanity, coefficients, mixup, determinism, both render paths, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from synface.base.device import resolve_device
from synface.face import prior as face_prior
from synface.face.coeffs import FaceCoeffs, FaceLayout
from synface.face.prior import LightControls
from synface.generator import FaceGenerator
from synface.render.camera import ARCFACE_TEMPLATE


# ---------------------------------------------------------------------------------------------
# Mesh and model
# ---------------------------------------------------------------------------------------------
def test_model_sizes_meet_the_spec(gen: FaceGenerator) -> None:
    model = gen.model
    assert model.num_vertices >= 5000
    assert gen.layout.shape >= 40 and gen.layout.albedo >= 40
    assert gen.layout.expr >= 10 and gen.layout.light == 27
    names = {c.name for c in model.expr_info}
    assert {"jaw_open", "smile", "frown", "brows_up", "brows_down", "blink_left", "lip_pucker", "cheek_raise"} <= names


def test_mesh_has_no_nans_and_consistent_winding(gen: FaceGenerator) -> None:
    verts = gen.model.geometry(torch.zeros(1, gen.layout.shape), torch.zeros(1, gen.layout.expr))[0]
    assert torch.isfinite(verts).all()
    faces = gen.model.faces.numpy()
    directed = Counter()
    for a, b, c in faces:
        for e in ((a, b), (b, c), (c, a)):
            directed[e] += 1
    # a consistently wound surface uses each directed edge at most once
    assert max(directed.values()) == 1
    # interior edges are used once in each direction
    both = sum(1 for (a, b) in directed if (b, a) in directed)
    assert both / len(directed) > 0.97


def test_normals_point_outward_and_match_face_averaging(gen: FaceGenerator) -> None:
    from synface.render.shading import vertex_normals

    coeffs = gen.sample(2, seed=3)
    verts = gen.model.geometry(coeffs.shape, coeffs.expr)
    grid = gen.model.vertex_normals(verts)
    generic = vertex_normals(verts, gen.model.faces)
    cos = (grid * generic).sum(-1)
    assert (cos > 0.9).float().mean() > 0.99
    # outward: the front of the face (nose tip) has a normal toward the viewer
    nose = gen.model.landmark_vertices[2]
    assert generic[0, nose, 2] > 0.5


def test_random_faces_stay_finite_at_the_prior_limits(gen: FaceGenerator) -> None:
    coeffs = gen.sample(4, seed=1)
    extreme = coeffs.replace(shape=torch.full_like(coeffs.shape, 3.0), albedo=torch.full_like(coeffs.albedo, -3.0))
    images = gen.render(extreme).images
    assert images.shape == (4, 112, 112, 3) and images.dtype == torch.uint8
    albedo = gen.model.albedo(extreme.albedo, extreme.expr)
    assert torch.isfinite(albedo).all() and albedo.min() >= 0 and albedo.max() <= 1


def test_prior_ties_hair_and_iris_colour_to_skin_tone_with_unit_marginals(gen: FaceGenerator) -> None:
    names = [info.name for info in gen.model.albedo_info]
    albedo = gen.sample_identities(20_000, seed=5)[1].cpu().numpy()
    tone = albedo[:, names.index("skin_tone")]
    for field in ("hair_lightness", "iris_darkness"):
        values = albedo[:, names.index(field)]
        assert np.corrcoef(tone, values)[0, 1] == pytest.approx(-0.5, abs=0.03)
        assert values.std() == pytest.approx(1.0, abs=0.05) and np.abs(values).max() <= 3.0
    # other traits stay independent of skin tone, and blond hair on dark skin becomes rare
    assert abs(np.corrcoef(tone, albedo[:, names.index("brow_darkness")])[0, 1]) < 0.03
    assert ((albedo[:, names.index("hair_lightness")] > 1.5) & (tone > 1.0)).mean() < 0.002
    # every way of drawing identities goes through that prior: sample, sample_identities, datasets
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    drawn = gen.draw_identities(3, g1)[1]
    assert torch.equal(drawn, gen.model.correlate_identity(*face_prior.sample_identity(gen.layout, 3, g2))[1])
    assert torch.equal(gen.sample(3, seed=4).albedo.cpu(), gen.sample_identities(3, seed=4)[1].cpu())


def test_albedo_evaluator_reads_coefficients_by_name(gen: FaceGenerator, monkeypatch) -> None:
    """The evaluator looks each coefficient up in ALBEDO_INDEX, so the model's names are the truth."""
    from synface.face import builtin_albedo

    names = [info.name for info in gen.model.albedo_info]
    assert {n: names.index(n) for n in builtin_albedo.ALBEDO_INDEX} == builtin_albedo.ALBEDO_INDEX
    c = torch.zeros(2, len(names))
    c[1, names.index("hair_lightness")] = 3.0  # identity 1: blond; skin tone 0 for both
    evaluator = gen.model._albedo
    assert not torch.allclose(evaluator.hair_colour(c)[0], evaluator.hair_colour(c)[1])
    assert torch.allclose(evaluator.skin_colour(c)[0], evaluator.skin_colour(c)[1])
    swapped = dict(builtin_albedo.ALBEDO_INDEX, skin_tone=names.index("hair_lightness"),
                   hair_lightness=names.index("skin_tone"))
    monkeypatch.setattr(builtin_albedo, "ALBEDO_INDEX", swapped)
    assert not torch.allclose(evaluator.skin_colour(c)[0], evaluator.skin_colour(c)[1])
    assert torch.allclose(evaluator.hair_colour(c)[0], evaluator.hair_colour(c)[1])


# ---------------------------------------------------------------------------------------------
# Coefficient container
# ---------------------------------------------------------------------------------------------
def test_coeffs_flat_round_trip_and_batching(gen: FaceGenerator) -> None:
    coeffs = gen.sample(5, seed=7)
    flat = coeffs.to_flat()
    assert flat.shape == (5, gen.layout.total)
    back = FaceCoeffs.from_flat(flat, gen.layout)
    for name in ("shape", "albedo", "expr", "light", "pose", "jitter", "background"):
        assert torch.equal(getattr(back, name), getattr(coeffs, name))
    assert len(coeffs[1:3]) == 2 and len(coeffs[[0, 4]]) == 2
    assert len(FaceCoeffs.cat([coeffs, coeffs[0]])) == 6
    assert len(gen.layout.column_names()) == gen.layout.total
    with pytest.raises(ValueError, match="expected"):
        FaceCoeffs.from_flat(flat[:, :-1], gen.layout)


def test_bad_coefficients_are_named(gen: FaceGenerator) -> None:
    coeffs = gen.sample(2, seed=0)
    bad = coeffs.clone()
    bad.pose[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"pose\[1, 0\]"):
        gen.render(bad)
    with pytest.raises(ValueError, match="light"):
        coeffs.replace(light=torch.zeros(2, 26))
    wrong = FaceCoeffs.from_flat(np.zeros((1, FaceLayout(10, 10, 3).total)), FaceLayout(10, 10, 3))
    with pytest.raises(ValueError, match="shape has 10 values"):
        gen.render(wrong)


def test_missing_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="not supported|unknown device"):
        resolve_device("tpu")
    assert resolve_device("auto").type == "cpu"


def test_clamp_reports_what_it_changed(gen: FaceGenerator) -> None:
    coeffs = gen.sample(1, seed=0)
    wild = coeffs.replace(shape=torch.full_like(coeffs.shape, 9.0), pose=torch.tensor([[3.0, 0.0, 0.0]]))
    clamped, notes = gen.clamp(wild)
    assert clamped.shape.max() <= 3.0 and clamped.pose[0, 0] <= math.radians(90) + 1e-6
    assert any("shape" in n for n in notes) and any("pose" in n for n in notes)


# ---------------------------------------------------------------------------------------------
# Sampling, mixup, determinism
# ---------------------------------------------------------------------------------------------
def test_same_seed_same_coefficients_and_pixels(gen: FaceGenerator) -> None:
    a, b = gen.sample(3, seed=11), gen.sample(3, seed=11)
    assert np.array_equal(a.to_flat(), b.to_flat())
    assert torch.equal(gen.render(a).images, gen.render(b).images)
    c = gen.sample(3, seed=12)
    assert not np.array_equal(a.to_flat(), c.to_flat())


def test_an_image_is_the_same_alone_or_in_a_batch(gen: FaceGenerator) -> None:
    coeffs = gen.sample(5, seed=13)
    batch = gen.render(coeffs).images
    for i in (0, 4):
        assert torch.equal(gen.render(coeffs[i:i + 1]).images[0], batch[i])


def test_an_image_is_the_same_in_batches_of_1_7_and_256(gen: FaceGenerator) -> None:
    """Same coefficients, same pixels and landmarks, whatever batch renders them (issue 16)."""
    coeffs = gen.sample(256, seed=29)
    full = gen.render(coeffs)
    for start in range(0, 256, 7):
        part = gen.render(coeffs[start:start + 7])
        assert torch.equal(part.images, full.images[start:start + 7]), f"batch of 7 at {start}"
        assert torch.equal(part.landmarks, full.landmarks[start:start + 7])
    for i in (0, 1, 100, 255):
        alone = gen.render(coeffs[i:i + 1])
        assert torch.equal(alone.images[0], full.images[i]), f"image {i} alone"
        assert torch.equal(alone.landmarks[0], full.landmarks[i])


def test_basis_product_equals_summing_terms_one_by_one() -> None:
    """The CPU product is plain IEEE float32 in a fixed order: numpy's term-by-term sum gives the
    same bits, so no CPU (FMA or not, any vector width) can round it differently."""
    from synface.base.exact import basis_product

    rng = np.random.default_rng(3)
    basis = rng.standard_normal((9, 3000)).astype(np.float32)
    offset = rng.standard_normal(3000).astype(np.float32)
    coeffs = rng.standard_normal((5, 9)).astype(np.float32)
    coeffs[2, 4] = 0.0
    expected = np.broadcast_to(offset, (5, 3000)).copy()
    for k in range(9):
        expected = expected + coeffs[:, k:k + 1] * basis[k]
    got = basis_product(torch.from_numpy(coeffs), torch.from_numpy(basis), torch.from_numpy(offset))
    assert np.array_equal(got.numpy(), expected)
    assert torch.equal(basis_product(torch.from_numpy(coeffs[3:4]), torch.from_numpy(basis), torch.from_numpy(offset)), got[3:4])
    with pytest.raises(ValueError, match="do not multiply"):
        basis_product(torch.zeros(2, 8), torch.from_numpy(basis))


def test_model_bases_hold_no_denormal_floats(gen: FaceGenerator) -> None:
    """Denormals make every basis GEMM several times slower (`python -m synface bench render`)."""
    tiny = torch.finfo(torch.float32).tiny
    for basis in (gen.model._basis, gen.model._albedo.tone, gen.model._albedo.masks):
        assert not ((basis != 0) & (basis.abs() < tiny)).any()


def test_mixup_endpoints(gen: FaceGenerator) -> None:
    a, b = gen.sample(2, seed=1), gen.sample(2, seed=2)
    assert torch.equal(FaceGenerator.mix(a, b, 1.0).identity, a.identity)
    assert torch.allclose(FaceGenerator.mix(a, b, 0.0).identity, b.identity)
    half = FaceGenerator.mix(a, b, 0.5)
    assert torch.allclose(half.identity, (a.identity + b.identity) / 2)
    assert torch.equal(half.pose, a.pose)  # attributes stay A's
    assert torch.equal(gen.render(FaceGenerator.mix(a, b, 1.0)).images, gen.render(a).images)
    with pytest.raises(ValueError, match="phi"):
        FaceGenerator.mix(a, b, 1.5)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def test_fused_cpu_path_matches_the_torch_reference(gen: FaceGenerator) -> None:
    coeffs = gen.sample(8, seed=5)
    fused = gen.render(coeffs).images.float()
    gen.fast_cpu = False
    try:
        reference = gen.render(coeffs).images.float()
    finally:
        gen.fast_cpu = True
    diff = (fused - reference).abs()
    assert diff.mean() < 1.0  # grey levels
    assert torch.quantile(diff.flatten(), 0.99) <= 3.0


def test_landmarks_land_on_the_arcface_template(gen: FaceGenerator) -> None:
    """The landmark vertices, moved by the alignment calibration to where a photo's detector would
    find them, land on the template (pixel centres: +0.5); without a calibration the vertices do."""
    from synface.render.alignment_calibration import AlignmentCalibration, template_eye_spacing, template_pixels

    coeffs = gen.sample(6, seed=9)
    coeffs = coeffs.replace(jitter=torch.zeros(6, 3))
    result = gen.render(coeffs)
    calibration = gen.pipeline.alignment_calibration
    detected = result.landmarks + calibration.offsets(coeffs.pose) * template_eye_spacing(112)
    assert (detected - template_pixels(112)).norm(dim=-1).mean() < 4.0
    assert torch.allclose(template_pixels(112) - 0.5, ARCFACE_TEMPLATE)
    gen.pipeline.alignment_calibration = AlignmentCalibration.none()
    try:
        plain = gen.render(coeffs)
    finally:
        gen.pipeline.alignment_calibration = calibration
    assert (plain.landmarks - template_pixels(112)).norm(dim=-1).mean() < 4.0


def test_light_from_the_right_brightens_the_right_side(gen: FaceGenerator) -> None:
    face = gen.neutral(gen.sample(1, seed=4))
    one = torch.ones(1)
    right = LightControls(torch.tensor([math.radians(70)]), torch.zeros(1), one * 0.9, one * 0.2, torch.ones(1, 3))
    left = LightControls(torch.tensor([math.radians(-70)]), torch.zeros(1), one * 0.9, one * 0.2, torch.ones(1, 3))
    img_r = gen.render(face.replace(light=right.to_sh())).images[0].float().mean(-1)
    img_l = gen.render(face.replace(light=left.to_sh())).images[0].float().mean(-1)
    cheek_rows = slice(55, 85)
    assert img_r[cheek_rows, 70:90].mean() > img_r[cheek_rows, 22:42].mean() + 10
    assert img_l[cheek_rows, 22:42].mean() > img_l[cheek_rows, 70:90].mean() + 10


def test_expression_and_pose_change_the_image(gen: FaceGenerator) -> None:
    face = gen.neutral(gen.sample(1, seed=6))
    base = gen.render(face).images.float()
    smile = face.expr.clone()
    smile[0, 0] = 1.0  # jaw open
    assert (gen.render(face.replace(expr=smile)).images.float() - base).abs().mean() > 0.5
    turned = gen.render(face.replace(pose=torch.tensor([[0.5, 0.0, 0.0]]))).images.float()
    assert (turned - base).abs().mean() > 3


def test_mesh_for_3d_view(gen: FaceGenerator) -> None:
    mesh = gen.mesh(gen.sample(1, seed=0))
    assert mesh.vertices.shape[1] == gen.model.num_vertices
    assert mesh.colours.min() >= 0 and mesh.colours.max() <= 1


def test_bench_render_cli_prints_one_json_line() -> None:
    out = subprocess.run([sys.executable, "-m", "synface", "bench", "render", "--device", "cpu", "--batch", "8",
                          "--repeats", "1", "--json"], capture_output=True, text=True, timeout=300, check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["bench"] == "render" and record["images_per_s"] > 0 and record["single_ms_median"] > 0


def test_cli_reports_a_missing_gpu_without_a_traceback() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = subprocess.run([sys.executable, "-m", "synface", "bench", "render", "--device", "cuda", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no CUDA GPU" in out.stderr and "Traceback" not in out.stderr


def test_shared_generators_are_one_per_device_and_face_model(learned_model_workspace) -> None:
    from synface.face.catalog import load_model
    from synface.generator import shared_generator
    from tests.support import LEARNED_MODEL

    builtin = shared_generator("cpu")
    assert shared_generator("cpu", "builtin") is builtin and builtin.version.startswith("builtin-")
    learned = shared_generator("cpu", LEARNED_MODEL, learned_model_workspace)
    assert learned is shared_generator("cpu", LEARNED_MODEL, learned_model_workspace) and learned is not builtin
    assert learned.model.version == load_model(LEARNED_MODEL, learned_model_workspace).version
    # a generator on the model's own device uses the load itself, no copy (another device gets a
    # moved copy, tests/fitting); the shared generator may come from an earlier load of this version
    from synface.generator import FaceGenerator
    loaded = load_model(LEARNED_MODEL, learned_model_workspace)
    assert FaceGenerator(device="cpu", model=loaded).model is loaded
    assert learned.model.device == loaded.device
