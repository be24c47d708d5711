"""68-point landmarks on photographs (dlib), and where those points lie on the built-in head.

Landmark source: dlib's 68-point predictor from face_recognition_models, already a dependency
(docs/realism.md compares it with the alternatives). Its points on our head are found by
measurement rather than by hand: frontal neutral renders of many built-in people go through the
same detector and predictor, and each point takes the front-facing vertex that lies nearest to it
over all renders (least squares), so a fit to a photo compares like with like.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from synface.data.align import detect, landmarks68, pick_face
from synface.data.realface import detect_faces, detector_view

#: renders used to place the 68 points on the head
CALIBRATION_RENDERS = 48
#: how far a vertex's normal must face the camera to carry a frontal landmark
FRONT_NORMAL_Z = 0.2


def photo_landmarks(image: np.ndarray) -> np.ndarray | None:
    """(68,2) landmarks of the central face of an RGB photo (pixel units), or None: no face."""
    rects = detect(image)
    if not rects:
        return None
    h, w = image.shape[:2]
    return landmarks68(image, pick_face(rects, w, h))


#: a landmark detector on an RGB view: (P,2) continuous pixel coordinates, or None (no face)
PointsOf = Callable[[np.ndarray], "np.ndarray | None"]


def dlib_points(view: np.ndarray) -> np.ndarray | None:
    """dlib's 68 points of the one face HOG finds in `view` (continuous coordinates), else None."""
    rects = detect_faces(view, upsample=0)
    if len(rects) != 1:
        return None
    return landmarks68(view, rects[0]) + 0.5  # pixel index -> continuous coordinate


def render_points(image: np.ndarray, points_of: PointsOf = dlib_points) -> np.ndarray | None:
    """A detector's points on a render, in the render's continuous pixel coordinates: the render
    is shown as a photo would be (`detector_view`: 2x, with a margin) and mapped back."""
    view = detector_view(image, upscale=2, margin=0.25)
    found = points_of(view)
    if found is None:
        return None
    pad = (view.shape[0] - 2 * image.shape[0]) // 2
    return (found - pad) / 2.0


def calibrate_landmark_vertices(generator, renders: int = CALIBRATION_RENDERS, seed: int = 5,
                                points_of: PointsOf = dlib_points, count: int = 68) -> tuple[np.ndarray, float]:
    """(count,) vertex ids of a detector's points (dlib's 68 by default) on `generator`'s head, and
    the median distance (output pixels at 112x112) between a detected point and its vertex."""
    coeffs = generator.neutral(generator.sample(renders, seed))
    images = generator.render(coeffs).images.cpu().numpy()
    verts = generator.model.geometry(coeffs.shape, coeffs.expr)
    pixels = generator.frontal_pixels(verts).cpu().numpy().astype(np.float64)
    front = generator.model.vertex_normals(verts)[..., 2].cpu().numpy() > FRONT_NORMAL_Z
    sq = np.zeros((count, pixels.shape[1]))
    found_points = []
    for i, image in enumerate(images):
        points = render_points(image, points_of)
        if points is None:
            continue
        d = ((pixels[i][None, :, :] - points[:, None, :]) ** 2).sum(-1)
        d[:, ~front[i]] = 1e6
        sq += d
        found_points.append(d)
    if len(found_points) < renders // 2:
        raise RuntimeError(f"the landmark detector found the face in only {len(found_points)} of {renders} "
                           "calibration renders")
    ids = sq.argmin(1)
    residual = np.sqrt(np.stack([d[np.arange(count), ids] for d in found_points]))
    return ids.astype(np.int64), float(np.median(residual))


def landmark_basis(model, vertex_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(P,3) mean, (S,P,3) shape and (E,P,3) expression bases of a linear model at the landmark
    vertices, read through its public geometry (unit coefficient vectors), in float64."""
    layout = model.layout
    S, E = layout.shape, layout.expr
    eye = torch.eye(S + E)
    zero = torch.zeros(1, S + E)
    coeffs = torch.cat([zero, eye])
    verts = model.geometry(coeffs[:, :S].contiguous(), coeffs[:, S:].contiguous())
    ids = torch.as_tensor(vertex_ids, dtype=torch.long, device=verts.device)
    at = verts[:, ids].double().cpu()
    mean = at[0]
    delta = at[1:] - mean
    return mean, delta[:S], delta[S:]
