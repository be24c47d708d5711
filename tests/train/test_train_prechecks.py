"""Training inputs the fault audit (tests/audit) found refused too late or not at all:
unusable data is one line before a run folder exists, a run name is one path component, a write
that fails for real (a file-size limit, as a full disk does) is an OSError naming the checkpoint,
and a resume after a kill before the first checkpoint starts again without stale files."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support import REPO, cli_error
from tests.train.test_train import make_synthetic, tiny


def _args(data: Path, run_dir: Path, *extra: str) -> list:
    return ["train", "--preset", "cpu-quick", "--set", f"data={data}", "--set", "batch_size=4", "--set", "epochs=1",
            "--set", "steps_per_epoch=1", "--run-dir", run_dir, "--no-progress", *extra]


def _non_images(root: Path) -> Path:
    for i in range(2):
        (root / f"p{i}").mkdir(parents=True)
        for k in range(2):
            (root / f"p{i}" / f"{k}.jpg").write_text("not an image")
    return root


def _too_few(root: Path) -> Path:
    (root / "p0").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(root / "p0" / f"{k}.jpg")
    return root


@pytest.mark.parametrize("make, needles", [
    (_non_images, ["p0/0.jpg", "cannot read the first training image"]),
    (_too_few, ["data", "3 images, fewer than one batch of 4"]),
])
def test_unusable_training_data_is_one_line_before_a_run_folder(capsys, tmp_path, make, needles) -> None:
    data = make(tmp_path / "data")
    run_dir = tmp_path / "run"
    line = cli_error(capsys, _args(data, run_dir), *needles)
    assert str(data) in line
    assert not run_dir.exists()  # no run folder, no identity-check note before the error


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "..", "x\ny"])
def test_a_run_name_is_one_path_component(capsys, tmp_path, name) -> None:
    data = make_synthetic(tmp_path / "syn", ids=2, per=2)
    root = tmp_path / "ws"
    cli_error(capsys, ["train", "--preset", "cpu-quick", "--set", f"data={data}", "--name", name, "--root", root,
                       "--no-progress"], "--name", "is not allowed")
    assert not root.exists() and not (tmp_path / "escape").exists()


SAVE_UNDER_A_LIMIT = """
import resource, signal, sys, torch
from synface.models.checkpoint import save_checkpoint
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
try:
    save_checkpoint({"w": torch.zeros(100000)}, sys.argv[1])
except OSError as exc:
    print(exc.errno, exc.filename)
"""


def test_a_write_that_really_fails_names_the_checkpoint(tmp_path) -> None:
    """RLIMIT_FSIZE makes write() fail as a full disk does (also for root): torch.save's own
    RuntimeError about zip positions becomes the OSError, naming the file, and no temp file stays."""
    path = tmp_path / "checkpoints" / "last.pt"
    out = subprocess.run([sys.executable, "-c", SAVE_UNDER_A_LIMIT, str(path)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == [str(errno.EFBIG), str(path)], (out.stdout, out.stderr)
    assert list(path.parent.iterdir()) == []


def test_a_resume_without_a_checkpoint_starts_again_and_sweeps_temp_files(tmp_path) -> None:
    """A kill before the first checkpoint leaves config.json, logged steps and perhaps a temp file
    of an interrupted write: --resume trains from step 0 in the same folder, each step once."""
    from synface.train.loop import train

    data = make_synthetic(tmp_path / "syn", ids=2, per=4, size=32)
    run_dir = tmp_path / "run"
    cfg = tiny(data, epochs=1, batch_size=4, steps_per_epoch=2)
    train(cfg, run_dir)
    (run_dir / "checkpoints" / "last.pt").unlink()  # as if killed before it was written
    (run_dir / ".status.json.abc123.tmp").write_text("{")
    (run_dir / "checkpoints" / ".last.pt.def456.tmp").write_bytes(b"\0" * 64)
    result = train(cfg, run_dir, resume=True)
    assert result["status"] == "finished"
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if '"train"' in line]
    assert steps == [1, 2]
    assert not list(run_dir.rglob("*.tmp"))
    assert (run_dir / "checkpoints" / "last.pt").is_file()
