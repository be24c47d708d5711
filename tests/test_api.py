"""`synface.api`, the notebook's calls: each returns plain objects, frames or figures, and gives what
the underlying library gives (the pages use the same calls)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from synface import api
from tests.support import REPO

#: a run of two steps of batch 8 (the 'tiny' scale of `reproduce`)
TINY = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "warmup_epochs": 0.0, "milestones": [1],
        "eval_every": 1, "eval_batch_size": 16, "log_every": 1}


def test_import_is_light() -> None:
    """`import synface.api` loads neither torch nor Streamlit: a notebook's first cell is instant."""
    code = "import sys, synface.api; print('torch' in sys.modules, 'streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_faces_strip_and_grid(gen) -> None:
    faces = api.draw_faces(3, seed=2, generator=gen)
    assert faces.shape == (3, 112, 112, 3) and faces.dtype == np.uint8
    a, b = api.draw_identities(2, seed=4, generator=gen)
    strip = api.mixup_strip(a, b, (1.0, 0.5, 0.0), generator=gen)
    assert strip.shape == (3, 112, 112, 3)
    assert np.array_equal(strip[0], api.render(gen.neutral(a), gen)[0])  # phi = 1 is A
    assert np.array_equal(strip[2], api.render(gen.neutral(b), gen)[0])  # phi = 0 is B
    assert not np.array_equal(strip[1], strip[0])
    grid = api.attribute_grid(a, n=4, seed=1, generator=gen)
    assert grid.shape == (4, 112, 112, 3) and len({g.tobytes() for g in grid}) == 4
    assert api.image_grid(grid, cols=2, pad=2).shape == (226, 226, 3)


@pytest.mark.slow  # a two-step training run, evaluated, embedded
def test_a_small_study_through_the_api(tmp_path, gen) -> None:
    ws = tmp_path / "ws"
    synth = api.build_dataset(4, 4, im=True, workspace=ws)
    assert synth.is_complete() and synth.card()["num_images"] == 16
    bench = api.build_benchmark(folds=2, pairs_per_fold=2, workspace=ws)
    real = api.register_real(bench, name="bench", train_folds="none", align=False, workspace=ws)
    assert real.can_verify
    run = api.train(synth.folder, overrides={**TINY, "backbone": "compact", "embedding_dim": 16}, eval_sets=["bench"],
                    name="api", workspace=ws)
    assert run.status()["status"] == "finished"
    scores = api.evaluate(run, ["bench"], workspace=ws)
    assert list(scores["set"]) == ["bench"] and 0 <= scores["acc"].iloc[0] <= 100
    frame = api.runs(ws)
    assert (frame["run_id"] == run.id).any() and "bench" in set(frame["eval_set"])
    emb = api.embed(run, api.draw_faces(3, generator=gen), workspace=ws)
    assert emb.shape == (3, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    feats = [api.features(run, synth.folder, workspace=ws), api.features(run, bench, workspace=ws)]
    coords = np.random.default_rng(0).normal(size=(sum(len(f) for f in feats), 2))  # UMAP itself: tests/analysis
    fig = api.umap_figure(feats, coords=coords)
    assert {t.name.split(" (")[1] for t in fig.data} == {"synthetic, 16)", "real, 8)"}  # domain, points
    stats = api.class_stats(feats)
    assert len(stats) == 2
    assert api.verdicts("table2", workspace=ws).empty and api.table("figure4", workspace=ws).empty


def test_unknown_sets_and_runs_are_named(tmp_path) -> None:
    from synface.data.errors import DataError

    with pytest.raises(DataError, match="no real set named 'nothing'"):
        api.evaluate(_untrained(tmp_path), ["nothing"], workspace=tmp_path)
    with pytest.raises(FileNotFoundError):
        api.embed("no-such-run", np.zeros((1, 112, 112, 3), np.uint8), workspace=tmp_path)


def _untrained(tmp_path):
    from synface.models.backbones import build_backbone

    return build_backbone("compact", 8)
