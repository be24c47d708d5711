"""68-point landmarks on photographs (dlib), and where those points lie on the built-in head.

Landmark source: dlib's 68-point predictor from face_recognition_models, already a dependency
(docs/realism.md compares it with the alternatives). Its points on our head are found by
measurement rather than by hand: frontal neutral renders of many built-in people go through the
same detector and predictor, and each point takes the front-facing vertex that lies nearest to it
over all renders (least squares), so a fit to a photo compares like with like.
"""

from __future__ import annotations

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


def calibrate_landmark_vertices(generator, renders: int = CALIBRATION_RENDERS, seed: int = 5) -> tuple[np.ndarray, float]:
    """(68,) vertex ids of the 68 dlib points on `generator`'s head, and the median distance
    (output pixels at 112x112) between a detected point and its vertex over the renders."""
    coeffs = generator.neutral(generator.sample(renders, seed))
    images = generator.render(coeffs).images.cpu().numpy()
    verts = generator.model.geometry(coeffs.shape, coeffs.expr)
    pixels = generator.frontal_pixels(verts).cpu().numpy().astype(np.float64)
    front = generator.model.vertex_normals(verts)[..., 2].cpu().numpy() > FRONT_NORMAL_Z
    size = generator.image_size
    sq = np.zeros((68, pixels.shape[1]))
    used = 0
    found_points = []
    for i, image in enumerate(images):
        view = detector_view(image, upscale=2, margin=0.25)
        rects = detect_faces(view, upsample=0)
        if len(rects) != 1:
            continue
        pad = (view.shape[0] - 2 * size) // 2
        points = (landmarks68(view, rects[0]) - pad) / 2.0 - 0.25  # pixel index -> crop coordinates
        d = ((pixels[i][None, :, :] - (points[:, None, :] + 0.5)) ** 2).sum(-1)
        d[:, ~front[i]] = 1e6
        sq += d
        used += 1
        found_points.append(d)
    if used < renders // 2:
        raise RuntimeError(f"dlib found the face in only {used} of {renders} calibration renders")
    ids = sq.argmin(1)
    residual = np.sqrt(np.stack([d[np.arange(68), ids] for d in found_points]))
    return ids.astype(np.int64), float(np.median(residual))


def landmark_basis(model, vertex_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(68,3) mean, (S,68,3) shape and (E,68,3) expression bases of a linear model at the landmark
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
