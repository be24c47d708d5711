"""The learned face model: landmark fits, re-rendering a fitted person, sampling, privacy, resume, bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from synface.face.builtin import GENERATOR_MODEL_VERSION
from tests.support import LFW_ROOT, REPO, requires_lfw

pytestmark = requires_lfw
PEOPLE = 12


@pytest.fixture(scope="module")
def fitted(learned_model_workspace) -> dict:
    """The session's tiny model (conftest: killed once mid-fit, then resumed) and its fit record."""
    import json

    return {"ws": learned_model_workspace, **json.loads((learned_model_workspace / "fit_record.json").read_text())}


@pytest.fixture(scope="module")
def model(fitted):
    from synface.face.catalog import load_model

    return load_model("tiny", fitted["ws"])


def test_landmark_fit_on_real_photos_and_renders(fitted, gen):
    """68-point fits land within a tenth of the eye distance on photos and on our own renders."""
    from synface.data.realface import detector_view
    from synface.fitting.chunk_cache import read_npz
    from synface.fitting.geometry_fit import fit_geometry
    from synface.fitting.landmarks import landmark_basis, photo_landmarks

    geometry = {"error": np.concatenate([read_npz(p)["error"] for p in
                                         sorted((fitted["ws"] / "face_models" / "tiny" / "cache").glob("geometry-*.npz"))])}
    assert np.median(geometry["error"]) < 0.08 and geometry["error"].max() < 0.15
    ids = read_npz(fitted["ws"] / "face_models" / "tiny" / "cache" / "landmark_vertices.npz")["ids"]
    coeffs = gen.sample(6, 11).replace(jitter=torch.zeros(6, 3))
    points = [photo_landmarks(detector_view(im, 2, 0.25)) for im in gen.render(coeffs).images.numpy()]
    points = np.stack([p + 0.5 for p in points if p is not None])
    assert len(points) >= 5
    mean, shape_basis, expr_basis = landmark_basis(gen.model, ids)
    low, high = gen.model.expr_range()
    fit = fit_geometry(points, mean, shape_basis, expr_basis, low, high)
    assert np.median(fit.error) < 0.07


def test_a_fitted_person_re_renders_as_themselves(fitted, model):
    """Source person k's reflectance on their fitted head, frontal: dlib calls it the same person
    as their photo (distance under the source threshold), and nearer to them than to the others."""
    from synface.data.leakage import SourceIndex, identity_descriptors
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu", model=model)
    index = SourceIndex.of_model(model)
    k = 3
    albedo = torch.zeros(1, model.regions, model.people)
    albedo[0, :, k] = 1.0
    shape = torch.zeros(1, model.layout.shape)  # the learned mean head
    desc = identity_descriptors(gen, shape, albedo.view(1, -1))[0, :1]
    dist = np.linalg.norm(index.descriptors - desc, axis=1)
    bank_person = int(np.load(fitted["ws"] / "face_models" / "tiny" / "sources.npz")["bank_person"][k])
    assert index.person[dist.argmin()] == bank_person
    assert dist.min() < index.threshold + 0.1


def test_sampling_is_deterministic_and_batch_independent(model):
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu", model=model)
    a, b = gen.sample(5, 42), gen.sample(5, 42)
    assert torch.equal(a.albedo, b.albedo) and torch.equal(a.shape, b.shape)
    assert ((a.albedo.view(5, model.regions, -1) > 0).sum(2) == 1).all()  # one source person per region
    batch = gen.render(a).images
    alone = torch.cat([gen.render(a[i]).images for i in range(5)])
    assert torch.equal(batch, alone)
    mixed = FaceGenerator.mix(a[0], a[1], 0.5)
    assert torch.allclose(mixed.albedo, 0.5 * (a.albedo[0] + a.albedo[1]))
    assert gen.render(mixed).images.shape == (1, 112, 112, 3)


def test_leakage_flags_a_planted_copy_of_a_source_person(model):
    """An 'identity' that is source person k's photo descriptor itself is a leak; the report's
    numbers are consistent."""
    from synface.data.leakage import SourceIndex, leakage_report
    from synface.generator import FaceGenerator

    index = SourceIndex.of_model(model)
    planted = index.descriptors[:1] + 0.01
    dist, person = index.nearest(planted)
    assert dist[0] < index.threshold and person[0] == index.person[0]
    report = leakage_report(FaceGenerator(device="cpu", model=model), index, identities=8)
    assert report["identities"] == 8 and sum(report["nearest_histogram"]) <= 8
    assert report["leaked"] == round(report["leaked_share"] * 8)


def test_leakage_views_belong_to_the_identity_and_redraws_are_generations_own(fitted, model):
    """An identity's checked distance does not depend on its batch neighbours, and the bench's
    redraw below --min-source-distance accepts exactly the draws generation's SourceCheck does."""
    from synface.bench.leakage import bench_leakage
    from synface.data.leakage import SourceIndex, identity_draw_seed, leakage_report, source_distances
    from synface.data.synth_model import SourceCheck
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu", model=model)
    index = SourceIndex.of_model(model)
    shape, albedo = gen.draw_identities(3, torch.Generator().manual_seed(5))
    together, _ = source_distances(gen, index, shape, albedo, seed=[7, 8, 9])
    alone, _ = source_distances(gen, index, shape[2:], albedo[2:], seed=[9])
    assert abs(together[2] - alone[0]) < 1e-4

    check = SourceCheck(gen, 0.0)
    base = leakage_report(gen, index, identities=4, seed=3)
    threshold = float(np.median([check.distance(*gen.draw_identities(1, torch.Generator().manual_seed(
        identity_draw_seed(3, i)))) for i in range(4)]))
    redraw = SourceCheck(gen, threshold)

    def draw(s):
        a, b = gen.draw_identities(1, torch.Generator().manual_seed(int(s)))
        return a[0], b[0]

    chosen = [redraw.choose(i, identity_draw_seed(3, i), draw) for i in range(4)]
    assert all(redraw.distance(a, b) >= threshold for a, b in chosen)
    assert any(attempt > 0 for attempt, _ in redraw.accepted.values())
    report = bench_leakage("tiny", identities=4, seed=3, workspace=str(fitted["ws"]), device="cpu",
                           min_distance=threshold)
    assert report["redrawn"] == sum(a > 0 for a, _ in redraw.accepted.values())
    assert report["extra_draws"] == sum(a for a, _ in redraw.accepted.values())
    assert report["min_source_distance"] == threshold and report["identities"] == base["identities"] == 4


def test_moving_a_learned_model_leaves_the_shared_instance_where_it_was(model):
    """The catalog shares one loaded model; a generator on another device gets a moved copy."""
    same = model.to(model.device)
    assert same is model
    other = model.to("cpu:0")  # a distinct device object, as a GPU would be
    assert other is not model and other.base is not model.base
    assert model.device == torch.device("cpu") and other.device == torch.device("cpu:0")
    assert other.version == model.version


def test_a_killed_fit_resumes_without_redoing_finished_chunks(fitted, model):
    assert 1 <= len(fitted["before"]) < 3, "the fit should have been killed between its 3 chunks"
    assert not fitted["finished_before"] and fitted["offered_before"] == []  # an unfinished fit is not offered
    for name, stamp in fitted["before"].items():
        assert fitted["after"][name] == stamp  # finished chunks were not redone
    assert len(fitted["after"]) == 3
    assert model.people == PEOPLE
    assert {"landmarks", "geometry", "reflectance", "fill", "contexts", "framing"} <= set(fitted["stages"])


def test_bad_photo_folders_and_model_folders_get_named_errors(tmp_path, fitted):
    from synface.data.errors import DataError
    from synface.face.catalog import load_model
    from synface.face.learned import FaceModelError
    from synface.fitting.build import fit_face_model

    with pytest.raises(DataError, match="not found"):
        fit_face_model(tmp_path / "missing", "x", workspace=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no identity folders"):
        fit_face_model(tmp_path / "empty", "x", workspace=tmp_path)
    few = tmp_path / "few"
    for i in range(3):
        (few / f"p{i}").mkdir(parents=True)
        (few / f"p{i}" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="at least 10"):
        fit_face_model(few, "x", workspace=tmp_path)
    with pytest.raises(ValueError, match="not allowed"):
        fit_face_model(LFW_ROOT, "../escape", workspace=tmp_path)
    with pytest.raises(FaceModelError, match="no face model 'nope'"):
        load_model("nope", fitted["ws"])
    # corrupt, partial and foreign-version folders
    import shutil

    src = fitted["ws"] / "face_models" / "tiny"
    for case in ("torn", "partial", "foreign"):
        dst = tmp_path / "face_models" / case
        shutil.copytree(src, dst)
        if case == "torn":
            data = (dst / "model.npz").read_bytes()
            (dst / "model.npz").write_bytes(data[: len(data) // 2])
        elif case == "partial":
            (dst / "model.npz").unlink()
        else:
            card = (dst / "card.json").read_text().replace(f'"{GENERATOR_MODEL_VERSION}"', '"builtin-4"')
            (dst / "card.json").write_text(card)
    with pytest.raises(FaceModelError, match="model.npz is unreadable"):
        load_model("torn", tmp_path)
    with pytest.raises(FaceModelError, match="no model.npz"):
        load_model("partial", tmp_path)
    with pytest.raises(FaceModelError, match="fit it again: python -m synface face-model fit"):
        load_model("foreign", tmp_path)


def test_face_model_cli_fit_list_show(fitted):
    env = {**os.environ, "SYNFACE_HOME": str(fitted["ws"])}
    out = subprocess.run([sys.executable, "-m", "synface", "face-model", "list"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and '"tiny"' in out.stdout and '"builtin"' in out.stdout
    shown = subprocess.run([sys.executable, "-m", "synface", "face-model", "show", "tiny"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and '"file_list_sha256"' in shown.stdout
    bad = subprocess.run([sys.executable, "-m", "synface", "face-model", "fit", "--photos", "/nonexistent", "--name", "z"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "photo folder not found" in bad.stderr


def test_learned_textures_render_alike_on_both_paths_and_one_person_wears_their_own(model):
    """The fused CPU kernel and the torch path (the GPU's) render a learned model alike, and an
    identity with one source person in every region wears that person's texture."""
    from synface.face.learned_bank import bank_for_size
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu", model=model)
    coeffs = gen.sample(6, seed=8)
    fused = gen.render(coeffs).images.float()
    gen.fast_cpu = False
    try:
        reference = gen.render(coeffs).images.float()
    finally:
        gen.fast_cpu = True
    diff = (fused - reference).abs()
    assert diff.mean() < 1.5 and torch.quantile(diff.flatten(), 0.99) <= 12.0
    one = torch.zeros(1, model.regions, model.people)
    one[0, :, 2] = 1.0
    size = gen.pipeline.texture_size
    texture = gen.pipeline.textures(one.view(1, -1), torch.zeros(1, model.layout.expr))[0].permute(1, 2, 0).numpy()
    own = bank_for_size(model._textures[2:3], np.ones((1, model.bank_texture_size ** 2), np.float32),
                        np.zeros((1, 3), np.float32), size)
    own_texture = (own["low"][0][own["up_idx"]] * own["up_w"][..., None]).sum(1) + own["detail"][0]
    assert np.abs(texture.reshape(-1, 3) - own_texture).max() < 1e-4


def test_identity_mixup_hands_each_region_over_whole(model):
    """Along phi every region's detail comes from one person (a short ramp aside), each region
    changing hands once, at its own point: no phi shows two people's features over each other."""
    from synface.generator import FaceGenerator

    gen = FaceGenerator(device="cpu", model=model)
    a, b = gen.sample(1, seed=1), gen.sample(1, seed=2)
    phis = torch.linspace(0, 1, 41)
    mixes = torch.cat([FaceGenerator.mix(a, b, float(p)).albedo for p in phis])
    highs = model.bank_entries(mixes)[2]  # (41, R, K) detail weights
    mixed = ((highs > 0.01) & (highs < 0.99)).any(2).float()  # (41, R): a region blending two people's detail
    assert mixed.mean() < 0.15
    assert (mixed.sum(1) <= 1).all()  # never two regions mid-hand-over at once


def test_bench_leakage_cli_reports_and_refuses_the_builtin_head(fitted):
    import json

    env = {**os.environ, "SYNFACE_HOME": str(fitted["ws"])}
    out = subprocess.run([sys.executable, "-m", "synface", "bench", "leakage", "--model", "tiny", "--identities", "6"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-500:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["identities"] == 6 and report["source_people"] == PEOPLE
    assert len(report["nearest_histogram"]) == len(report["histogram_bins"]) - 1
    assert 0 <= report["leaked_share"] <= 1 and report["closest_identities"][0]["source_person"]
    bad = subprocess.run([sys.executable, "-m", "synface", "bench", "leakage", "--model", "builtin"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "built-in head has no source people" in bad.stderr


def test_face_model_preview_draws_the_builtin_head_beside_the_learned_model(fitted, tmp_path):
    from PIL import Image

    env = {**os.environ, "SYNFACE_HOME": str(fitted["ws"])}
    out = tmp_path / "preview.png"
    done = subprocess.run([sys.executable, "-m", "synface", "face-model", "preview", "tiny", "--out", str(out),
                           "--people", "3"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    image = np.asarray(Image.open(out))
    assert image.shape == (4 * 112, 3 * 112, 3)  # built-in and learned, each prior then neutral
    assert not np.array_equal(image[:224], image[224:])
    bad = subprocess.run([sys.executable, "-m", "synface", "face-model", "preview", "nope", "--out", str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no face model 'nope'" in bad.stderr
