"""Who may reach the app and which folders it reads (synface.base.access)."""

from __future__ import annotations

import os

import pytest

from synface.base.access import check_readable, configured_data_dirs, listens_beyond_loopback, password_matches


@pytest.mark.parametrize("address, beyond", [
    ("127.0.0.1", False), ("127.0.1.1", False), ("localhost", False), ("::1", False), ("[::1]", False),
    ("", True), (None, True), ("0.0.0.0", True), ("::", True), ("192.168.1.5", True), ("myhost.example", True),
])
def test_which_addresses_reach_other_hosts(address, beyond) -> None:
    assert listens_beyond_loopback(address) is beyond


def test_folders_outside_the_configured_ones_are_refused(tmp_path) -> None:
    ws, data = tmp_path / "ws", tmp_path / "data"
    (ws / "datasets" / "a").mkdir(parents=True)
    (data / "lfw").mkdir(parents=True)
    (ws / "escape").symlink_to(tmp_path)
    roots = [ws, data]
    assert check_readable(ws / "datasets" / "a", roots) == (ws / "datasets" / "a").resolve()
    assert check_readable(str(data / "lfw") + "/", roots) == (data / "lfw").resolve()
    for bad in ("/etc", str(ws / ".." / "other"), str(ws / "escape"), str(ws / "escape" / "data" / "..")):
        with pytest.raises(ValueError, match=r"outside the folders this app may read .*SYNFACE_DATA_DIRS"):
            check_readable(bad, roots, "photo folder")
    with pytest.raises(ValueError, match="no photo folder given"):
        check_readable("  ", roots, "photo folder")


def test_configured_folders_come_from_the_environment(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    assert configured_data_dirs({"SYNFACE_DATA_DIRS": f"{a}{os.pathsep}{b}"}, default=[tmp_path]) == [a, b]
    assert configured_data_dirs({}, default=[a, b]) == [a]  # the default only where it exists


def test_password_comparison() -> None:
    assert password_matches("s3cret", "s3cret") and not password_matches("s3cre", "s3cret")
    assert not password_matches("", "")  # no password configured never lets anyone in by this path
