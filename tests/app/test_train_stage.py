"""The Train page shows what a running run is doing while it evaluates (issue 18 item 4)."""

from __future__ import annotations

import json
import os
import socket

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.support import REPO  # noqa: E402


def test_train_page_shows_the_evaluation_stage(monkeypatch, tmp_path):
    home = tmp_path / "ws"
    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    run = home / "runs" / "20250101-000000-evaluating"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"name": "evaluating", "epochs": 2, "data": "/x"}))
    (run / "status.json").write_text(json.dumps({
        "status": "running", "pid": os.getpid(), "host": socket.gethostname(), "epoch": 2, "epochs": 2,
        "step": 20, "progress": 1.0, "eta_s": 75, "stage": "evaluating lfw: 1,200/6,000 images",
        "stage_progress": 0.2}))
    at = AppTest.from_file(str(REPO / "pages" / "train.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    bars = [el.proto.text for el in at.get("progress")]
    assert any("evaluating lfw: 1,200/6,000 images" in text for text in bars), bars
    assert any("ETA 1 min 15 s" in m.value for m in at.markdown)
