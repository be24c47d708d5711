"""The Streamlit pages driven headlessly with AppTest: widgets in, images/tables/errors out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.support import LFW_ROOT, REPO, requires_lfw  # noqa: E402

TIMEOUT = 120  # the first render may compile numba kernels


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNFACE_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    return tmp_path / "ws"


def page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


def image_urls(at: AppTest) -> list[str]:
    """Media URLs of the images on the page (a URL is a hash of the image bytes)."""
    elements = at.get("image") or at.get("imgs")  # the element type was renamed in Streamlit 1.5x
    return [img.url for el in elements for img in el.proto.imgs]


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# ----------------------------------------------------------------------------- generator


def test_generator_phi_yaw_and_clamping(home):
    at = page("generator").run()
    no_errors(at)
    assert any("CPU" in m.value for m in [*at.caption, *at.markdown])  # device shown
    live0 = image_urls(at)[0]
    assert len(image_urls(at)) == 3  # live image, phi strip, attribute grid

    at.slider(key="gen.phi").set_value(0.9).run()
    no_errors(at)
    live1 = image_urls(at)[0]
    assert live1 != live0  # phi morphs the identity

    at.slider(key="gen.yaw").set_value(30).run()
    no_errors(at)
    live2 = image_urls(at)[0]
    assert live2 != live1
    assert not at.warning

    at.slider(key="gen.yaw").set_value(115).run()  # beyond the prior's +-90
    no_errors(at)
    assert at.warning and "clamped" in at.warning[0].value and "pose" in at.warning[0].value
    at.segmented_control(key="gen.attr_group").set_value("Expression").run()
    assert not [w for w in at.slider if w.key == "gen.yaw"]  # only the chosen group is drawn ...
    at.slider(key="gen.expr.smile").set_value(1.4).run()
    assert "expression" in at.warning[0].value and "pose" in at.warning[0].value  # ... the hidden yaw still counts

    at.toggle(key="gen.show3d").set_value(True).run()
    no_errors(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["type"] == "mesh3d" and len(spec["data"][0]["vertexcolor"]) > 5000

    # the attribute grid follows phi only in 'current mix' mode
    def grid_caption() -> str:
        captions = [img.caption for el in (at.get("image") or at.get("imgs")) for img in el.proto.imgs]
        return [c for c in captions if "identity phi" in c][0]

    assert "identity phi = 1.00" in grid_caption()
    at.radio(key="gen.grid_identity").set_value("current mix").run()
    assert "identity phi = 0.90" in grid_caption()
    at.slider(key="gen.phi").set_value(0.3).run()
    no_errors(at)
    assert "identity phi = 0.30" in grid_caption()


def test_app_navigation_keeps_widget_values(home):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    no_errors(at)
    assert any("Device:" in m.value for m in at.sidebar.markdown)
    at.slider(key="gen.phi").set_value(0.2).run()
    at.switch_page("pages/datasets.py").run()
    no_errors(at)
    assert at.title[0].value == "Datasets"
    at.switch_page("pages/generator.py").run()
    no_errors(at)
    assert at.slider(key="gen.phi").value == 0.2  # survived the page switch


# ----------------------------------------------------------------------------- datasets


def test_datasets_bad_real_path_and_tiny_build(home, tmp_path):
    at = page("datasets").run()
    no_errors(at)
    at.text_input(key="ds.real_path").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert at.error and "does not exist" in at.error[0].value
    empty = tmp_path / "empty"
    empty.mkdir()
    at.text_input(key="ds.real_path").set_value(str(empty)).run()
    assert at.error and "no images found" in at.error[0].value
    at.text_input(key="ds.real_path").set_value("/etc").run()  # a server folder nobody configured
    assert at.error and "outside the folders this app may read" in at.error[0].value
    assert not any("Register" in b.label for b in at.button)

    at.text_input(key="ds.real_path").set_value("").run()
    at.number_input(key="ds.ids").set_value(3).run()
    at.number_input(key="ds.samples").set_value(2).run()
    at.toggle(key="ds.im").set_value(True).run()
    no_errors(at)
    assert any("Syn_3_2_IM" in m.value for m in at.markdown)
    at.button(key="btn.ds.build").click().run()
    no_errors(at)
    assert (home / "datasets" / "Syn_3_2_IM" / "dataset.json").is_file()
    assert any("Built Syn_3_2_IM" in s.value for s in at.success)
    browse = at.dataframe[0].value
    assert "Syn_3_2_IM" in list(browse["name"])


# ----------------------------------------------------------------------------- train


def fake_run(home: Path) -> str:
    run_id = "20250101-000000-fake"
    run = home / "runs" / run_id
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"name": "fake", "epochs": 2, "data": "/x"}))
    (run / "status.json").write_text(json.dumps({"status": "finished", "epoch": 2, "epochs": 2, "step": 20,
                                                 "progress": 1.0, "eta_s": 0, "message": "finished 2 epochs"}))
    lines = [{"type": "train", "step": s, "epoch": 1 + s // 10, "loss": 20.0 - s, "images_per_s": 100.0}
             for s in range(1, 21)]
    lines += [{"type": "eval", "set": "lfw", "epoch": e, "mean_accuracy": 0.6 + 0.05 * e, "std_accuracy": 0.01}
              for e in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run_id


def test_train_page_empty_missing_dataset_and_fake_run(home):
    at = page("train").run()
    no_errors(at)
    assert any("No runs yet" in i.value for i in at.info)
    # no synthetic set: give a folder that does not exist
    at.selectbox(key="tr.data").set_value("(folder path)").run()
    at.text_input(key="tr.data_path").set_value(str(home / "nope")).run()
    at.button(key="btn.tr.launch").click().run()
    assert not at.exception
    assert at.error and "not found" in at.error[0].value

    run_id = fake_run(home)
    at = page("train").run()
    no_errors(at)
    assert any(run_id in m.value and "finished" in m.value for m in at.markdown)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [c["layout"]["title"]["text"] for c in charts]
    assert "training loss" in titles and "verification accuracy (%)" in titles
    loss = charts[titles.index("training loss")]["data"][0]
    assert len(loss["y"]) == 20


# ----------------------------------------------------------------------------- identity hygiene, registered sets


def _slot_taken(home: Path) -> None:
    """A run that holds the only slot (this test's own pid), so a launched run waits in the queue
    instead of starting a training process."""
    import os

    run = home / "runs" / "20240101-000000-busy"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"name": "busy", "data": "/x"}))
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))


def registered(at, home, timeout: float = 60) -> None:
    """Rerun the page (as its polling fragment would) until no real-set registration job runs."""
    from synface.base import jobs

    deadline = time.time() + timeout
    while any(j["alive"] for j in jobs.list_jobs("register", home)) and time.time() < deadline:
        time.sleep(0.2)
    at.run()


def test_datasets_page_asks_lfw_training_folds_and_names_a_bad_bin(home, tmp_path):
    from synface.data.realsets import get_real_set
    from tests.data.identity_sets import bad_bins, make_lfw

    at = page("datasets").run()
    for kind, path in bad_bins(tmp_path / "bad").items():
        at.text_input(key="ds.real_path").set_value(str(path)).run()
        assert any("verification .bin" in c.value for c in at.caption)
        at.button(key="btn.ds.register").click().run()
        registered(at, home)  # registration runs as a background job
        assert not at.exception, kind
        assert at.error and str(path) in at.error[0].value and "not an insightface verification .bin" in at.error[0].value
    lfw = make_lfw(tmp_path / "lfw")
    at.text_input(key="ds.real_path").set_value(str(lfw)).run()
    at.toggle(key="ds.real_align").set_value(False).run()
    at.multiselect(key="ds.real_train_folds").set_value([1]).run()
    no_errors(at)
    assert any("Folds 1 train; the pairs of folds 2, 3 test" in c.value for c in at.caption)
    at.button(key="btn.ds.register").click().run()
    registered(at, home)
    no_errors(at)
    assert any("trains on folds 1 (2 people)" in s.value for s in at.success)
    entry = get_real_set("lfw", home)
    assert entry.train_folds == [0] and entry.test_folds == [1, 2]
    table = at.dataframe[-1].value
    assert list(table["training folds"]) == ["1"] and list(table["test folds"]) == ["2, 3"]
    # a registered set can be browsed: its training people's first faces
    assert at.selectbox(key="ds.real_browse").value == "lfw"
    shown = [i for i in (at.get("image") or at.get("imgs")) if "first identities of the training people" in str(i.proto)]
    assert shown


def test_a_registered_bin_can_be_browsed_pair_by_pair(home, tmp_path):
    from synface.data.realsets import register_real_set
    from tests.data.identity_sets import make_bin

    register_real_set(make_bin(tmp_path / "cfp_fp.bin"), None, root=home)
    at = page("datasets").run()
    no_errors(at)
    assert at.selectbox(key="ds.real_browse").value == "cfp_fp"
    captions = [str(i.proto) for i in (at.get("image") or at.get("imgs"))]
    assert any("first 6 pairs: same, different" in c for c in captions), captions


def test_train_page_offers_every_registered_set_and_refuses_an_unapproved_overlap(home, tmp_path, monkeypatch):
    from synface.data.realsets import register_real_set
    from tests.data.identity_sets import make_bin, make_lfw

    monkeypatch.setenv("SYNFACE_MAX_RUNS", "1")
    lfw = make_lfw(tmp_path / "lfw")
    register_real_set(lfw, "lfw", align=False, root=home, train_folds=[0])
    for name in ("cfp_fp", "calfw"):
        register_real_set(make_bin(tmp_path / f"{name}.bin"), None, root=home)
    _slot_taken(home)
    at = page("train").run()
    no_errors(at)
    assert at.multiselect(key="tr.eval_sets").value == ["calfw", "cfp_fp", "lfw"]  # all registered, by default
    at.selectbox(key="tr.data").set_value("(folder path)").run()
    at.text_input(key="tr.data_path").set_value(str(lfw / "images")).run()  # every LFW person
    at.button(key="btn.tr.launch").click().run()
    assert not at.exception
    assert at.error and "Cannot launch: identity overlap" in at.error[0].value
    assert "'lfw' shares 4 people" in at.error[0].value and "I accept identity overlap" in at.error[0].value
    assert [p.name for p in (home / "runs").iterdir()] == ["20240101-000000-busy"]  # nothing was made

    at.checkbox(key="tr.allow_overlap").check().run()
    at.button(key="btn.tr.launch").click().run()
    assert at.error and "fewer than one batch of 128" in at.error[0].value  # 12 images: refused before a folder
    assert [p.name for p in (home / "runs").iterdir()] == ["20240101-000000-busy"]
    at.number_input(key="tr.batch").set_value(8).run()
    at.button(key="btn.tr.launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("queued" in s.value for s in at.success)
    (run,) = [p for p in (home / "runs").iterdir() if p.is_dir() and p.name != "20240101-000000-busy"]
    check = json.loads((run / "identity_check.json").read_text())
    assert check["overridden"] and [s["label"] for s in check["sets"]] == ["calfw", "cfp_fp", "lfw"]
    assert [s["name"] for s in json.loads((run / "config.json").read_text())["eval_sets"]] == ["calfw", "cfp_fp", "lfw"]
    at.selectbox(key="tr.run").set_value(run.name).run()
    assert any("identity overlap accepted" in w.value for w in at.warning)


def test_train_page_names_an_evaluation_folder_without_pairs(home, tmp_path):
    from tests.data.identity_sets import make_lfw

    nopairs = make_lfw(tmp_path / "nopairs", pairs=False)
    at = page("train")
    at.session_state["side.lfw"] = str(nopairs)
    at.run()
    assert at.multiselect(key="tr.eval_sets").value == ["LFW folder (sidebar)"]  # nothing registered
    at.selectbox(key="tr.data").set_value("(folder path)").run()
    at.text_input(key="tr.data_path").set_value(str(nopairs / "images")).run()
    at.button(key="btn.tr.launch").click().run()
    assert not at.exception
    assert at.error and "evaluation set 'lfw' cannot be scored" in at.error[0].value and "no pairs.txt" in at.error[0].value
    assert not (home / "runs").exists()


# ----------------------------------------------------------------------------- features (issue 18 item 7)


def _feature_cache(path: Path, dataset: str, domain: str, phi: list[float]) -> str:
    """A saved FeatureSet of len(phi) images (what extraction writes), without extracting."""
    import numpy as np
    import pandas as pd

    from synface.analysis.features import FeatureSet

    n = len(phi)
    meta = pd.DataFrame({"path": [f"/nowhere/{dataset}/{i}.jpg" for i in range(n)],
                         "identity": [f"{dataset}_{i // 2}" for i in range(n)],
                         "label": np.arange(n) // 2, "phi": np.asarray(phi, np.float32), "partner": -np.ones(n, int)})
    feats = np.random.default_rng(n).normal(size=(n, 8)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    FeatureSet(feats, meta["label"].to_numpy(), dataset, "test", meta, domain=domain).save(path)
    return str(path)


def _points(values) -> int:
    """How many values a plotly array holds (a list, or base64 'bdata' of a typed array)."""
    import base64

    import numpy as np

    if isinstance(values, dict):
        return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])))
    return len(values)


def test_features_picker_lists_a_registered_lfw_once(home, tmp_path):
    from synface.data.realsets import register_real_set
    from tests.data.identity_sets import make_lfw

    lfw = make_lfw(tmp_path / "lfw")
    at = page("features")
    at.session_state["side.lfw"] = str(lfw)
    at.run()
    no_errors(at)
    assert [o for o in at.multiselect(key="feat.sets").options if "LFW" in o] == [f"LFW ({lfw})"]
    # registered (an aligned copy under <workspace>/real): that copy stands for the folder
    register_real_set(lfw, "lfw", align=True, root=home, workers=1)
    at.run()
    options = at.multiselect(key="feat.sets").options
    assert [o for o in options if "lfw" in o.lower()] == ["lfw (LFW, aligned)"], options


def test_features_plot_keeps_domains_apart_and_real_faces_under_phi(home):
    import numpy as np

    home.mkdir(parents=True, exist_ok=True)
    paths = [_feature_cache(home / "syn.npz", "Syn_A", "synthetic", [1.0, 0.5, 0.75]),
             _feature_cache(home / "real.npz", "lfw", "real", [float("nan")] * 2)]  # 5 points: PCA, no UMAP JIT
    at = page("features")
    at.session_state["features_result"] = paths
    at.run()
    no_errors(at)
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    by_name = {t["name"]: t for t in traces}
    assert set(by_name) == {"Syn_A (synthetic, 3)", "lfw (real, 2)"}  # each set's size in the legend
    syn, real = by_name["Syn_A (synthetic, 3)"]["marker"], by_name["lfw (real, 2)"]["marker"]
    assert syn["size"] == real["size"] == 11  # a handful of points stands out
    assert syn["color"].startswith("#08") and real["color"].startswith("#a6")  # a blue and an orange
    assert set(np.atleast_1d(real["symbol"])) == {"diamond"} and set(np.atleast_1d(syn["symbol"])) == {"circle"}

    at.selectbox(key="feat.colour").set_value("phi").run()
    no_errors(at)
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    by_name = {t["name"]: t for t in traces}
    assert set(by_name) == {"phi", "real (no phi)"}
    assert _points(by_name["phi"]["x"]) == 3 and _points(by_name["real (no phi)"]["x"]) == 2  # every real face shown
    assert by_name["real (no phi)"]["marker"]["color"] == "#9e9e9e"


@requires_lfw
def test_an_impossible_real_subset_is_refused_before_a_run_folder_exists(home):
    """R_ID 200 x k 5 of LFW folds 1-3: fewer people have five photos; Launch names both numbers
    and how many qualify, as an error, and makes no run folder."""
    from synface.data.imagefolder import ImageFolderIndex
    from synface.data.realsets import get_real_set, register_real_set
    from synface.data.synthetic import SynthConfig, build_dataset

    build_dataset(SynthConfig(ids=4, samples=2, name="Syn_small"), home / "datasets" / "Syn_small")
    register_real_set(LFW_ROOT, "lfw", align=False, root=home, train_folds=[0, 1, 2])
    index = ImageFolderIndex(get_real_set("lfw", home).train_root)
    qualify = sum(len(files) >= 5 for files in index.images.values())
    assert qualify < 200
    at = page("train").run()
    no_errors(at)
    at.selectbox(key="tr.data").set_value("Syn_small").run()
    at.selectbox(key="tr.real").set_value("lfw").run()
    at.number_input(key="tr.real_ids").set_value(200).run()
    at.number_input(key="tr.real_k").set_value(5).run()
    at.selectbox(key="tr.eval").set_value("(none)").run()
    at.button(key="btn.tr.launch").click().run()
    assert not at.exception and at.error
    message = at.error[0].value
    assert message.startswith("Cannot launch:") and "Real_200_5 needs 200 identities with >= 5 images" in message
    assert f"only {qualify} of {index.num_identities}" in message
    assert not (home / "runs").exists() or not [p for p in (home / "runs").iterdir() if p.is_dir()]
