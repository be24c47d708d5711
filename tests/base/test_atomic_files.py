"""Atomic writes (issue 16 item 6): the data reaches the disk before the new name points at it, files
get normal permissions (mkstemp alone would leave 0600), and a failed write leaves nothing behind."""

from __future__ import annotations

import errno
import os

import pytest

from synface.base import files


def test_the_temp_file_is_fsynced_before_the_rename_and_gets_0644(monkeypatch, tmp_path) -> None:
    events: list[tuple[str, str]] = []
    fsync, replace = files._fsync, os.replace

    def record_fsync(path):
        events.append(("fsync", os.path.basename(path)))
        return fsync(path)

    def record_replace(src, dst):
        events.append(("replace", os.path.basename(src)))
        return replace(src, dst)

    monkeypatch.setattr(files, "_fsync", record_fsync)
    monkeypatch.setattr(files.os, "replace", record_replace)
    old = os.umask(0o077)  # a strict umask must not make shared outputs private either
    try:
        files.write_json(tmp_path / "card.json", {"a": 1})
    finally:
        os.umask(old)
    assert [kind for kind, _ in events] == ["fsync", "replace"] and events[0][1] == events[1][1]
    assert events[0][1].startswith(".card.json.") and events[0][1].endswith(".tmp")
    assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o644
    assert files.read_json(tmp_path / "card.json") == {"a": 1}


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path) -> None:
    target = tmp_path / "x.bin"
    files.write_bytes(target, b"old")
    with pytest.raises(OSError) as info, files.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_append_line_ends_a_torn_line_first(tmp_path) -> None:
    log = tmp_path / "log.tsv"
    files.append_line(log, "a\t1")
    with open(log, "a") as f:
        f.write("b\t")  # a writer killed mid-line
    files.append_line(log, "c\t3")
    assert log.read_text().splitlines() == ["a\t1", "b\t", "c\t3"]


def test_utc_now_is_the_one_timestamp_format():
    import re

    from synface.base.files import utc_now

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())


def test_locked_makes_a_second_holder_wait(tmp_path):
    import threading
    import time

    from synface.base.files import locked

    path = tmp_path / "sub" / ".x.lock"
    order: list[str] = []

    def second() -> None:
        with locked(path):
            order.append("second")

    with locked(path):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
    thread.join(10)
    assert order == ["first done", "second"] and path.is_file()
