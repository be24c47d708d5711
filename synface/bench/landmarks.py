"""`python -m synface bench landmarks --source dlib|mediapipe`: which landmarks fit our head best?

The learned face model's geometry comes from fitting our head to photo landmarks, so the landmark
source is chosen by what the fit recovers where the truth is known: built-in people rendered under
the default attribute prior (|yaw| <= 30 degrees), each landmark set placed on the head by the same
calibration (`synface.fitting.landmarks.calibrate_landmark_vertices`), then the same MAP fit. It
reports the yaw error, the error of the fitted head shape (neutral and frontal, over the vertices
facing the camera, as a fraction of the inter-ocular distance) beside the mean head's, detection on
renders and on real photos, and the time per photo. mediapipe is an optional extra: its wheel pins numpy<2 and protobuf<5 (which current
Streamlit refuses), and pulls jax and opencv-contrib, so it is measured in its own environment.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synface.fitting.geometry_fit import DLIB68, LandmarkScheme, fit_geometry
from synface.fitting.landmarks import (
    FRONT_NORMAL_Z, PointsOf, calibrate_landmark_vertices, dlib_points, landmark_basis, photo_landmarks, render_points,
)
from synface.face.coeffs import FaceCoeffs
from synface.generator import FaceGenerator

SOURCES = ("dlib", "mediapipe")
MAX_YAW_DEG = 30.0
MEDIAPIPE_INSTALL = ("mediapipe is not installed: `pip install mediapipe==0.10.21` in an environment of its own "
                     "(it pins numpy<2 and protobuf<5, which current Streamlit refuses)")


def _mediapipe() -> tuple[PointsOf, LandmarkScheme]:
    """mediapipe's 468-point face mesh as a detector, and its scheme (face oval = contour)."""
    try:
        from mediapipe.python.solutions.face_mesh import FaceMesh  # noqa: PLC0415
        from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL  # noqa: PLC0415
    except ImportError:
        raise ValueError(MEDIAPIPE_INSTALL) from None
    mesh = FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False)

    def points_of(view: np.ndarray) -> np.ndarray | None:
        found = mesh.process(np.ascontiguousarray(view))
        if not found.multi_face_landmarks:
            return None
        h, w = view.shape[:2]
        return np.array([(p.x * w, p.y * h) for p in found.multi_face_landmarks[0].landmark], np.float64)

    oval = tuple(sorted({i for edge in FACEMESH_FACE_OVAL for i in edge}))
    # eye corners of the canonical mesh: 33 / 133 (one eye), 362 / 263 (the other)
    return points_of, LandmarkScheme("mediapipe468", 468, oval, (33, 133), (362, 263))


def _dlib_photo_points(photo: np.ndarray) -> np.ndarray | None:
    """As the fit reads a photo: the central face of several (`photo_landmarks`)."""
    points = photo_landmarks(photo)
    return None if points is None else points + 0.5


def landmark_source(source: str) -> tuple[PointsOf, PointsOf, LandmarkScheme]:
    """(points on a render's detector view, points on a photo, scheme) of a landmark source."""
    if source == "dlib":
        return dlib_points, _dlib_photo_points, DLIB68
    if source == "mediapipe":
        points_of, scheme = _mediapipe()
        return points_of, points_of, scheme
    raise ValueError(f"--source {source!r}: choose from {', '.join(SOURCES)}")


def _posed_test_set(gen: FaceGenerator, count: int, seed: int):
    """`count` built-in people under prior attributes with |yaw| <= MAX_YAW_DEG."""
    kept: list[FaceCoeffs] = []
    draw = 0
    while sum(len(c) for c in kept) < count and draw < 20:
        coeffs = gen.sample(count, seed + draw)
        kept.append(coeffs[torch.nonzero(coeffs.pose[:, 0].abs() <= np.radians(MAX_YAW_DEG)).flatten()])
        draw += 1
    coeffs = FaceCoeffs.cat(kept)
    return coeffs[torch.arange(min(count, len(coeffs)))]


def _lfw_photos(lfw: Path | None, count: int) -> list[Path]:
    if lfw is None:
        return []
    images = sorted((Path(lfw) / "images").rglob("*.jpg")) or sorted(Path(lfw).rglob("*.jpg"))
    if not images:
        raise ValueError(f"--lfw {lfw}: no .jpg photos found")
    step = max(1, len(images) // count)
    return images[::step][:count]


def bench_landmarks(source: str = "dlib", renders: int = 60, photos: int = 200, lfw: str | Path | None = None,
                    seed: int = 11, progress: Callable[[int, int], None] | None = None) -> dict:
    """One JSON-ready record for one landmark source (see the module docstring)."""
    from synface.data.imageio import read_rgb  # noqa: PLC0415

    points_of, photo_points_of, scheme = landmark_source(source)
    tick = progress or (lambda done, total: None)
    gen = FaceGenerator(device="cpu")
    ids, residual = calibrate_landmark_vertices(gen, points_of=points_of, count=scheme.count)
    mean, shape_basis, expr_basis = landmark_basis(gen.model, ids)
    low, high = gen.model.expr_range()

    coeffs = _posed_test_set(gen, renders, seed)
    images = gen.render(coeffs).images.cpu().numpy()
    found, rows, times = [], [], []
    paths = _lfw_photos(Path(lfw) if lfw else None, photos)
    total = len(images) + len(paths)
    for i, image in enumerate(images):
        t0 = time.perf_counter()
        points = render_points(image, points_of)
        times.append(time.perf_counter() - t0)
        if points is not None:
            found.append(points)
            rows.append(i)
        tick(i + 1, total)
    if not found:
        raise RuntimeError(f"{source} found no face in {len(images)} test renders")
    fit = fit_geometry(np.stack(found), mean, shape_basis, expr_basis, low, high, scheme=scheme)
    sel = torch.as_tensor(rows)
    true_yaw = np.degrees(coeffs.pose[sel, 0].cpu().numpy())
    yaw_error = np.abs(np.degrees(fit.pose[:, 0]) - true_yaw)
    neutral = torch.zeros(len(rows), gen.layout.expr)
    true_head = gen.model.geometry(coeffs.shape[sel].cpu(), neutral).double()
    fitted_head = gen.model.geometry(torch.as_tensor(fit.shape, dtype=torch.float32), neutral).double()
    eyes = gen.model.landmark_vertices[:2].cpu()
    unit = (true_head[:, eyes[0]] - true_head[:, eyes[1]]).norm(dim=-1)  # the eye centres' distance
    mean_head = gen.model.geometry(torch.zeros_like(coeffs.shape[sel].cpu()), neutral).double()
    # the face the landmarks see: vertices facing the camera on the mean head
    face = gen.model.vertex_normals(mean_head[:1].float())[0, :, 2] > FRONT_NORMAL_Z

    def head_error(heads: torch.Tensor) -> np.ndarray:
        return ((heads - true_head)[:, face].norm(dim=-1).pow(2).mean(1).sqrt() / unit).numpy()

    shape_error, mean_head_error = head_error(fitted_head), head_error(mean_head)

    photo_found, photo_times, photo_error = 0, [], []
    for j, path in enumerate(paths):
        image = np.asarray(read_rgb(path, "photo"))
        t0 = time.perf_counter()
        points = photo_points_of(image)
        photo_times.append(time.perf_counter() - t0)
        if points is not None:
            photo_found += 1
            photo_error.append(points)
        tick(len(images) + j + 1, total)
    record = {
        "bench": "landmarks", "source": source, "points": scheme.count,
        "calibration_residual_px": round(residual, 3),
        "renders": len(images), "render_detected": round(len(rows) / len(images), 4),
        "yaw_error_deg_median": round(float(np.median(yaw_error)), 3),
        "yaw_error_deg_p90": round(float(np.percentile(yaw_error, 90)), 3),
        "shape_error_iod_median": round(float(np.median(shape_error)), 4),
        "shape_error_of_mean_head_iod_median": round(float(np.median(mean_head_error)), 4),
        "landmark_fit_error_iod_median": round(float(np.median(fit.error)), 4),
        "ms_per_render_median": round(1000 * float(np.median(times)), 2),
    }
    if paths:
        real = fit_geometry(np.stack(photo_error), mean, shape_basis, expr_basis, low, high, scheme=scheme) \
            if photo_error else None
        record.update({
            "photos": len(paths), "photo_detected": round(photo_found / len(paths), 4),
            "ms_per_photo_median": round(1000 * float(np.median(photo_times)), 2),
            "photo_fit_error_iod_median": round(float(np.median(real.error)), 4) if real is not None else None,
        })
    return record

