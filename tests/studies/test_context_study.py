"""The context ablation as one command (`reproduce context`): its cells, its refusal without a
learned model, and a smoke run of every cell with the session's learned model."""

from __future__ import annotations

import pytest

from synface.studies import plan as rp
from synface.studies.context_study import CELLS, DIGIFACE_AUGMENT, LONG_EPOCHS
from tests.studies.test_reproduce import fake_lfw  # noqa: F401  (the fixture)
from tests.support import LEARNED_MODEL, copy_models


def test_the_context_study_needs_a_learned_model(fake_lfw, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="learned face model"):
        rp.make_plan("context", "tiny", fake_lfw, tmp_path)


def test_the_context_study_runs_every_cell_and_reports_its_comparisons(learned_model_workspace, fake_lfw,  # noqa: F811
                                                                         tmp_path):
    import json

    import pandas as pd

    from synface.studies.run import reproduce

    ws = copy_models(learned_model_workspace, tmp_path / "ws")
    plan = rp.make_plan("context", "cpu", fake_lfw, ws, seeds=2, model=LEARNED_MODEL)
    assert [r.label for r in plan.runs[::2]] == list(CELLS) and len(plan.runs) == 2 * len(CELLS)
    synthetic = {d.name: d for d in plan.datasets if d.kind == "synthetic"}
    assert len({d.images for d in synthetic.values()}) == 1  # equal image counts
    photo = synthetic[f"Syn_400_20_IM_{LEARNED_MODEL}_ctx-photo"].spec
    card = json.loads((ws / "face_models" / LEARNED_MODEL / "card.json").read_text())
    assert photo["context"] == "photo" and photo["min_context_distance"] == card["stranger_nearest_p01"]
    assert synthetic["Syn_400_20_IM"].spec.get("model", "builtin") == "builtin"
    by_label = {r.label: r for r in plan.runs if r.seed == 0}
    assert by_label[CELLS[6]].config["augment"] == DIGIFACE_AUGMENT
    assert by_label[CELLS[7]].config["epochs"] == LONG_EPOCHS * by_label[CELLS[3]].config["epochs"]
    assert by_label[CELLS[5]].config["real_root"] and not by_label[CELLS[5]].config.get("data")

    out = tmp_path / "results"
    tiny, _ = reproduce("context", "tiny", fake_lfw, ws, seeds=1, out_dir=out, model=LEARNED_MODEL)
    df = pd.read_csv(out / f"context-{LEARNED_MODEL}.csv")
    assert list(df["method"]) == list(CELLS)
    md = (out / f"context-{LEARNED_MODEL}.md").read_text()
    assert "Faces in context photos beat plain renders" in md and "DigiFace-1M's augmentation helps" in md
    built = json.loads((ws / "datasets" / f"Syn_4_3_IM_{LEARNED_MODEL}_ctx-photo" / "dataset.json").read_text())
    assert built["context"]["mode"] == "photo" and built["context"]["checked"] == 12
