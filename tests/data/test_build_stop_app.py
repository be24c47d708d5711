"""A background dataset build the user stops on the Datasets page is reported as stopped (resumable),
not as a failure (issue 16 item 7)."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.support import REPO  # noqa: E402


def test_a_stopped_background_build_is_reported_as_stopped(monkeypatch, tmp_path) -> None:
    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    at = AppTest.from_file(str(REPO / "pages" / "datasets.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    at.number_input(key="ds.ids").set_value(61).run()  # 610 images: more than the page builds inline
    at.number_input(key="ds.samples").set_value(10).run()
    at.text_input(key="ds.name").set_value("stoppable").run()
    at.button(key="btn.ds.build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="btn.ds.stop").click().run()
    deadline = time.time() + 90
    while time.time() < deadline and not any("was stopped at" in i.value for i in at.info):
        time.sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]  # a stop is not a failure
    notes = [i.value for i in at.info if "was stopped at" in i.value]
    assert notes and "The build of stoppable was stopped at" in notes[0] and "/ 610 images" in notes[0]
    out = home / "datasets" / "stoppable"
    assert not (out / "dataset.json").exists() and (out / "build_state.json").is_file()
    assert len(list(out.glob("*/*.jpg"))) < 610
