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


def card_privacy_strangers(home) -> int:
    """How many source photos the model's stranger distances count (one per fitted photo)."""
    import numpy as np

    from synface.face.model_files import SOURCES_FILE

    with np.load(home / "face_models" / LEARNED_MODEL / SOURCES_FILE) as data:
        return len(data["person"])


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
    # source people are anonymous unless asked for, with the reason beside the switch
    card = json.loads((learned_home / "face_models" / LEARNED_MODEL / "card.json").read_text())
    assert all(o.startswith("source person ") for o in regions[0].options)
    assert not any(name in o for o in regions[0].options for name in card["source_people"])
    assert any("names are hidden by default" in c.value for c in at.caption)
    at.toggle(key="gen.learned.names").set_value(True).run()
    named = [b for b in at.selectbox if b.key == regions[0].key][0]
    assert any(name in o for o in named.options for name in card["source_people"])
    at.toggle(key="gen.learned.names").set_value(False).run()
    regions = [b for b in at.selectbox if b.key.startswith("gen.learned.A.region.")]

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
    card = json.loads((learned_home / "face_models" / LEARNED_MODEL / "card.json").read_text())
    assert card["stranger_nearest_p01"] > 0  # privacy on by default: the card's strangers' 1st percentile
    assert at.number_input(key="ds.min_dist").value == pytest.approx(card["stranger_nearest_p01"])
    at.number_input(key="ds.min_dist").set_value(0.0).run()  # the user lowers it: said, and allowed
    assert any("Below the default" in c.value for c in at.caption)
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
    # the card's privacy section: both yardsticks explained, both distributions drawn
    text = " ".join(m.value for m in at.markdown)
    assert "How near do this set's people come" in text and "Pair threshold" in text
    assert "Real strangers' 1st percentile" in text
    hist = json.loads((learned_home / "datasets" / name / "dataset.json").read_text())["privacy"]["histogram"]
    assert sum(hist["identities"]) == 2 and sum(hist["strangers"]) == card_privacy_strangers(learned_home)
    assert at.get("plotly_chart")


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
    assert sum("No finished runs for this table yet" in i.value for i in at.info) == 5  # the context study too

    at = page("attributes").run()
    no_errors(at)
    assert at.selectbox(key="attr.model").options == ["builtin", LEARNED_MODEL]


@pytest.mark.slow
def test_a_model_fitted_on_lfw_folds_1_3_trains_with_lfw_folds_4_5_evaluation(learned_home, monkeypatch):
    """The session's model is fitted on the people of LFW folds 1-3: a run on its faces is refused
    against every LFW pair (naming the face model's source people and the remedy) and trains, then
    scores, against the pairs of folds 4-5."""
    import time

    from synface.data.lfw import people_of_folds, read_people
    from synface.data.realsets import register_real_set
    from synface.data.synthetic import SynthConfig, build_dataset
    from synface.runs.run import Run
    from tests.support import LFW_ROOT

    card = json.loads((learned_home / "face_models" / LEARNED_MODEL / "card.json").read_text())
    table = read_people(LFW_ROOT / "people.txt")
    assert card["folds"] == [1, 2, 3] and set(card["source_people"]) <= set(people_of_folds(table, [0, 1, 2]))
    monkeypatch.setenv("SYNFACE_MAX_RUNS", "1")
    build_dataset(SynthConfig(ids=6, samples=3, model=LEARNED_MODEL, name="Syn_tiny_folds123"),
                  learned_home / "datasets" / "Syn_tiny_folds123", workspace=learned_home)
    register_real_set(LFW_ROOT, "lfw45", align=False, root=learned_home, train_folds=[0, 1, 2])  # tests folds 4-5
    register_real_set(LFW_ROOT, "lfw_all", align=False, root=learned_home, train_folds=[])  # tests every fold

    at = page("train").run()
    no_errors(at)
    at.selectbox(key="tr.data").set_value("Syn_tiny_folds123").run()
    at.multiselect(key="tr.eval_sets").set_value(["lfw_all"]).run()
    for key, value in (("tr.epochs", 1), ("tr.steps", 2), ("tr.batch", 6)):
        at.number_input(key=key).set_value(value).run()
    at.button(key="btn.tr.launch").click().run()
    assert not at.exception and at.error, [e.value for e in at.error]
    refusal = at.error[0].value
    assert f"source people of face model '{LEARNED_MODEL}'" in refusal and "folds 1-3" in refusal
    assert "LFW folds 4-5" in refusal
    assert not (learned_home / "runs").exists() or not list((learned_home / "runs").iterdir())

    at.multiselect(key="tr.eval_sets").set_value(["lfw45"]).run()
    at.button(key="btn.tr.launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (folder,) = [p for p in (learned_home / "runs").iterdir() if p.is_dir()]
    run = Run(folder)
    check = json.loads((folder / "identity_check.json").read_text())
    assert check["summary"].startswith("no identity overlap found (1 of 1") and not check["overridden"]
    deadline = time.time() + 600
    while run.status().get("status") not in ("finished", "failed") and time.time() < deadline:
        time.sleep(1)
    assert run.status()["status"] == "finished", (run.status(), run.log_path.read_text()[-2000:])
    from synface.data.lfw import read_pairs

    test_pairs = [pair for pair in read_pairs(LFW_ROOT / "pairs.txt") if pair.fold >= 3]  # folds 4-5
    assert run.read_eval()["lfw45"]["num_pairs"] == len(test_pairs) > 0


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


def test_generator_page_draws_the_live_face_and_the_strip_into_a_context_photo(learned_home):
    at = page("generator").run()
    assert any("choose a learned face model" in c.value for c in at.caption)  # no switch for the built-in head
    at.selectbox(key="gen.model").set_value(LEARNED_MODEL).run()
    no_errors(at)
    switch = at.radio(key="gen.context")
    assert switch.options == ["plain", "photo", "background"] and switch.value == "plain"
    plain_live, plain_strip = image_urls(at)[0], image_urls(at)[1]
    switch.set_value("photo").run()
    no_errors(at)
    urls = image_urls(at)
    assert len(urls) == 4  # live face, context photo, strip, grid
    assert urls[0] != plain_live and urls[2] != plain_strip
    captions = [img.caption for el in (at.get("image") or at.get("imgs")) for img in el.proto.imgs]
    assert any(c.startswith("context photo #") for c in captions)
    assert any("in context photo #" in c for c in captions)  # the strip is drawn in the same photo
    first = urls[0]
    at.number_input(key="gen.context_seed").set_value(7).run()
    no_errors(at)
    assert image_urls(at)[0] != first or image_urls(at)[1] != urls[1]


def test_datasets_page_builds_a_set_drawn_into_context_photos(learned_home):
    import pandas as pd

    at = page("datasets").run()
    at.selectbox(key="ds.model").set_value(LEARNED_MODEL).run()
    no_errors(at)
    assert at.radio(key="ds.context").value == "plain"
    at.radio(key="ds.context").set_value("photo").run()
    no_errors(at)
    assert any("real hair, ears, clothes and backgrounds" in c.value for c in at.caption)
    assert at.checkbox(key="ds.camera_match").value is True
    at.number_input(key="ds.ids").set_value(2).run()
    at.number_input(key="ds.samples").set_value(2).run()
    name = f"Syn_2_2_{LEARNED_MODEL}_ctx-photo"
    assert any(name in m.value for m in at.markdown)
    at.button(key="btn.ds.build").click().run()
    no_errors(at)
    folder = learned_home / "datasets" / name
    card = json.loads((folder / "dataset.json").read_text())
    context = card["context"]
    assert context["mode"] == "photo" and context["checked"] == 4 and context["pool"] == 12
    assert context["camera_match"] is True and "within_identity" in context["shared_context_person"]
    assert context["min_context_distance"] == pytest.approx(card["privacy"]["min_source_distance"])
    assert 1 <= context["photos_used"] <= 4 and len(context["photos"]) == context["photos_used"]
    manifest = pd.read_parquet(folder / "manifest.parquet")
    assert manifest["context"].between(0, 11).all() and len(manifest) == 4


def test_datasets_page_offers_distinct_source_people_for_a_learned_model(learned_home):
    at = page("datasets").run()
    assert not [c for c in at.checkbox if c.key == "ds.distinct"]  # the built-in head has no source people
    at.selectbox(key="ds.model").set_value(LEARNED_MODEL).run()
    no_errors(at)
    at.number_input(key="ds.ids").set_value(3).run()
    at.number_input(key="ds.samples").set_value(2).run()
    assert at.checkbox(key="ds.distinct").value is False
    at.checkbox(key="ds.distinct").check().run()
    no_errors(at)
    assert any(f"Syn_3_2_{LEARNED_MODEL}_distinct" in m.value for m in at.markdown)
