"""Face-model fits as detached jobs: the command, progress per stage read back from the log, and
how a job ended (finished, failed, stopped)."""

from __future__ import annotations

import sys
import time

import pytest

from synface.fitting.jobs import STAGES, fit_argv, fit_jobs, fit_status, launch_fit, parse_progress, stop_fit

#: what `face-model fit` writes: a tqdm bar per stage on stderr (\r updates), then its card on stdout
FAKE_FIT = (
    "import json, sys\n"
    "for stage, total in (('landmarks', 4), ('geometry', 4), ('reflectance', 3), ('fill', 2), ('contexts', 4), ('framing', 5)):\n"
    "    for done in range(total + 1):\n"
    "        sys.stderr.write(f'\\rface-model {stage}: {100 * done // total:3d}%|##        | {done}/{total} [00:00<00:00]')\n"
    "    sys.stderr.write('\\n')\n"
    "print(json.dumps({'name': 'fake', 'people_fitted': 3, 'images_fitted': 4}))\n"
)


def _wait(name: str, root) -> dict:
    deadline = time.time() + 60
    while time.time() < deadline:
        status = fit_status(name, root)
        if not status["alive"]:
            return status
        time.sleep(0.05)
    raise AssertionError(f"fit job {name} did not end")


def test_the_fit_command_is_face_model_fit(tmp_path):
    argv = fit_argv(tmp_path / "photos", "mine", tmp_path / "ws", people=60)
    assert argv[1:] == ["-m", "synface", "face-model", "fit", "--photos", str(tmp_path / "photos"), "--name", "mine",
                        "--workspace", str((tmp_path / "ws").resolve()), "--people", "60"]


def test_a_detached_fit_reports_each_stage_and_its_end(tmp_path):
    root = tmp_path / "ws"
    photos = tmp_path / "photos"
    photos.mkdir()
    assert fit_status("fake", root)["state"] == "none"
    launch_fit(photos, "fake", root, argv=[sys.executable, "-c", FAKE_FIT])
    status = _wait("fake", root)
    assert status["state"] == "finished" and status["card"]["people_fitted"] == 3
    assert status["stages"] == {"landmarks": (4, 4), "geometry": (4, 4), "reflectance": (3, 3), "fill": (2, 2),
                                "contexts": (4, 4), "framing": (5, 5)}
    assert list(status["stages"]) == list(STAGES) and fit_jobs(root) == ["fake"]

    launch_fit(photos, "broken", root, argv=[sys.executable, "-c",
                                             "import sys; print('error: no faces found', file=sys.stderr); sys.exit(2)"])
    status = _wait("broken", root)
    assert status["state"] == "failed" and status["error"] == "error: no faces found"
    launch_fit(photos, "killed", root, argv=[sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert _wait("killed", root)["state"] == "stopped"
    launch_fit(photos, "halted", root, argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_fit("halted", root)["stop_requested"]
    assert _wait("halted", root)["state"] == "stopped"
    assert fit_jobs(root) == ["halted", "killed", "broken", "fake"]


def test_bad_fit_requests_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        launch_fit(tmp_path / "nowhere", "mine", tmp_path)
    with pytest.raises(ValueError, match="face model name"):
        launch_fit(tmp_path, "../escape", tmp_path)
    with pytest.raises(ValueError, match="built-in head"):
        launch_fit(tmp_path, "builtin", tmp_path)


def test_progress_is_read_from_the_last_update_of_each_stage():
    text = ("face-model landmarks:   0%|          | 0/135 [00:00<?, ?photo/s]\rface-model landmarks:  47%|####"
            "      | 64/135 [00:10<00:11, 6.1photo/s]\r")
    assert parse_progress(text) == {"landmarks": (64, 135)}


def test_the_fit_command_carries_lfw_folds(tmp_path):
    argv = fit_argv(tmp_path / "lfw", "folds123", tmp_path / "ws", folds=[1, 2, 3])
    assert argv[-2:] == ["--folds", "1,2,3"]


#: a finished fit's log: each stage's bar ends with its elapsed time (tqdm's [elapsed<left, rate])
TIMED_FIT = (
    "import json, sys\n"
    "for stage, total, clock in (('landmarks', 40, '01:20'), ('geometry', 40, '00:20'), ('reflectance', 30, '00:40'),\n"
    "                            ('fill', 10, '00:20'), ('contexts', 40, '00:40'), ('framing', 60, '1:00:00')):\n"
    "    sys.stderr.write(f'\\rface-model {stage}:  50%|#    | {total // 2}/{total} [00:01<00:01,  1.00photo/s]')\n"
    "    sys.stderr.write(f'\\rface-model {stage}: 100%|#####| {total}/{total} [{clock}<00:00,  1.00photo/s]\\n')\n"
    "print(json.dumps({'name': 'timed', 'people_fitted': 10, 'images_fitted': 40}))\n"
)


def test_the_fit_estimate_comes_from_the_last_fits_measured_stage_times(tmp_path):
    from synface.fitting.jobs import estimate_fit, stage_times

    root = tmp_path / "ws"
    photos = tmp_path / "photos"
    photos.mkdir()
    assert estimate_fit(100, root) is None  # nothing measured yet: no made-up figure
    launch_fit(photos, "timed", root, argv=[sys.executable, "-c", TIMED_FIT])
    status = _wait("timed", root)
    assert status["state"] == "finished"
    times = stage_times(open(status["log"]).read())
    assert times["landmarks"] == (40, 80.0) and times["framing"] == (60, 3600.0)
    seconds, rates = estimate_fit(100, root)
    assert rates.name == "timed" and rates.photos == 40
    # (80 + 20 + 40 + 20 + 40) s over 40 photos = 5 s per photo, plus what does not scale: here the
    # framing's hour (the fake's wall time is shorter than its bars claim)
    assert seconds == pytest.approx(100 * 5.0 + 3600.0) and rates.fixed_s == 3600.0
    launch_fit(photos, "failed", root, argv=[sys.executable, "-c", "import sys; sys.exit(3)"])
    _wait("failed", root)
    assert estimate_fit(100, root)[1].name == "timed"  # only finished fits measure


def test_the_fit_estimate_counts_time_outside_the_stage_bars(tmp_path):
    """Start-up and the once-per-model calibration draw no bar: the wall time holds them."""
    from synface.fitting.jobs import estimate_fit

    root = tmp_path / "ws"
    photos = tmp_path / "photos"
    photos.mkdir()
    quick_bars = TIMED_FIT.replace("'01:20'", "'00:00'").replace("'00:20'", "'00:00'").replace(
        "'00:40'", "'00:00'").replace("'1:00:00'", "'00:00'")
    launch_fit(photos, "slowstart", root, argv=[sys.executable, "-c", "import time; time.sleep(1.5)\n" + quick_bars])
    assert _wait("slowstart", root)["state"] == "finished"
    seconds, rates = estimate_fit(1000, root)
    assert sum(rates.per_photo.values()) == 0.0 and rates.fixed_s >= 1.4 and seconds == rates.fixed_s
