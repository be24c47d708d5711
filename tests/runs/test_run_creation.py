"""A run folder appears whole or not at all (create_run fills a hidden folder, then renames it),
and temp files of writes a kill interrupted are swept once their writer is gone: a killed
`reproduce` or `train` leaves no orphan run folder and no `.tmp`."""

from __future__ import annotations

import os
import subprocess
import sys

from synface.base.files import atomic_path, sweep_temp_files
from synface.runs.registry import create_run, list_runs
from tests.support import REPO

CFG = {"data": "/nowhere", "epochs": 1, "name": "toy"}


def test_a_create_killed_half_way_leaves_no_run_folder(tmp_path) -> None:
    code = ("import os, signal\n"
            "from synface.runs import registry\n"
            "real = registry.Run.write_status\n"
            "def dying(self, **fields):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "registry.Run.write_status = dying\n"
            f"registry.create_run({CFG!r}, root={str(tmp_path)!r})\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == -9
    runs = tmp_path / "runs"
    left = [p.name for p in runs.iterdir()]
    assert len(left) == 1 and left[0].startswith(".creating-")  # config.json written, status not: hidden
    assert list_runs(tmp_path) == []
    run = create_run(CFG, root=tmp_path)  # the next create sweeps the dead creator's folder
    assert [p.name for p in runs.iterdir()] == [run.id]
    assert run.config_path.is_file() and run.status()["status"] == "created" and (os.stat(run.path).st_mode & 0o777) == 0o755


def test_temp_files_of_dead_writers_are_swept_and_live_ones_kept(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".status.json.{int(dead.stdout)}-abc123.tmp"
    stale.write_text("{")
    with atomic_path(tmp_path / "status.json") as live:
        live.write_text("{}")
        assert live.name.startswith(f".status.json.{os.getpid()}-")
        assert sweep_temp_files(tmp_path) == 1 and live.exists() and not stale.exists()
    assert (tmp_path / "status.json").read_text() == "{}"
