"""The Train page survives a damaged queue.json and a run whose config.json does not parse: it
names the file and keeps listing the runs (issue 16 item 3)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.support import REPO  # noqa: E402


def test_train_page_names_a_damaged_queue_and_run_config(monkeypatch, tmp_path) -> None:
    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    run = home / "runs" / "20250101-000000-broken"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{not json")
    (run / "status.json").write_text(json.dumps({"status": "stopped"}))
    (home / "runs" / "queue.json").write_text("[oops")
    at = AppTest.from_file(str(REPO / "pages" / "train.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("queue.json" in e and "not valid JSON" in e for e in errors), errors
    table = at.dataframe[0].value
    assert list(table["run"]) == [run.name] and list(table["status"]) == ["broken"]
    assert "config.json" in table["message"][0]
    assert (home / "runs" / "queue.json").read_text() == "[oops"
