"""`bench reconstruct`: held-out photos re-rendered from their own fits, compared with the photos.

Per photo (people the model was not fitted on, e.g. LFW folds 4-5): dlib's 68 points, the
built-in head fitted to them, the photo unwrapped onto the texture square; the head is rendered
at the photo's pose with the photo's light, once wearing the texture map and once wearing only
its colours at the head's vertices (what learned models were before texture maps), and each
render is compared with the photo warped into the same 112 x 112 crop. The score is SSIM of the
luminance (Gaussian window, sigma 1.5 px) over the face: pixels the head covers fully that lie
inside the photo's face outline, eroded by 2 px.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

import numpy as np
import torch

SSIM_SIGMA = 1.5
ERODE_PX = 2


def ssim_map(a: np.ndarray, b: np.ndarray, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Per-pixel SSIM of two (H, W) images in [0, 1] (Gaussian-weighted statistics)."""
    from scipy import ndimage  # noqa: PLC0415

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda x: ndimage.gaussian_filter(x, sigma, mode="nearest")  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def _luma(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0


def fit_crop_matrix(pipeline, fit) -> np.ndarray:
    """2x3 map from photo pixels to crop pixels (integer-centre convention, as warp_with_matrix
    takes it): the fitted head's projection is the same point in both."""
    model = pipeline.model
    verts = model.geometry(fit.shape, fit.expr)
    from synface.render.camera import rotation_matrices  # noqa: PLC0415

    rot = rotation_matrices(fit.pose.double())
    landmarks = verts[:, model.landmark_vertices].double()
    A_r, t_r = pipeline._landmark_alignment(landmarks, rot, torch.zeros(1, 3, dtype=torch.float64), fit.pose.double())  # noqa: SLF001
    A_r, t_r = A_r[0].numpy(), t_r[0].numpy()
    A_f, t_f = fit.photo_from_projection
    lin = A_r @ np.linalg.inv(A_f)
    shift = t_r - lin @ t_f
    return np.concatenate([lin, (shift + lin @ np.array([0.5, 0.5]) - 0.5)[:, None]], 1)


def _render(generator, fit, background: float) -> np.ndarray:
    from synface.face.coeffs import FaceCoeffs  # noqa: PLC0415

    layout = generator.model.layout
    coeffs = FaceCoeffs(shape=fit.shape, albedo=torch.zeros(1, layout.albedo), expr=fit.expr, light=fit.light,
                        pose=fit.pose, jitter=torch.zeros(1, 3), background=torch.tensor([[background] * 6 + [0.0] * 6]))
    return generator.render(coeffs).images[0].numpy()


def reconstruct_one(builtin, image: np.ndarray, points: np.ndarray, landmark_ids: np.ndarray, geo) -> dict:
    """SSIM over the face of this photo's texture-map and per-vertex re-renders, and the images."""
    from scipy import ndimage  # noqa: PLC0415

    from synface.data.align import warp_with_matrix  # noqa: PLC0415
    from synface.fitting.reconstruct import PhotoTextureModel, fit_photo  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    fit = fit_photo(builtin, image, points, landmark_ids, geo, warp=False)
    matrix = fit_crop_matrix(builtin.pipeline, fit)
    real = warp_with_matrix(image, matrix)
    person = warp_with_matrix(np.repeat((fit.person[..., None] * 255).astype(np.uint8), 3, 2), matrix)[..., 0] / 255.0
    out: dict[str, Any] = {"real": real}
    for name, per_vertex in (("texture", False), ("per_vertex", True)):
        gen = FaceGenerator(device="cpu", model=PhotoTextureModel(builtin.model, fit.texture, per_vertex))
        dark, light = _render(gen, fit, 0.0), _render(gen, fit, 1.0)
        covered = (dark == light).all(2)
        face = ndimage.binary_erosion(covered & (person > 0.9), iterations=ERODE_PX)
        out[name] = dark
        out[f"{name}_ssim"] = float(ssim_map(_luma(real), _luma(dark))[face].mean()) if face.sum() >= 100 else None
        out["face_pixels"] = int(face.sum())
    return out


def bench_reconstruct(photos: str, folds: list[int] | None = None, count: int = 40, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> dict:
    """Median SSIM (and quartiles) over `count` held-out photos of texture-map and per-vertex
    re-renders."""
    from synface.data.imageio import read_rgb  # noqa: PLC0415
    from synface.fitting.landmarks import calibrate_landmark_vertices, photo_landmarks  # noqa: PLC0415
    from synface.fitting.photos import find_photos  # noqa: PLC0415
    from synface.fitting.unwrap import texel_geometry  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    if count < 1:
        raise ValueError(f"--photos-count must be at least 1, got {count}")
    photoset = find_photos(photos, folds=folds, max_photos_per_person=1)
    files = [path for _, path in photoset.files]
    order = np.random.default_rng(seed).permutation(len(files))[: min(count * 2, len(files))]
    builtin = FaceGenerator(device="cpu")
    landmark_ids, _ = calibrate_landmark_vertices(builtin)
    geo = texel_geometry(builtin)
    scores: dict[str, list[float]] = {"texture": [], "per_vertex": []}
    used, tick = 0, progress or (lambda done, total: None)
    tick(0, count)
    for i in order:
        if used >= count:
            break
        image = np.asarray(read_rgb(files[i], what="photo"))
        points = photo_landmarks(image)
        if points is None:
            continue
        result = reconstruct_one(builtin, image, points + 0.5, landmark_ids, geo)
        if result["texture_ssim"] is None or result["per_vertex_ssim"] is None:
            continue
        scores["texture"].append(result["texture_ssim"])
        scores["per_vertex"].append(result["per_vertex_ssim"])
        used += 1
        tick(used, count)
    if not used:
        raise ValueError(f"{photos}: no photo with a face among the {len(order)} tried")

    def summary(values: list[float]) -> dict:
        q = np.percentile(values, [25, 50, 75])
        return {"median": round(float(q[1]), 4), "q25": round(float(q[0]), 4), "q75": round(float(q[2]), 4),
                "mean": round(statistics.fmean(values), 4)}

    return {"bench": "reconstruct", "photos": used, "folds": folds, "seed": seed, "texture_ssim": summary(scores["texture"]),
            "per_vertex_ssim": summary(scores["per_vertex"]),
            "protocol": "held-out photo re-rendered at its own pose and light from its own fit, 112x112, SSIM of "
                        "luminance (sigma 1.5) over the face (covered, inside the photo's outline, eroded 2 px)"}
