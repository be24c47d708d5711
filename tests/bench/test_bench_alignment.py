"""bench alignment: dlib's alignment pipeline re-framing renders and real crops; the calibration fit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.support import HAVE_DLIB, REPO, cli_error

pytestmark = pytest.mark.skipif(not HAVE_DLIB, reason="dlib is not installed")

SUMMARY_FIGURES = ("scale", "rotation_deg", "eye_shift_x", "eye_shift_y", "eye_shift", "eye_spacing", "mouth_eye")


def _crop_folder(gen, root, people: int = 2, each: int = 2):
    """An identity-per-folder set of 112x112 crops (renders stand in for real crops)."""
    images = gen.render(gen.neutral(gen.sample(people * each, seed=21))).images.numpy()
    for i, image in enumerate(images):
        folder = root / f"person_{i // each}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"crop_{i % each}.png")
    return root


def test_a_crop_on_the_template_comes_back_unchanged() -> None:
    from synface.data.align import TEMPLATE
    from synface.data.crop_framing import framing_of

    same = framing_of(TEMPLATE)
    assert same.scale == pytest.approx(1.0) and same.eye_shift == pytest.approx(0.0, abs=1e-9)
    assert same.eye_spacing == pytest.approx(1.0) and same.mouth_eye == pytest.approx(1.0)
    # a face 10 % larger, 2 px right and 3 px down: the pipeline would zoom out and shift it back
    moved = framing_of(TEMPLATE.mean(0) + (TEMPLATE - TEMPLATE.mean(0)) * 1.1 + [2.0, 3.0])
    assert moved.scale == pytest.approx(1 / 1.1) and moved.eye_spacing == pytest.approx(1.1)
    eye_mid = (TEMPLATE[0] + TEMPLATE[1]) / 2
    expected = TEMPLATE.mean(0) + (eye_mid - TEMPLATE.mean(0)) * 1.1 + [2.0, 3.0] - eye_mid
    assert (moved.eye_shift_x, moved.eye_shift_y) == pytest.approx(tuple(expected))


def test_bench_alignment_reports_every_figure_for_renders_and_real_crops(gen, tmp_path) -> None:
    from synface.bench.alignment import bench_alignment

    real = _crop_folder(gen, tmp_path / "real")
    ticks = []
    record = bench_alignment(renders=4, seed=0, real=real, device="cpu", progress=lambda d, t: ticks.append((d, t)))
    assert record["bench"] == "alignment" and record["generator"] == gen.version
    assert record["alignment_calibration"] == gen.pipeline.alignment_calibration.version
    for name in ("default_prior", "frontal", "real"):
        part = record[name]
        assert part["crops"] == 4 and 0 <= part["no_face"] <= 4
        if part["no_face"] < 4:
            for figure in SUMMARY_FIGURES:
                assert set(part[figure]) == {"mean", "std", "median"}
            assert 0.7 < part["scale"]["mean"] < 1.4 and part["mean_eye_shift"] >= 0
    assert record["frontal"]["no_face"] < 4  # a frontal render is a face to dlib
    assert ticks[-1] == (12, 12)


def test_bench_alignment_refuses_crops_of_the_wrong_size_by_name(gen, tmp_path) -> None:
    from synface.bench.alignment import bench_alignment
    from synface.data.errors import DataError

    real = _crop_folder(gen, tmp_path / "real", people=1, each=1)
    Image.new("RGB", (250, 250)).save(real / "person_0" / "photo.png")
    with pytest.raises(DataError, match="photo.png.*250x250, expected an aligned 112x112 crop"):
        bench_alignment(renders=1, real=real, device="cpu")


def test_bench_alignment_cli_prints_one_json_line_and_refuses_bad_options(capsys, tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "synface", "bench", "alignment", "--renders", "2", "--device", "cpu",
                          "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["default_prior"]["crops"] == 2
    cli_error(capsys, ["bench", "alignment", "--renders", "0"], "--renders")
    cli_error(capsys, ["bench", "alignment", "--renders", "1", "--real", tmp_path / "absent"], "absent")


def test_a_calibration_fit_moves_the_pipelines_scale_toward_one(gen) -> None:
    """From no calibration, a few rounds on a few renders already bring the re-detection's mean
    scale closer to 1 (the full fit of the built-in head: tools/calibrate_alignment.py)."""
    from synface.fitting.alignment import fit_alignment_calibration
    from synface.render.alignment_calibration import AlignmentCalibration

    fit = fit_alignment_calibration(gen, renders=40, seed=7, max_rounds=3, start=AlignmentCalibration.none())
    first, last = fit.rounds[0], fit.rounds[-1]
    assert first.calibration == "none" and len(fit.rounds) == 3
    assert abs(last.mean_scale - 1) < abs(first.mean_scale - 1)
    assert fit.calibration.version.startswith("dlib68-") and not fit.calibration.is_none()
    again = AlignmentCalibration.from_dict(fit.calibration.to_dict())
    assert again == fit.calibration and np.isfinite(again.array().numpy()).all()
