"""Start-up (issue 18 item 8): the server never waits for the generator's warm-up, and pages that
do not render faces never wait for it either. `python -m synface bench startup` times the real
thing in Chromium; these tests pin the mechanism."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("streamlit")

from tests.support import REPO  # noqa: E402


def test_start_warmup_runs_once_in_the_background(monkeypatch):
    from ui import common

    release, calls = threading.Event(), []

    def slow_preload() -> None:
        calls.append(time.perf_counter())
        release.wait(10)

    monkeypatch.setattr(common, "preload", slow_preload)
    monkeypatch.setattr(common, "_WARMUP", [])
    t0 = time.perf_counter()
    thread = common.start_warmup()
    assert time.perf_counter() - t0 < 1.0 and thread.daemon
    assert common.start_warmup() is thread and thread.is_alive()  # idempotent: one warm-up per process
    release.set()
    thread.join(10)
    assert not thread.is_alive() and len(calls) == 1


def test_importing_app_as_the_server_does_starts_the_warmup_without_waiting():
    """`streamlit run app.py` imports app.py to find its st.App; that import must return at once
    with the warm-up still running (here it never finishes until released)."""
    code = (
        "import threading, time\n"
        "from ui import common\n"
        "release = threading.Event()\n"
        "common.preload = lambda: release.wait(30)\n"
        "t0 = time.perf_counter()\n"
        "import app\n"
        "print(round(time.perf_counter() - t0, 3), common.start_warmup().is_alive(), type(app.app).__name__)\n"
        "release.set()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    took, warming, kind = out.stdout.split()
    assert float(took) < 5.0 and warming == "True" and kind == "App"


def test_device_label_does_not_wait_for_the_generator(monkeypatch):
    from ui import common
    import synface.generator

    def never(*args, **kwargs):
        raise AssertionError("the sidebar built the generator")

    monkeypatch.setenv("SYNFACE_DEVICE", "cpu")
    monkeypatch.setattr(synface.generator, "shared_generator", never)
    assert common.device_label() == "CPU"


def test_bench_startup_names_what_it_cannot_do(tmp_path):
    from synface.bench.startup import MAX_MOVES, bench_startup

    with pytest.raises(ValueError, match=f"1 to {MAX_MOVES} slider moves"):
        bench_startup(moves=MAX_MOVES + 1)
    with pytest.raises(ValueError, match="at least 1 repeat"):
        bench_startup(repeats=0)
    with pytest.raises(ValueError, match="Chromium, not found at .*nochrome"):
        bench_startup(chromium=str(tmp_path / "nochrome"))
    with pytest.raises(ValueError, match="no face model 'absent' in .*face_models"):  # catalog's one check
        bench_startup(model="absent", workspace=tmp_path)
