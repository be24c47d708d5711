"""Every error the command line can meet is one line on stderr and exit code 2 (issue 16 items 3-4):
OS errors of every kind name their file, memory errors and bad options are one line too."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.base import files
from tests.support import cli_error


def _folder(root: Path, ids: int = 2, per: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for i in range(ids):
        (root / f"p{i}").mkdir(parents=True)
        for k in range(per):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"p{i}" / f"{k}.jpg")
    return root


def _fail_with(exc: BaseException):
    def verb(args):
        raise exc
    return verb


@pytest.mark.parametrize("exc, needles", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out"), ["/data/out: Permission denied"]),
    (OSError(errno.ENOSPC, "No space left on device", "/data/x.jpg"), ["/data/x.jpg", "No space left"]),
    (OSError(errno.EROFS, "Read-only file system", "/ro/a", None, "/ro/b"), ["/ro/a -> /ro/b", "Read-only"]),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), ["/f/x: Not a directory"]),
    (FileNotFoundError("checkpoint not found: a.pt"), ["checkpoint not found: a.pt"]),
    (MemoryError(), ["out of memory"]),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 5 TB"), ["out of memory", "5 TB"]),
    (ValueError("config 'x' is bad\nsecond line"), ["config 'x' is bad | second line"]),
])
def test_main_turns_every_input_error_into_one_line(monkeypatch, capsys, exc, needles) -> None:
    import synface.cli.runs as runs_cli

    monkeypatch.setattr(runs_cli, "run_runs", _fail_with(exc))
    cli_error(capsys, ["runs"], *needles)


def test_a_program_error_still_shows_its_traceback(monkeypatch) -> None:
    """Only input errors are caught: a bug (here a KeyError) is not hidden behind a message."""
    import synface.cli.runs as runs_cli
    from synface.cli.main import main

    monkeypatch.setattr(runs_cli, "run_runs", _fail_with(KeyError("bug")))
    with pytest.raises(KeyError):
        main(["runs"])


def test_a_bad_option_is_one_line_without_the_usage_block(capsys) -> None:
    cli_error(capsys, ["generate", "--ids", "many"], "--ids", "'many'")
    cli_error(capsys, ["export", "x", "--to", "zip", "--out", "y"], "--to", "'zip'")


def test_atomic_writes_name_their_file_when_the_disk_is_full(monkeypatch, tmp_path) -> None:
    """write() on a full disk raises OSError(ENOSPC) without a file name: atomic_path adds it and
    leaves neither the file nor its temp file behind."""
    def full(_path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_fsync", full)
    with pytest.raises(OSError) as info:
        files.write_json(tmp_path / "card.json", {"a": 1})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "card.json")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_export_is_one_line_naming_the_file(monkeypatch, capsys, tmp_path) -> None:
    src = _folder(tmp_path / "src")

    def full(_path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_fsync", full)
    cli_error(capsys, ["export", src, "--to", "rec", "--out", tmp_path / "rec"], str(tmp_path / "rec"),
              "No space left on device")
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == []  # no partial train.rec / train.idx


def test_permission_denied_names_the_folder(monkeypatch, capsys, tmp_path) -> None:
    """A read-only output folder (simulated, so the test also holds when run as root)."""
    src = _folder(tmp_path / "src")
    real_mkdir = Path.mkdir
    locked = tmp_path / "locked"

    def mkdir(self, *a, **k):
        if locked in (self, *self.parents):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    cli_error(capsys, ["export", src, "--to", "rec", "--out", locked / "rec"], str(locked / "rec"), "Permission denied")
    assert not locked.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_really_read_only_folder_is_one_line(capsys, tmp_path) -> None:
    src = _folder(tmp_path / "src")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        cli_error(capsys, ["export", src, "--to", "rec", "--out", ro / "rec"], str(ro), "Permission denied")
    finally:
        ro.chmod(0o755)


def test_a_file_where_a_folder_is_expected(capsys, tmp_path) -> None:
    src = _folder(tmp_path / "src")
    afile = tmp_path / "afile"
    afile.write_text("x")
    cli_error(capsys, ["export", src, "--to", "rec", "--out", afile], str(afile), "is a file")
    cli_error(capsys, ["generate", "--ids", 2, "--samples", 2, "--out", afile], str(afile), "is a file")
    cli_error(capsys, ["generate", "--ids", 2, "--samples", 2, "--out", afile / "set"], str(afile), "is a file")
    cli_error(capsys, ["align", src, "--out", afile, "--workers", 1], str(afile), "is a file")
    assert afile.read_text() == "x"


def test_the_disk_estimate_refuses_a_set_that_cannot_fit(capsys, monkeypatch, tmp_path) -> None:
    usage = files.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: usage._replace(free=10 * 2**20))
    cli_error(capsys, ["generate", "--ids", 1000, "--samples", 50, "--out", tmp_path / "big"],
              "Syn_1K_50", "50,000 jpg images", "needs about 390.6 MB", "10.0 MB free")
    assert not (tmp_path / "big").exists()


def test_check_free_space_names_the_need_and_the_free_space(monkeypatch, tmp_path) -> None:
    usage = files.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: usage._replace(free=2**30))
    files.check_free_space(tmp_path / "a" / "b", 2**29, "a set")  # fits
    with pytest.raises(ValueError, match=r"a set needs about 2\.0 GB but .* has only 1\.0 GB free"):
        files.check_free_space(tmp_path / "a" / "b", 2**31, "a set")


def test_absurd_dataset_sizes_are_refused_before_anything_is_written(capsys, tmp_path) -> None:
    out = tmp_path / "x"
    cli_error(capsys, ["generate", "--ids", 1_000_000_000, "--samples", 2, "--out", out], "--ids", "1,000,000,000")
    cli_error(capsys, ["generate", "--ids", 2, "--samples", 1_000_000_000, "--out", out], "--samples", "1,000,000,000")
    cli_error(capsys, ["generate", "--ids", 1_000_000, "--samples", 1_000, "--out", out], "--ids x --samples",
              "1,000,000,000")
    assert not out.exists()
