"""`python -m synface bench startup`: how soon `streamlit run app.py` answers and shows a face.

Each trial starts the app on a free port with an empty temporary workspace, polls
`/_stcore/health` from the moment the process starts, opens the Generator page in Chromium
(Playwright) as soon as the server answers, times the first face, then presses the phi slider's
arrow key `moves` times and times each new image. The medians over the trials are what the
README quotes. `cold` gives every trial an empty numba cache: a fresh clone's first start, when
every renderer kernel compiles. `model` times the slider with a learned face model: its folder is
copied from `workspace` into each trial's workspace (without its fit cache) and chosen in the
page's face model picker once the first face is up (the seconds that takes are reported too).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

from synface.base.workspace import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: the issue's bars: health answers within 10 s, the first face within 3 s of the page opening,
#: a slider move shows its image within 200 ms
BARS = {"health_s": 10.0, "first_face_s": 3.0, "slider_ms": 200.0}
MAX_MOVES = 50
_IDLE_JS = ("() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
            " return (!w || !/Running|Stop/.test(w.innerText)) &&"
            " !document.querySelector('[data-testid=\"stSkeleton\"], [data-testid=\"stSpinner\"]'); }")
_NEW_IMAGE_JS = ("(old) => { const i = document.querySelector('[data-testid=\"stImage\"] img');"
                 " return i && i.src !== old; }")
_IMAGE = '[data-testid="stImage"] img'


def free_port() -> int:
    """A TCP port free on localhost now (for a server started next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Block until a Streamlit server answers its health check; one error line if it dies or stays silent."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url}/_stcore/health did not answer within {timeout:.0f} s")


def _wait_idle(page, timeout_ms: int) -> None:
    page.wait_for_function(_IDLE_JS, timeout=timeout_ms)
    page.wait_for_timeout(300)


def _slider_latencies(page, moves: int, timeout_ms: int) -> list[float]:
    """Milliseconds from an arrow-key press on the phi slider to a new live image, per move."""
    before = page.locator(_IMAGE).first.get_attribute("src")
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text="phi (weight of A)").locator('input[type="range"]')
    thumb.focus()
    out = []
    for _ in range(moves):  # every move a new phi, so every image is a render, not a cached one
        t = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(_NEW_IMAGE_JS, arg=before, timeout=timeout_ms)
        out.append(1000 * (time.perf_counter() - t))
        before = page.locator(_IMAGE).first.get_attribute("src")
        _wait_idle(page, timeout_ms)
    return out


def _choose_model(page, model: str, timeout_ms: int) -> float:
    """Pick `model` in the Generator's face model picker; seconds until its first face is shown."""
    before = page.locator(_IMAGE).first.get_attribute("src")
    t = time.perf_counter()
    page.locator('[data-testid="stSelectbox"]').filter(has_text="face model").first.click()
    page.locator('[role="option"]').filter(has_text=model).first.click()
    page.wait_for_function(_NEW_IMAGE_JS, arg=before, timeout=timeout_ms)
    _wait_idle(page, timeout_ms)
    return time.perf_counter() - t


def _trial(browser, moves: int, cold: bool, device: str, timeout: float, model: str | None = None,
           models_from: Path | None = None) -> dict:
    home = Path(tempfile.mkdtemp(prefix="synface-startup-"))
    env = dict(os.environ, SYNFACE_HOME=str(home / "ws"), SYNFACE_DEVICE=device, SYNFACE_MAX_RUNS="1")
    if model is not None and models_from is not None:
        shutil.copytree(models_from / "face_models" / model, home / "ws" / "face_models" / model,
                        ignore=shutil.ignore_patterns("cache"))
    if cold:
        env["NUMBA_CACHE_DIR"] = str(home / "numba-cache")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = home / "streamlit.log"
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    try:
        with open(log_path, "w") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                 "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_health(url, proc, timeout)
            health = time.perf_counter() - t0
            page.goto(url)
            t_open = time.perf_counter()
            page.wait_for_selector(_IMAGE, timeout=int(1000 * timeout))
            first_face = time.perf_counter() - t_open
            _wait_idle(page, int(1000 * timeout))
            switch = _choose_model(page, model, int(1000 * timeout)) if model is not None else None
            latencies = _slider_latencies(page, moves, int(1000 * timeout))
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        warm = re.search(r"generator ready in ([0-9.]+) s", log_path.read_text(errors="replace"))
        return {"health_s": round(health, 2), "first_face_s": round(first_face, 2),
                "model_switch_s": None if switch is None else round(switch, 2),
                "face_after_launch_s": round(health + first_face, 2),
                "generator_warm_s": float(warm.group(1)) if warm else None,
                "slider_ms": [round(x) for x in latencies],
                "slider_ms_median": round(statistics.median(latencies)) if latencies else None}
    finally:
        context.close()
        shutil.rmtree(home, ignore_errors=True)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def bench_startup(repeats: int = 3, moves: int = 15, cold: bool = False, device: str = "cpu",
                  chromium: str = CHROMIUM, timeout: float = 180.0,
                  progress: Callable[[int, int], None] | None = None, model: str | None = None,
                  workspace: str | Path | None = None) -> dict:
    """Start-up and interaction latency of the app in a real browser, `repeats` times; medians
    against the bars in BARS (the slider with learned face model `model` of `workspace`, when given)."""
    if repeats < 1 or not 1 <= moves <= MAX_MOVES:
        raise ValueError(f"need at least 1 repeat and 1 to {MAX_MOVES} slider moves (phi 0.5 upwards in steps "
                         f"of 0.01), got repeats={repeats}, moves={moves}")
    if not Path(chromium).is_file():
        raise ValueError(f"bench startup drives Chromium, not found at {chromium} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        raise ValueError("bench startup needs the playwright package (pip install playwright)") from None
    models_from = None
    if model not in (None, "", "builtin"):
        from synface.base.workspace import workspace_root  # noqa: PLC0415
        from synface.face.catalog import model_card  # noqa: PLC0415

        models_from = workspace_root(workspace)
        model_card(model, models_from)  # a missing or damaged model: one FaceModelError (a ValueError) naming it
    else:
        model = None
    tick = progress or (lambda done, total: None)
    load = os.getloadavg()[0]
    trials = []
    tick(0, repeats)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for i in range(repeats):
                trials.append(_trial(browser, moves, cold, device, timeout, model, models_from))
                tick(i + 1, repeats)
        finally:
            browser.close()
    medians = {
        "health_s": _median([t["health_s"] for t in trials]),
        "first_face_s": _median([t["first_face_s"] for t in trials]),
        "face_after_launch_s": _median([t["face_after_launch_s"] for t in trials]),
        "generator_warm_s": _median([t["generator_warm_s"] for t in trials]),
        "slider_ms": _median([t["slider_ms_median"] for t in trials]),
        "model_switch_s": _median([t["model_switch_s"] for t in trials]),
    }
    return {
        "bench": "startup", "device": device, "model": model or "builtin", "cold_numba_cache": cold,
        "repeats": repeats, "slider_moves": moves,
        "load_average_at_start": round(load, 2), "cpus": os.cpu_count(),
        "median": medians, "bars": BARS,
        "meets_bars": {k: (m := medians[k]) is not None and m <= bar for k, bar in BARS.items()},
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "trials": trials,
    }
