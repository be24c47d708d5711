"""Stop, then Resume at once: the trainer writes 'stopped' seconds before its process exits, and a
resume in that window must wait for it, never take its pid for the new process. Stop during an
evaluation ends the round between batches; the resume evaluates first."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from synface.base import jobs
from synface.runs import queue
from synface.runs.registry import create_run
from synface.runs.run import Run, RunLocked

#: the old trainer's last seconds: status 'stopped' is already written, the process still runs
EXITING = "import time; time.sleep({s})"


def _stopping_run(root, seconds: float) -> tuple[Run, int]:
    """A run whose job process is still alive after 'stopped' was written (with a checkpoint)."""
    run = create_run({"data": "x", "epochs": 2}, name="stopping", root=root)
    job = jobs.start(queue.KIND, run.id, [sys.executable, "-c", EXITING.format(s=seconds)], root,
                     slot=False)  # the job system derives its log and STOP file from the run's id
    run.write_status(status="stopped", pid=job["pid"], message="stopped in epoch 1 at step 3; checkpoint saved")
    run.last_checkpoint.write_bytes(b"checkpoint")
    return run, job["pid"]


def _end(root, run: Run) -> None:
    """End the sleeper the run's job runs (it does not watch its STOP file)."""
    pid = jobs.status(queue.KIND, run.id, root)["pid"]
    if jobs.status(queue.KIND, run.id, root)["alive"]:
        os.kill(pid, signal.SIGTERM)
    assert not jobs.wait_ended(queue.KIND, run.id, root, 30)["alive"]


def test_resume_waits_for_the_stopping_process_and_never_adopts_its_pid(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    run, old_pid = _stopping_run(root, 2.0)
    state = queue.run_state(run, root)
    assert state["status"] == "stopped" and state["stopping"] and state["process_alive"] and not state["resumable"]
    started: list[list[str]] = []

    def new_trainer(*args: str) -> list[str]:  # the resumed process: a sleeper, so the test needs no training
        started.append(list(args))
        return [sys.executable, "-c", "import time; time.sleep(30)"]

    monkeypatch.setattr(queue, "synface_argv", new_trainer)
    t0 = time.monotonic()
    pid = queue.resume_run(run, root)
    try:
        assert time.monotonic() - t0 >= 1.0  # it waited for the old process to exit
        assert pid != old_pid and started and started[0][:2] == ["train", "--resume"]
        status = run.raw_status()
        assert status["status"] == "starting" and status["pid"] == pid
        assert run.status()["status"] == "starting"  # not "failed: ... ended without reporting"
        assert jobs.status(queue.KIND, run.id, root)["pid"] == pid
    finally:
        _end(root, run)


def test_resume_refuses_while_the_old_process_outlives_the_wait(tmp_path):
    root = tmp_path / "ws"
    run, old_pid = _stopping_run(root, 20.0)
    try:
        with pytest.raises(RunLocked, match="still stopping"):
            queue.resume_run(run, root, wait_s=0.3)
        assert run.raw_status()["pid"] == old_pid and run.raw_status()["status"] == "stopped"
        # a start that would take the live job for its own is refused too
        with pytest.raises(jobs.JobBusy, match=str(old_pid)):
            jobs.start(queue.KIND, run.id, [sys.executable, "-c", "pass"], root, slot=False, wait_s=0.0)
    finally:
        _end(root, run)
    assert not jobs.status(queue.KIND, run.id, root)["alive"] and queue.run_state(run, root)["resumable"]


@pytest.mark.slow
def test_stop_during_an_evaluation_stops_between_batches_and_the_resume_evaluates_first(tmp_path):
    from synface.train.loop import train
    from tests.train.test_train import make_synthetic, tiny
    from synface.data.verification_bin import write_bin

    data = make_synthetic(tmp_path / "syn", ids=4, per=4)
    files = sorted(data.glob("*/*.jpg"))
    images = [files[i % len(files)].read_bytes() for i in range(64)]
    write_bin(tmp_path / "toy.bin", images, [i % 2 == 0 for i in range(32)])
    cfg = tiny(data, epochs=1, batch_size=4, steps_per_epoch=2, eval_batch_size=4,
               eval_sets=[{"path": str(tmp_path / "toy.bin"), "name": "toy"}])
    stop = threading.Event()
    seen: list[tuple[str, int, int]] = []

    def eval_progress(label: str, done: int, total: int) -> None:
        seen.append((label, done, total))
        if label == "eval toy" and done >= 8:  # a few batches into the embedding
            stop.set()

    run_dir = tmp_path / "run"
    out = train(cfg, run_dir, stop_flag=stop, eval_progress=eval_progress)
    assert out["status"] == "stopped" and "during the evaluation after epoch 1" in out["message"]
    embedded = [d for label, d, _ in seen if label == "eval toy"]
    assert max(embedded) < 64  # it did not embed the whole set first
    run = Run(run_dir)
    assert run.last_checkpoint.is_file() and run.read_eval() == {}
    assert run.raw_status()["status"] == "stopped" and not run.raw_status().get("stage")

    again = train(cfg, run_dir, resume=True)
    assert again["status"] == "finished" and "toy" in run.read_eval()
    assert run.read_eval()["toy"]["step"] == 2
