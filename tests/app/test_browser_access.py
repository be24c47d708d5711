"""The app is safe to leave running: `streamlit run app.py` listens on 127.0.0.1 only; started on
every interface without a password, every page warns; with a password, nothing draws before it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from synface.bench.startup import free_port, wait_health
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, _requirements, _wait_app_idle
from tests.support import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@contextlib.contextmanager
def _app(home: Path, extra_args: list[str], env_extra: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = dict(os.environ, SYNFACE_HOME=str(home), SYNFACE_DEVICE="cpu", **env_extra)
    env.pop("SYNFACE_PASSWORD", None) if "SYNFACE_PASSWORD" not in env_extra else None
    with open(home / f"streamlit-{port}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), *extra_args], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_health(f"http://127.0.0.1:{port}", proc)
            yield f"http://127.0.0.1:{port}", port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.split(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    if width == 8:
                        found.add(".".join(str(b) for b in raw[::-1]))
                    else:
                        words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                        found.add(":".join(b"".join(words)[i:i + 2].hex() for i in range(0, 16, 2)))
    return found


def test_the_default_start_listens_on_loopback_only(tmp_path) -> None:
    with _app(tmp_path, [], {}) as (_, port):
        assert _listening(port) == {"127.0.0.1"}, _listening(port)


def test_open_to_every_host_without_a_password_warns_on_every_page(tmp_path) -> None:
    _requirements()
    from playwright.sync_api import sync_playwright

    with _app(tmp_path, ["--server.address", "0.0.0.0"], {}) as (url, port):
        assert "0.0.0.0" in _listening(port)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.set_default_timeout(120_000)
            try:
                for path in ("generator", "results"):
                    page.goto(f"{url}/{path}")
                    _wait_app_idle(page)
                    page.get_by_text("reachable from other hosts").first.wait_for()
                    assert "has no password" in page.locator("body").inner_text()
            finally:
                browser.close()


def test_a_password_is_asked_before_any_page_draws(tmp_path) -> None:
    _requirements()
    from playwright.sync_api import sync_playwright

    with _app(tmp_path, ["--server.address", "0.0.0.0"], {"SYNFACE_PASSWORD": "open sesame"}) as (url, _):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.set_default_timeout(120_000)
            try:
                page.goto(f"{url}/results")
                page.get_by_label("Password", exact=True).first.wait_for()
                _wait_app_idle(page)
                text = page.locator("body").inner_text()
                assert "Runs" not in text and "Workspace" not in text and "reachable from other hosts" not in text
                page.get_by_label("Password", exact=True).first.fill("guess")
                page.get_by_role("button", name="Sign in").click()
                page.get_by_text("Wrong password.").wait_for()
                page.get_by_label("Password", exact=True).first.fill("open sesame")
                page.get_by_role("button", name="Sign in").click()
                page.get_by_text("Workspace:").wait_for()
                _wait_app_idle(page)
                assert "reachable from other hosts" not in page.locator("body").inner_text()
            finally:
                browser.close()
