"""Faces drawn into their learned model's context photos (synface.data.contexts, synth_context).

Uses the session's learned model 'tiny' (12 LFW people, one photo each), whose fit wrote
contexts.npz; skips without the LFW copy or dlib.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from synface.data.align import warp_with_matrix
from synface.data.contexts import CONTEXT_FILE, ContextPool, ContextRenderer, PhotoReader, photo_to_crop
from synface.data.errors import DataError
from synface.generator import FaceGenerator
from tests.support import LEARNED_MODEL, copy_models, requires_lfw

pytestmark = requires_lfw


@pytest.fixture(scope="module")
def learned(learned_model_workspace) -> FaceGenerator:
    from synface.face.catalog import load_model

    return FaceGenerator(device="cpu", model=load_model(LEARNED_MODEL, learned_model_workspace))


def _pool_of(gen: FaceGenerator, root: Path | None = None) -> ContextPool:
    model = gen.model
    root = root if root is not None else Path(model.card["photo_root"])
    return ContextPool.load(model.folder, root, model.base.layout.shape, model.layout.expr)


def test_fit_writes_one_context_row_per_fitted_photo(learned) -> None:
    pool = _pool_of(learned)
    assert len(pool) == 12
    assert learned.model.card["contexts"] == 12
    assert all((pool.root / p).is_file() for p in pool.arrays["path"])
    assert np.isfinite(pool.arrays["A"]).all() and np.abs(np.linalg.det(pool.arrays["A"])).min() > 1e-3


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel() - a.mean(), b.ravel() - b.mean())[0, 1])


@pytest.mark.parametrize("match", [False, True])
def test_composite_keeps_the_photo_outside_and_the_synthetic_face_inside(learned, match) -> None:
    renderer = ContextRenderer(learned, "photo", match=match)
    coeffs = learned.sample(6, seed=11)
    images, rows, drawn = renderer.render(coeffs, seed=5)
    plain = learned.render(drawn).images.cpu().numpy().astype(np.float64)
    A_r, t_r = (x.cpu().numpy() for x in learned.pipeline.alignment(drawn))
    for i, k in enumerate(rows):
        photo = renderer.reader(int(k))
        backdrop = warp_with_matrix(photo, photo_to_crop(A_r[i], t_r[i], renderer.pool.arrays["A"][k],
                                                         renderer.pool.arrays["t"][k]), 112).astype(np.float64)
        image = images[i].astype(np.float64)
        # the top corners are the photo's (its hair or scene), not the render's background
        corners = (slice(0, 12), slice(0, 12)), (slice(0, 12), slice(100, 112))
        for rs, cs in corners:
            assert np.abs(image[rs, cs] - backdrop[rs, cs]).mean() < 3.0
        # the inner face (between the eyes and the mouth) is the synthetic person's pixels
        inner = (slice(50, 70), slice(44, 68))
        if not match:
            assert np.abs(image[inner] - plain[i][inner]).mean() < 3.0
            assert np.abs(image[inner] - backdrop[inner]).mean() > 3.0
        else:  # camera matching changes colour, grain and JPEG level, not whose face it is
            assert _corr(image[inner], plain[i][inner]) > max(0.8, _corr(image[inner], backdrop[inner]))


def test_the_same_row_re_renders_identically_and_the_choice_is_seeded(learned) -> None:
    coeffs = learned.sample(16, seed=3)
    first, rows, _ = ContextRenderer(learned, "photo").render(coeffs, seed=9)
    again, rows_again, _ = ContextRenderer(learned, "photo").render(coeffs, seed=9)
    assert np.array_equal(rows, rows_again) and np.array_equal(first, again)
    given, _, _ = ContextRenderer(learned, "photo").render(coeffs, seed=9, rows=rows)
    assert np.array_equal(first, given)
    pool = _pool_of(learned)
    choice = pool.choose(16, 9, coeffs.pose)
    assert np.array_equal(choice, pool.choose(16, 9, coeffs.pose))
    assert not all(np.array_equal(choice, pool.choose(16, s, coeffs.pose)) for s in range(10, 14))
    shared = pool.choose(4, 9, coeffs.pose[:4], keys=torch.tensor([7, 7, 7, 7]))
    same_pose = pool.choose(4, 9, coeffs.pose[:1].repeat(4, 1), keys=torch.tensor([7, 7, 7, 7]))
    assert len(set(same_pose.tolist())) == 1 and len(shared) == 4


def test_background_mode_draws_the_whole_head_over_the_photo(learned) -> None:
    coeffs = learned.sample(2, seed=4)
    photo_mode, rows, drawn = ContextRenderer(learned, "photo").render(coeffs, seed=1)
    head_mode, _, _ = ContextRenderer(learned, "background", match=False).render(coeffs, rows=rows)
    plain = learned.render(drawn).images.cpu().numpy()
    assert not np.array_equal(photo_mode, head_mode)
    centre = (slice(40, 80), slice(40, 72))
    assert np.abs(head_mode[:, centre[0], centre[1]].astype(int) - plain[:, centre[0], centre[1]]).mean() < 3.0


def test_a_photo_changed_or_gone_since_the_fit_is_named_and_skipped(learned, tmp_path) -> None:
    pool = _pool_of(learned)
    root = tmp_path / "photos"
    for rel in pool.arrays["path"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pool.root / rel, root / rel)
    changed, gone = str(pool.arrays["path"][0]), str(pool.arrays["path"][1])
    data = bytearray((root / changed).read_bytes())
    data[-3] ^= 0xFF
    (root / changed).write_bytes(bytes(data))
    (root / gone).unlink()
    moved = _pool_of(learned, root)
    reader = PhotoReader(moved)
    assert reader(0) is None and "changed since the fit" in reader.problems[0] and changed in reader.problems[0]
    assert reader(1) is None and "gone since the fit" in reader.problems[1]
    assert reader(2) is not None and 2 not in reader.problems
    from synface.data.contexts import render_in_context, with_context

    rows = np.array([0, 1, 2])
    drawn = with_context(learned.sample(3, seed=2), moved, rows)
    images, have = render_in_context(learned, drawn, moved, rows, "photo", reader)
    assert have.tolist() == [False, False, True]
    assert np.array_equal(images[:2], learned.render(drawn[[0, 1]]).images.cpu().numpy())


def test_models_without_contexts_and_damaged_context_files_are_named(learned, tmp_path) -> None:
    home = copy_models(learned.model.folder.parents[1], tmp_path / "ws")
    folder = home / "face_models" / LEARNED_MODEL
    (folder / CONTEXT_FILE).unlink()
    model = learned.model
    with pytest.raises(DataError, match="refit it") as err:
        ContextPool.load(folder, "/nowhere", model.base.layout.shape, model.layout.expr)
    assert CONTEXT_FILE in str(err.value)
    (folder / CONTEXT_FILE).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="unreadable context file"):
        ContextPool.load(folder, "/nowhere", model.base.layout.shape, model.layout.expr)
    with np.load(learned.model.folder / CONTEXT_FILE) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["path"] = arrays["path"].copy()
    arrays["path"][0] = "../../etc/passwd"
    np.savez(folder / CONTEXT_FILE, **arrays)
    with pytest.raises(DataError, match="leaves the photo folder"):
        ContextPool.load(folder, "/nowhere", model.base.layout.shape, model.layout.expr)
    arrays["path"][0] = "x.jpg"
    arrays["light"] = arrays["light"][:, :5]
    np.savez(folder / CONTEXT_FILE, **arrays)
    with pytest.raises(DataError, match="'light' has shape"):
        ContextPool.load(folder, "/nowhere", model.base.layout.shape, model.layout.expr)


def test_the_builtin_head_has_no_contexts(gen) -> None:
    from synface.data.synthetic import SynthConfig

    with pytest.raises(ValueError, match="learned face model's photos"):
        SynthConfig(ids=2, samples=2, context="photo")
    with pytest.raises(ValueError, match="learned face model"):
        ContextRenderer(gen, "photo")
    with pytest.raises(ValueError, match="min_context_distance"):
        SynthConfig(ids=2, samples=2, min_context_distance=0.5)


def test_leakage_check_flags_a_composite_that_keeps_the_context_persons_face(learned) -> None:
    """The planted composite is the context photo itself, aligned: its distance to its own person
    is far below real strangers'; a synthetic composite's is not."""
    from synface.data.synth_config import SynthConfig
    from synface.data.synth_context import ContextSpec

    config = SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo", min_context_distance=0.5)
    spec = ContextSpec(config, learned)
    coeffs = learned.sample(4, seed=8)
    rows = spec.pool.choose(4, 1, coeffs.pose)
    drawn = spec.apply(coeffs, rows)
    composites = spec.render(drawn, rows)
    A_r, t_r = (x.cpu().numpy() for x in learned.pipeline.alignment(drawn))
    planted = np.stack([warp_with_matrix(spec.reader(int(k)), photo_to_crop(A_r[i], t_r[i], spec.pool.arrays["A"][k],
                                                                             spec.pool.arrays["t"][k]), 112)
                        for i, k in enumerate(rows)])
    yardstick = learned.model.card["stranger_nearest_p01"]
    planted_d = spec.distances(planted, rows)
    composite_d = spec.distances(composites, rows)
    assert (planted_d < yardstick).all()
    assert np.median(composite_d) > np.median(planted_d) + 0.1


def test_context_options_for_the_builtin_head_are_one_line_errors(capsys, tmp_path) -> None:
    from tests.support import cli_error

    cli_error(capsys, ["generate", "--ids", "2", "--samples", "1", "--context", "photo", "--root", str(tmp_path)],
              "context", "learned face model")
    cli_error(capsys, ["bench", "render", "--context", "photo"], "learned face model")
    cli_error(capsys, ["bench", "render", "--no-camera-match"], "--context photo")
    cli_error(capsys, ["generate", "--verification", "--no-camera-match", "--root", str(tmp_path)], "--no-camera-match")
    cli_error(capsys, ["generate", "--ids", "2", "--samples", "1", "--context", "photo", "--model", "nosuch",
                       "--root", str(tmp_path)], "nosuch")


def test_poses_the_pool_cannot_serve_are_counted_in_the_card(learned) -> None:
    import math

    from synface.data.synth_config import SynthConfig
    from synface.data.synth_context import FAR_POSE_DEG, ContextSpec

    spec = ContextSpec(SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo"), learned)
    coeffs = learned.sample(2, seed=3)
    pose = coeffs.pose.clone()
    pose[0, 0] = math.radians(85.0)  # far beyond any photo of the pool
    rows = spec.rows(0, [0, 1], coeffs.replace(pose=pose))
    photo_yaw = math.degrees(float(spec.pool.arrays["pose"][rows[0], 0]))
    assert spec.pose_gap[(0, 0)] == pytest.approx(max(85.0 - photo_yaw, abs(math.degrees(float(pose[0, 1])) - math.degrees(
        float(spec.pool.arrays["pose"][rows[0], 1])))), abs=0.01)
    card = spec.summary(None, rows)
    assert card["far_pose_count"] >= 1 and card["far_pose_threshold_deg"] == FAR_POSE_DEG
    assert card["pool_yaw_deg"][1] < 85.0


def test_a_context_set_built_to_disk_equals_its_on_the_fly_rows_and_its_card_says_what_matching_did(
        learned, learned_model_workspace, tmp_path) -> None:
    """The camera grain is seeded per image (not per batch), so a stored row and the same row drawn
    on the fly are the same pixels; the card records the matching."""
    import json

    import pandas as pd
    from PIL import Image

    from synface.data.synth_config import SynthConfig
    from synface.data.synthetic import OnTheFlyDataset, build_dataset

    cfg = SynthConfig(ids=3, samples=2, model=LEARNED_MODEL, context="photo", image_format="png", seed=2)
    build_dataset(cfg, tmp_path / "set", learned, workspace=learned_model_workspace)
    manifest = pd.read_parquet(tmp_path / "set" / "manifest.parquet")
    batch = OnTheFlyDataset(cfg, learned, workspace=learned_model_workspace).get_batch([5, 0, 3])
    for j, idx in enumerate([5, 0, 3]):
        disk = np.asarray(Image.open(tmp_path / "set" / manifest.path[idx]))
        assert np.array_equal(disk, batch["images"][j].numpy())
    card = json.loads((tmp_path / "set" / "dataset.json").read_text())
    context = card.get("context") or card["card"]["context"]
    assert context["camera_match"] is True and context["camera_match_sample"]["composites"] >= 6


def test_camera_matching_is_part_of_a_context_sets_identity_only() -> None:
    from synface.data.synth_config import SynthConfig

    matched = SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo")
    raw = SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo", camera_match=False)
    assert matched.fingerprint() != raw.fingerprint()
    # a plain set's fingerprint ignores the switch: sets built before it keep theirs (the value
    # this config had before camera matching existed)
    plain = SynthConfig(ids=2, samples=2).to_dict()
    assert SynthConfig(ids=2, samples=2).fingerprint() == "5d96f096c0532d55"
    without = {k: v for k, v in plain.items() if k != "camera_match"}
    assert SynthConfig.from_dict(without).fingerprint() == SynthConfig(ids=2, samples=2).fingerprint()
    # a spec that does not name the switch (a plan's, a --config file's) gets matching
    unnamed = {k: v for k, v in matched.to_dict().items() if k != "camera_match"}
    assert SynthConfig.from_dict(unnamed).camera_match is True
    with pytest.raises(ValueError, match="camera_match"):
        SynthConfig(ids=2, samples=2, camera_match=False)
    with pytest.raises(ValueError, match="camera_match"):
        SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo", camera_match="yes")


def test_a_check_state_with_a_non_finite_distance_is_ignored_whole(learned, tmp_path) -> None:
    import json

    from synface.data.synth_config import SynthConfig
    from synface.data.synth_context import ContextSpec

    spec = ContextSpec(SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo"), learned)
    key = {"fingerprint": "x"}
    path = tmp_path / "context_check.json"
    path.write_text(json.dumps({"key": key, "accepted": {"0:0": [1, 0.7], "0:1": [0, float("nan")]}}))
    spec.load(path, key)
    assert spec.accepted == {}  # not even the good first entry
    path.write_text(json.dumps({"key": key, "accepted": {"0:0": [1, 0.7]}, "pose_gap": {"0:0": 3.5}}))
    spec.load(path, key)
    assert spec.accepted == {(0, 0): (1, 0.7)} and spec.pose_gap == {(0, 0): 3.5}


def test_merged_shards_describe_the_contexts_of_the_whole_set(learned, learned_model_workspace, tmp_path) -> None:
    import json

    import pandas as pd

    from synface.data.shards import merge_shards
    from synface.data.synth_config import Shard, SynthConfig
    from synface.data.synthetic import build_dataset

    cfg = SynthConfig(ids=4, samples=2, model=LEARNED_MODEL, context="photo", image_format="png", seed=3)
    build_dataset(cfg, tmp_path / "whole", learned, workspace=learned_model_workspace)
    for k in (1, 2):
        build_dataset(cfg, tmp_path / f"s{k}", learned, workspace=learned_model_workspace, shard=Shard(k, 2))
    merge_shards([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged", workspace=learned_model_workspace)
    whole, merged = (json.loads((tmp_path / name / "dataset.json").read_text()) for name in ("whole", "merged"))
    whole, merged = (c.get("context") or c["card"]["context"] for c in (whole, merged))
    rows = pd.read_parquet(tmp_path / "merged" / "manifest.parquet")["context"]
    assert merged["photos_used"] == whole["photos_used"] == rows.nunique()  # every image's context, not shard 1's
    assert merged["shared_context_person"] == whole["shared_context_person"]
    assert len(merged["camera_match_sample_by_shard"]) == 2
    assert all(s["composites"] == 4 for s in merged["camera_match_sample_by_shard"])


def test_a_shard_with_damaged_context_draws_is_refused_by_name(learned, learned_model_workspace, tmp_path) -> None:
    import json

    from synface.data.shards import merge_shards
    from synface.data.synth_config import Shard, SynthConfig
    from synface.data.synth_context import CONTEXT_CHECK_FILE
    from synface.data.synthetic import build_dataset

    cfg = SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo", image_format="png", seed=4)
    for k in (1, 2):
        build_dataset(cfg, tmp_path / f"s{k}", learned, workspace=learned_model_workspace, shard=Shard(k, 2))
    state = tmp_path / "s2" / CONTEXT_CHECK_FILE
    data = json.loads(state.read_text())
    data["accepted"] = dict.fromkeys(data["accepted"], "not a pair") or {"0:0": "not a pair"}
    state.write_text(json.dumps(data))
    with pytest.raises(DataError, match="unreadable context draws") as caught:
        merge_shards([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged", workspace=learned_model_workspace)
    assert str(state) in str(caught.value)


def test_one_context_per_identity_gives_every_image_of_an_identity_the_same_photo(learned, learned_model_workspace) -> None:
    from synface.data.synth_config import SynthConfig
    from synface.data.synthetic import SyntheticSpec

    per_image, per_identity = (SyntheticSpec(SynthConfig(ids=3, samples=4, model=LEARNED_MODEL, context="photo", im=True,
                                                         contexts_per_identity=flag, seed=5), learned)
                               for flag in (False, True))
    for i in range(3):
        _, shared = per_identity.identity_batch(i)
        assert len(set(shared.context.tolist())) == 1  # the samples' poses and mixup partners differ
        _, each = per_image.identity_batch(i)
        assert len(set(each.context.tolist())) > 1
    assert per_identity.config.fingerprint() != per_image.config.fingerprint()
    with pytest.raises(DataError, match="contexts_per_identity.*at most 100,000 identities"):
        SynthConfig(ids=100_001, samples=1, model=LEARNED_MODEL, context="photo", contexts_per_identity=True)
    person = per_identity.context.pool.arrays["person"]
    firsts = [int(per_identity.identity_batch(i, [0])[1].context[0]) for i in range(3)]
    assert len({int(person[r]) for r in firsts}) == 3  # no two identities share a context person


def test_one_context_per_identity_spreads_identities_over_the_pool_people(learned) -> None:
    """More identities than context people: every person serves as evenly as the pool allows, the
    same identities always get the same photos, and another seed deals them differently."""
    from synface.data.synth_config import SynthConfig
    from synface.data.synthetic import SyntheticSpec

    spec = SyntheticSpec(SynthConfig(ids=30, samples=1, model=LEARNED_MODEL, context="photo",
                                     contexts_per_identity=True, seed=5), learned)
    rows = spec.context.identity_rows()
    person = spec.context.pool.arrays["person"][rows]
    counts = np.bincount(person, minlength=int(spec.context.pool.arrays["person"].max()) + 1)
    people = len(set(spec.context.pool.arrays["person"].tolist()))
    assert counts.max() - counts[counts > 0].min() <= 1 and (counts > 0).sum() == people
    again = SyntheticSpec(spec.config, learned).context.identity_rows()
    assert np.array_equal(rows, again)
    other = SyntheticSpec(SynthConfig(ids=30, samples=1, model=LEARNED_MODEL, context="photo",
                                      contexts_per_identity=True, seed=6), learned).context.identity_rows()
    assert not np.array_equal(rows, other)


def test_on_the_fly_rows_adopt_the_checks_a_build_stored(learned, learned_model_workspace, tmp_path) -> None:
    """A build's redrawn context (stored in its context_check.json) is what the set's folder lends
    the on-the-fly renderer (the Datasets page's preview), so that row renders as built."""
    import json

    from synface.data.synth_config import SynthConfig
    from synface.data.synth_context import CONTEXT_CHECK_FILE
    from synface.data.synthetic import OnTheFlyDataset

    cfg = SynthConfig(ids=2, samples=2, model=LEARNED_MODEL, context="photo", image_format="png", seed=4)
    key = {"fingerprint": cfg.fingerprint(), "generator_version": learned.version}
    (tmp_path / CONTEXT_CHECK_FILE).write_text(json.dumps({"key": key, "accepted": {"0:1": [3, 0.9]}}))
    fresh = OnTheFlyDataset(cfg, learned, workspace=learned_model_workspace)
    adopted = OnTheFlyDataset(cfg, learned, workspace=learned_model_workspace, folder=tmp_path)
    assert adopted.spec.context.accepted == {(0, 1): (3, 0.9)}
    a, b = fresh.get_batch([0, 1]), adopted.get_batch([0, 1])
    assert torch.equal(a["images"][0], b["images"][0])  # row 0:0 was not redrawn
    assert not torch.equal(a["images"][1], b["images"][1])  # row 0:1 takes the build's fourth draw
    (tmp_path / CONTEXT_CHECK_FILE).write_text(json.dumps({"key": {**key, "fingerprint": "other"},
                                                           "accepted": {"0:1": [3, 0.9]}}))
    other = OnTheFlyDataset(cfg, learned, workspace=learned_model_workspace, folder=tmp_path)
    assert other.spec.context.accepted == {} and torch.equal(other.get_batch([1])["images"][0], a["images"][1])
