"""The face model as a choice in the app: the Generator page's picker, identity editor and fit
expander, and the Datasets page's model picker, driven headlessly with AppTest."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit")

from tests.app.test_app_pages import image_urls, no_errors, page  # noqa: E402
from tests.support import LEARNED_MODEL, copy_models  # noqa: E402


@pytest.fixture
def learned_home(learned_model_workspace, monkeypatch, tmp_path):
    """A workspace of this test's own holding the session's learned model."""
    home = copy_models(learned_model_workspace, tmp_path / "ws")
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    return home


def live(at) -> str:
    return image_urls(at)[0]


def test_generator_page_renders_with_a_learned_model(learned_home):
    at = page("generator").run()
    no_errors(at)
    picker = at.selectbox(key="gen.model")
    assert picker.options == ["builtin", LEARNED_MODEL] and picker.value == "builtin"
    assert not [s for s in at.slider if s.key.startswith("gen.learned.")]  # the built-in page is as before
    builtin = live(at)

    picker.set_value(LEARNED_MODEL).run()
    no_errors(at)
    assert any(f"learned-{LEARNED_MODEL}-" in c.value for c in at.caption)
    assert len(image_urls(at)) == 3 and live(at) != builtin  # live image, phi strip, attribute grid
    shape_sliders = [s for s in at.slider if s.key.startswith("gen.learned.A.shape.")]
    assert len(shape_sliders) >= 40  # one per learned shape direction, not hundreds of albedo sliders
    regions = [b for b in at.selectbox if b.key.startswith("gen.learned.A.region.")]
    assert len(regions) == 4

    first = live(at)
    pick = regions[1]
    pick.select_index(1 if pick.index == 0 else 0).run()  # another source person's eyes and brows
    no_errors(at)
    second = live(at)
    assert second != first
    at.slider(key="gen.learned.A.shape.0").set_value(2.5).run()
    no_errors(at)
    assert live(at) != second

    at.selectbox(key="gen.model").set_value("builtin").run()  # back to the built-in head: the same face as before
    no_errors(at)
    assert live(at) == builtin
    at.selectbox(key="gen.model").set_value(LEARNED_MODEL).run()
    assert at.slider(key="gen.learned.A.shape.0").value == 2.5  # the edits are kept
    seed = at.number_input(key="gen.seed_a").value
    at.button(key="btn.gen.learned.new").click().run()  # a new person: a new seed, the editor follows it
    no_errors(at)
    assert at.number_input(key="gen.seed_a").value != seed


def test_generator_page_fit_expander_names_a_bad_folder(learned_home, tmp_path):
    at = page("generator").run()
    at.text_input(key="gen.fit.photos").set_value(str(tmp_path / "nowhere")).run()
    at.text_input(key="gen.fit.name").set_value("mine").run()
    at.button(key="btn.gen.fit").click().run()
    assert not at.exception
    assert at.error and "does not exist" in at.error[0].value
    assert not (learned_home / "jobs").exists()


def test_datasets_page_builds_a_set_of_a_learned_model(learned_home):
    at = page("datasets").run()
    no_errors(at)
    assert at.selectbox(key="ds.model").options == ["builtin", LEARNED_MODEL]
    assert not [n for n in at.number_input if n.key == "ds.min_dist"]  # the built-in head has no source people
    at.selectbox(key="ds.model").set_value(LEARNED_MODEL).run()
    no_errors(at)
    assert at.number_input(key="ds.min_dist").value == 0.0
    at.number_input(key="ds.ids").set_value(2).run()
    at.number_input(key="ds.samples").set_value(1).run()
    no_errors(at)
    name = f"Syn_2_1_{LEARNED_MODEL}"
    assert any(name in m.value for m in at.markdown)
    at.button(key="btn.ds.build").click().run()
    no_errors(at)
    card = json.loads((learned_home / "datasets" / name / "dataset.json").read_text())
    assert card["model"] == LEARNED_MODEL and card["privacy"]["identities_checked"] == 2
    table = at.dataframe[0].value
    assert list(table.loc[table["name"] == name, "model"]) == [LEARNED_MODEL]


def test_generator_page_follows_a_running_fit_and_stops_it(monkeypatch, tmp_path):
    import sys
    import time

    from synface.base import jobs
    from synface.fitting.jobs import fit_status

    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    bar = "import sys, time; sys.stderr.write('face-model landmarks:  50%|#    | 2/4 [00:01<00:01]\\n'); sys.stderr.flush(); time.sleep(60)"
    jobs.start("fit", "slow", [sys.executable, "-c", bar], home, info={"photos": str(tmp_path)})
    deadline = time.time() + 20
    while not fit_status("slow", home)["stages"] and time.time() < deadline:
        time.sleep(0.05)
    at = page("generator").run()
    no_errors(at)
    assert any("landmarks: 2 / 4" in p.proto.text for p in at.get("progress"))
    at.button(key="btn.gen.fit.stop.slow").click().run()
    deadline = time.time() + 20
    while fit_status("slow", home)["alive"] and time.time() < deadline:
        time.sleep(0.05)
    at.run()
    assert fit_status("slow", home)["state"] == "stopped"
    assert any("stopped before it finished" in w.value for w in at.warning)


def test_paper_tables_are_shown_per_face_model(learned_home):
    """Results' paper tables and the Attributes page pick the face model whose studies they show:
    the built-in head's shipped reports, and none of them for a learned model without runs."""
    at = page("results").run()
    no_errors(at)
    picker = at.selectbox(key="res.model")
    assert picker.options == ["builtin", LEARNED_MODEL] and picker.value == "builtin"
    shipped = [e for e in at.expander if "shipped with the repository" in e.label]
    assert len(shipped) == 4  # the four shipped reports are the built-in head's
    picker.set_value(LEARNED_MODEL).run()
    no_errors(at)
    assert not [e for e in at.expander if "shipped with the repository" in e.label]
    assert sum("No finished runs for this table yet" in i.value for i in at.info) == 4

    at = page("attributes").run()
    no_errors(at)
    assert at.selectbox(key="attr.model").options == ["builtin", LEARNED_MODEL]


def test_generator_page_lists_damaged_models_with_their_reason_and_removes_them(monkeypatch, tmp_path):
    """A damaged model folder (a FIFO card, a NaN threshold) hides nothing else: the picker offers
    the good model, the page names each damaged one with its reason, and Remove deletes it."""
    import os

    from tests.hostile import write_model_folder

    home = tmp_path / "ws"
    write_model_folder(home, "good")
    fifo = write_model_folder(home, "pipe")
    (fifo / "card.json").unlink()
    os.mkfifo(fifo / "card.json")
    nan = write_model_folder(home, "nan")
    card = json.loads((nan / "card.json").read_text())
    (nan / "card.json").write_text(json.dumps({**card, "genuine_threshold": float("nan")}))
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    at = page("generator").run(timeout=120)
    no_errors(at)
    assert at.selectbox(key="gen.model").options == ["builtin", "good"]
    shown = " ".join(m.value for m in at.markdown)
    assert "**nan**" in shown and "'genuine_threshold' is nan" in shown and "**pipe**" in shown and "FIFO" in shown
    at.button(key="btn.gen.remove_model.pipe").click().run(timeout=120)
    no_errors(at)
    assert not fifo.exists() and nan.exists()
    assert "**pipe**" not in " ".join(m.value for m in at.markdown)
