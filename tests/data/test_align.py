"""Face alignment: the similarity fit and warp on synthetic points, then real LFW folders.

The LFW tests use the shared deep-funneled copy (env SYNFACE_LFW overrides) and are skipped
where it or dlib is absent; the geometry tests always run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.data.align import (
    FALLBACK_MATRIX_250,
    REPORT_NAME,
    TEMPLATE,
    align_folder,
    align_image,
    detect,
    estimate_similarity,
    fallback_matrix,
    landmarks5,
    warp_to_template,
)
from tests.support import HAVE_DLIB as _HAVE_DLIB  # noqa: E402
from tests.support import LFW_ROOT, REPO, requires_lfw


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    c, s = scale * np.cos(t), scale * np.sin(t)
    return np.array([[c, -s, tx], [s, c, ty]])


# ----------------------------------------------------------------------------- geometry


def test_estimate_similarity_recovers_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(5, 2))
    truth = _similarity(1.7, 23.0, -31.0, 12.5)
    got = estimate_similarity(src, _apply(truth, src))
    np.testing.assert_allclose(got, truth, atol=1e-9)


def test_estimate_similarity_never_reflects() -> None:
    src = TEMPLATE.copy()
    mirrored = src * np.array([-1.0, 1.0])  # only a reflection would fit this exactly
    got = estimate_similarity(src, mirrored)
    assert np.linalg.det(got[:, :2]) >= 0


def _blob_image(points: np.ndarray, shape: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    acc = np.zeros(shape)
    for x, y in points:
        acc += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    gray = np.clip(acc * 255, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _centroid_near(image: np.ndarray, x: float, y: float, radius: int = 6) -> np.ndarray:
    x0, y0 = int(round(x)), int(round(y))
    patch = image[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1, 0].astype(np.float64)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    w = patch / patch.sum()
    return np.array([x0 + (w * xx).sum(), y0 + (w * yy).sum()])


def test_warp_puts_source_points_on_template() -> None:
    # Points = the template under a known similarity, drawn as blobs in a bigger image.
    to_src = _similarity(1.9, -15.0, 40.0, 70.0)
    points = _apply(to_src, TEMPLATE)
    image = _blob_image(points, (320, 300), sigma=2.0 * 1.9)
    out = warp_to_template(image, points)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    for tx, ty in TEMPLATE:
        cx, cy = _centroid_near(out, tx, ty)
        assert np.hypot(cx - tx, cy - ty) < 0.25  # a half-pixel convention slip shows here


def test_fallback_matrix_scales_with_image_size() -> None:
    np.testing.assert_allclose(fallback_matrix(250, 250), FALLBACK_MATRIX_250)
    big = fallback_matrix(500, 600)  # the centred 500x500 square stands for the 250 frame
    p = np.array([[100.0, 80.0], [180.0, 150.0]])
    np.testing.assert_allclose(_apply(big, p * 2 + [0, 50]), _apply(FALLBACK_MATRIX_250, p), atol=1e-9)


@pytest.mark.skipif(not _HAVE_DLIB, reason="dlib missing")
def test_faceless_image_falls_back() -> None:
    result = align_image(np.full((250, 250, 3), 128, dtype=np.uint8))
    assert result.method == "fallback" and result.points5 is None and result.num_faces == 0
    assert result.image112.shape == (112, 112, 3)


# ----------------------------------------------------------------------------- real LFW


def _pick_lfw(n_people: int = 8, per_person: int = 5) -> list[Path]:
    """Files of the first people with at least `per_person` images (deterministic)."""
    chosen: list[Path] = []
    for person in sorted((LFW_ROOT / "images").iterdir()):
        files = sorted(person.glob("*.jpg"))
        if len(files) >= per_person:
            chosen.extend(files[:per_person])
            if len(chosen) >= n_people * per_person:
                break
    return chosen


def _copy(files: list[Path], root: Path) -> Path:
    for f in files:
        (root / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / f.parent.name / f.name)
    return root


@pytest.fixture(scope="module")
def aligned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object, list]:
    """40 LFW images in an LFW-style root (`images/` inside), aligned with 2 workers."""
    base = tmp_path_factory.mktemp("align")
    src = base / "lfw"
    _copy(_pick_lfw(), src / "images")
    dst = base / "out"
    calls: list[tuple[int, int]] = []
    report = align_folder(src, dst, progress=lambda d, t: calls.append((d, t)), workers=2)
    return src, dst, report, calls


@requires_lfw
def test_lfw_folder_aligned_by_detector(aligned) -> None:
    src, dst, report, calls = aligned
    assert report.total == 40 and report.unreadable == 0
    assert report.detector + report.fallback == 40
    assert report.detector >= 0.8 * 40
    assert calls[-1] == (40, 40)
    outputs = sorted(dst.glob("*/*.jpg"))
    assert [p.relative_to(dst) for p in outputs] == [
        p.relative_to(src / "images") for p in sorted((src / "images").glob("*/*.jpg"))
    ]
    for path in outputs:
        with Image.open(path) as img:
            assert img.size == (112, 112) and img.mode == "RGB"
    saved = json.loads((dst / REPORT_NAME).read_text())
    assert saved["detector"] == report.detector and saved["source"] == str(src)
    assert not list(dst.rglob("*.tmp"))


@requires_lfw
def test_second_run_skips_and_resumes(aligned) -> None:
    src, dst, _, _ = aligned
    saved = json.loads((dst / REPORT_NAME).read_text())
    again = align_folder(src, dst, workers=2)
    assert again.skipped_existing == 40 and again.aligned_now == 0
    assert (again.detector, again.fallback) == (saved["detector"], saved["fallback"])  # the report keeps its counts
    removed = sorted(dst.glob("*/*.jpg"))[:3]
    for path in removed:
        path.unlink()
    resumed = align_folder(src, dst, workers=1)
    assert resumed.skipped_existing == 37 and resumed.aligned_now == 3 and resumed.detector + resumed.fallback == 40
    assert all(p.is_file() for p in removed)


@requires_lfw
def test_aligned_eyes_land_on_template(aligned) -> None:
    _, dst, _, _ = aligned
    errors = []
    for path in sorted(dst.glob("*/*.jpg")):
        crop = np.asarray(Image.open(path).convert("RGB"))
        # a 112 crop is all face; a margin lets the HOG window see its outline again
        padded = np.pad(crop, ((56, 56), (56, 56), (0, 0)), mode="edge")
        rects = detect(padded)
        if rects:
            eyes = landmarks5(padded, rects[0])[:2] - 56
            errors.append(np.linalg.norm(eyes - TEMPLATE[:2], axis=1).mean())
    assert len(errors) >= 32
    assert np.median(errors) < 3.0
    assert np.mean(np.array(errors) < 6.0) >= 0.9


@requires_lfw
def test_corrupt_file_is_counted_not_fatal(tmp_path: Path) -> None:
    files = _pick_lfw(n_people=1, per_person=3)
    src = _copy(files, tmp_path / "src")
    person = files[0].parent.name
    (src / person / "garbage.jpg").write_bytes(os.urandom(2000))
    (src / person / "truncated.jpg").write_bytes(files[0].read_bytes()[:1500])
    report = align_folder(src, tmp_path / "out", workers=2)
    assert report.total == 5 and report.unreadable == 2
    assert sorted(Path(p).name for p in report.unreadable_paths) == ["garbage.jpg", "truncated.jpg"]
    assert report.detector + report.fallback == 3
    assert not (tmp_path / "out" / person / "garbage.jpg").exists()


@requires_lfw
def test_cli_verb_prints_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from synface.cli.align import register

    src = _copy(_pick_lfw(n_people=1, per_person=2), tmp_path / "src")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["align", str(src), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert args.func(args) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["total"] == 2 and record["detector"] + record["fallback"] == 2


@pytest.mark.skipif(not _HAVE_DLIB, reason="dlib missing")
def test_the_alignment_pool_ends_under_a_parent_that_ignores_sigterm(tmp_path):
    """Streamlit's SIGTERM handler is inherited by forked workers: the pool must still end."""
    import subprocess
    import sys

    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for person in ("a", "b"):
        (src / person).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)).save(src / person / f"{k}.jpg")
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)\n"
        "from synface.data.align import align_folder\n"
        f"r = align_folder({str(src)!r}, {str(tmp_path / 'dst')!r}, workers=2)\n"
        "print('done', r.total)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert out.returncode == 0, out.stderr
    assert "done 6" in out.stdout
