"""Background processes the app starts (issue 16 item 7): a run that fails is reaped at once (no
zombie under a long-lived parent), and queued runs and reproduce write into the workspace, never into
the repository's shipped results/ or assets/ (only an explicit --out writes elsewhere)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from synface.runs.queue import launch
from synface.runs.run import Run
from tests.support import REPO

CFG = {"data": "/nowhere", "epochs": 1, "name": "toy"}


def _state(pid: int) -> str | None:
    """The process state letter of `pid` ('Z' for a zombie), None once it is gone (reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def test_a_run_that_fails_is_reaped_without_anyone_asking(tmp_path, trainer_command) -> None:
    trainer_command([sys.executable, "-c", "import sys; sys.exit(3)"])
    run_id, pid = launch(CFG, root=tmp_path, name="fails", max_running=1)
    assert pid
    deadline = time.time() + 15
    while _state(pid) is not None and time.time() < deadline:  # nobody polls its status meanwhile
        time.sleep(0.05)
    assert _state(pid) is None, f"process {pid} is still there in state {_state(pid)}"
    status = Run(tmp_path / "runs" / run_id).status()
    assert status["status"] == "failed" and "ended without reporting" in status["message"]


def _shipped() -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size)
            for folder in ("results", "assets") for p in (REPO / folder).rglob("*") if p.is_file()}


def test_queued_runs_and_reproduce_write_into_the_workspace(gen, tmp_path, monkeypatch, capsys) -> None:
    import synface.base.processes as processes
    import synface.studies.run as study_run
    from synface.cli.main import main
    from synface.data.benchmark import build_synthetic_benchmark
    from synface.studies.jobs import launch_reproduce

    shipped = _shipped()
    root = tmp_path / "ws"
    started: list[list[str]] = []

    class Started:
        pid = 2**22 + 4321  # no such process

    def spawn(argv, log, on_exit=None, env=None):
        started.append([str(a) for a in argv])
        return Started()

    monkeypatch.setattr(processes, "spawn_detached", spawn)  # every job starts through it
    run_id, _ = launch(CFG, root=root, max_running=1)
    argv = started[-1]
    assert Path(argv[argv.index("--run-dir") + 1]) == root / "runs" / run_id
    assert Path(argv[argv.index("--root") + 1]) == root

    lfw = build_synthetic_benchmark(tmp_path / "lfw", folds=5, pairs_per_fold=2, seed=7, generator=gen)
    launch_reproduce("table2", "tiny", lfw, root=root, seeds=1)
    argv = started[-1]
    assert argv[argv.index("reproduce") + 1] == "table2" and Path(argv[argv.index("--out") + 1]) == root / "results"

    # the command itself (its training skipped): the report lands in <workspace>/results
    monkeypatch.setattr(study_run, "execute", lambda plan, progress=None, generator=None: [])
    assert main(["reproduce", "table2", "--scale", "tiny", "--lfw", str(lfw), "--root", str(root), "--seeds", "1",
                 "--no-progress"]) == 0
    assert (root / "results" / "table2.md").is_file() and (root / "results" / "table2.csv").is_file()
    assert f"md: {root / 'results' / 'table2.md'}" in capsys.readouterr().out
    elsewhere = tmp_path / "shipped_tables"  # only an explicit --out writes anywhere else
    assert main(["reproduce", "table2", "--scale", "tiny", "--lfw", str(lfw), "--root", str(root), "--seeds", "1",
                 "--out", str(elsewhere), "--no-progress"]) == 0
    assert (elsewhere / "table2.md").is_file()
    assert _shipped() == shipped  # the repository's results/ and assets/ untouched
