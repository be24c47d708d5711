"""Background jobs of the Datasets page (`python -m synface generate --config` and `real add` through
synface.base.jobs): a build the user stops is reported as stopped (resumable), not as a failure
(issue 16 item 7), Build resumes it, a tiny set builds through a job, and a real set registers
through a job."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from synface.base import jobs  # noqa: E402
from tests.support import REPO  # noqa: E402


@pytest.fixture
def home(monkeypatch, tmp_path):
    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    return home


def _page() -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "datasets.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    return at


def _until(at: AppTest, done, what: str, timeout: float = 90) -> None:
    """Rerun the page (as its polling fragment would) until `done()`."""
    deadline = time.time() + timeout
    while time.time() < deadline and not done():
        time.sleep(0.3)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert done(), what


def _images(home, name: str) -> int:
    return jobs.status("build", name, home)["stages"].get(f"generate {name}", (0, 0))[0]


def test_a_stopped_background_build_is_reported_as_stopped_and_build_resumes_it(home) -> None:
    at = _page()
    at.number_input(key="ds.ids").set_value(100).run()  # 1,000 images: more than the page builds inline
    at.number_input(key="ds.samples").set_value(10).run()
    at.text_input(key="ds.name").set_value("stoppable").run()
    assert at.toggle(key="ds.background").disabled  # a set this big always builds in the background
    at.button(key="btn.ds.build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert jobs.status("build", "stoppable", home)["alive"]
    _until(at, lambda: _images(home, "stoppable") > 0, "the build job drew no progress")
    at.run()
    at.button(key="btn.ds.stop").click().run()
    _until(at, lambda: any("was stopped at" in i.value for i in at.info), "no 'stopped' note")
    assert not at.error, [e.value for e in at.error]  # a stop is not a failure
    job = jobs.status("build", "stoppable", home)
    assert job["state"] == "stopped" and job["stop_requested"]
    notes = [i.value for i in at.info if "was stopped at" in i.value]
    assert notes[0].startswith("The build of stoppable was stopped at ") and "/ 1000 images" in notes[0]
    out = home / "datasets" / "stoppable"
    assert not (out / "dataset.json").exists() and (out / "build_state.json").is_file()
    written = len(list(out.glob("*/*.jpg")))
    assert 0 < written < 1000

    at.button(key="btn.ds.build").click().run()  # resumes: the images already there are kept
    _until(at, lambda: not jobs.status("build", "stoppable", home)["alive"], "the resumed build did not end")
    assert any("stoppable is built" in s.value for s in at.success)
    result = jobs.status("build", "stoppable", home)["result"]
    assert result["images"] == 1000 and result["already_present"] >= written and result["rendered"] <= 1000 - written
    assert len(list(out.glob("*/*.jpg"))) == 1000 and json.loads((out / "dataset.json").read_text())["num_images"] == 1000


def test_a_tiny_set_builds_as_a_background_job(home) -> None:
    at = _page()
    at.number_input(key="ds.ids").set_value(3).run()
    at.number_input(key="ds.samples").set_value(2).run()
    at.toggle(key="ds.im").set_value(True).run()
    at.toggle(key="ds.background").set_value(True).run()
    at.button(key="btn.ds.build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    _until(at, lambda: not jobs.status("build", "Syn_3_2_IM", home)["alive"], "the build job did not end")
    assert any("Syn_3_2_IM is built" in s.value for s in at.success)
    job = jobs.status("build", "Syn_3_2_IM", home)
    assert job["state"] == "finished" and job["exit_code"] == 0 and job["result"]["images"] == 6
    card = json.loads((home / "datasets" / "Syn_3_2_IM" / "dataset.json").read_text())
    assert card["config"]["im"] is True and card["num_images"] == 6
    assert "Syn_3_2_IM" in list(at.dataframe[0].value["name"])


def test_a_real_folder_registers_as_a_background_job(home, tmp_path) -> None:
    from tests.data.identity_sets import bad_bins, make_lfw

    at = _page()
    bad = bad_bins(tmp_path / "bad")["random"]
    at.text_input(key="ds.real_path").set_value(str(bad)).run()
    at.button(key="btn.ds.register").click().run()
    _until(at, lambda: bool(at.error), "a bad .bin gave no error")
    assert str(bad) in at.error[0].value and "not an insightface verification .bin" in at.error[0].value

    lfw = make_lfw(tmp_path / "faces", pairs=False, people=False)  # a plain <identity>/<image> folder
    at.text_input(key="ds.real_path").set_value(str(lfw / "images")).run()
    at.text_input(key="ds.real_name").set_value("faces").run()
    at.toggle(key="ds.real_align").set_value(False).run()
    at.button(key="btn.ds.register").click().run()
    assert not at.exception, [e.value for e in at.exception]
    _until(at, lambda: any("Registered faces" in s.value for s in at.success), "the registration did not finish",
           timeout=60)
    assert not at.error and jobs.status("register", "faces", home)["state"] == "finished"
    table = at.dataframe[-1].value
    assert list(table["name"]) == ["faces"] and list(table["images"]) == [12]
