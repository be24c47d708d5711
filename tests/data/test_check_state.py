"""Stored check state (synface.data.check_state): untrusted on read, atomic on write."""

from __future__ import annotations

import os

from synface.data.check_state import load_check_state, save_check_state


def test_state_round_trips_for_its_own_build_only(tmp_path) -> None:
    path = tmp_path / "check.json"
    save_check_state(path, {"set": "a"}, {"accepted": {"1": [0, 0.5]}})
    assert load_check_state(path, {"set": "a"}) == {"key": {"set": "a"}, "accepted": {"1": [0, 0.5]}}
    assert load_check_state(path, {"set": "b"}) is None
    assert not [p for p in tmp_path.iterdir() if p.name != "check.json"]  # no temporary file left


def test_missing_broken_or_odd_files_are_ignored(tmp_path) -> None:
    assert load_check_state(tmp_path / "none.json", {}) is None
    (tmp_path / "broken.json").write_text('{"key": {}, "accepted": ')
    assert load_check_state(tmp_path / "broken.json", {}) is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert load_check_state(tmp_path / "list.json", {}) is None
    os.mkfifo(tmp_path / "fifo.json")  # would block a plain reader for good
    assert load_check_state(tmp_path / "fifo.json", {}) is None
