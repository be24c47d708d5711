"""Fit pose, head shape and expression of the built-in head to 68 photo landmarks.

The camera is the renderer's: rotation by (yaw, pitch, roll), the perspective of
`synface.render.camera`, then a 2-D similarity, which is solved in closed form at every step
(least squares over the points), so only pose, shape and expression are optimised. The energy is
a MAP one: squared landmark error over an assumed landmark noise, plus the unit-normal prior of
the coefficients, so a point the photo cannot constrain stays at the prior's mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from synface.render.camera import fit_similarity, perspective

#: the landmark error the fit expects, as a fraction of the inter-ocular distance: dlib's own
#: noise (about 0.035) plus where the 68 points sit on our head (2.4 px off), and the head's limited
#: shape space; chosen with `bench landmarks` (docs/face_models.md), where smaller values fit the
#: points closer but give a worse pose and a head further from the truth than the mean head
LANDMARK_NOISE = 0.14
#: the jaw contour (points 0-16) follows the silhouette, not fixed vertices: it counts less
CONTOUR_WEIGHT = 0.3
EXPR_PRIOR_SD = 0.35
STEPS = 300
LEARNING_RATE = 0.05


@dataclass
class GeometryFit:
    """Per photo: pose (N,3) radians, shape (N,S), expr (N,E), similarity A (N,2,2) and t (N,2)
    from projected model points to photo pixels, and the landmark error as a fraction of the
    inter-ocular distance (N,)."""

    pose: np.ndarray
    shape: np.ndarray
    expr: np.ndarray
    A: np.ndarray
    t: np.ndarray
    error: np.ndarray


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark set the fit can use: how many points, which follow the silhouette (they count
    less and are left out of the error), and the two eyes' points (the error's unit)."""

    name: str
    count: int
    contour: tuple[int, ...]
    eye_a: tuple[int, ...]
    eye_b: tuple[int, ...]

    def weights(self) -> torch.Tensor:
        w = torch.ones(self.count, dtype=torch.float64)
        w[list(self.contour)] = CONTOUR_WEIGHT
        return w

    def inner(self) -> list[int]:
        contour = set(self.contour)
        return [i for i in range(self.count) if i not in contour]


#: dlib's 68 points: the jaw contour is points 0-16, the eyes 36-41 and 42-47
DLIB68 = LandmarkScheme("dlib68", 68, tuple(range(17)), tuple(range(36, 42)), tuple(range(42, 48)))


def differentiable_rotations(pose: torch.Tensor) -> torch.Tensor:
    """The renderer's R = Rz(roll) Ry(yaw) Rx(pitch) (`synface.render.camera.rotation_matrices`)
    with torch's own sin and cos, which carry gradients (the renderer's exact ones do not)."""
    yaw, pitch, roll = pose[:, 0], pose[:, 1], pose[:, 2]
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    cx, sx, cy, sy, cz, sz = pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin(), roll.cos(), roll.sin()
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def project_points(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """(N,P,3) model points -> (N,P,2) perspective image points before the similarity."""
    rot = differentiable_rotations(pose)
    xy, _ = perspective(points @ rot.transpose(1, 2))
    return xy


def fit_geometry(targets: np.ndarray, mean: torch.Tensor, shape_basis: torch.Tensor, expr_basis: torch.Tensor,
                 expr_low: torch.Tensor, expr_high: torch.Tensor, steps: int = STEPS,
                 scheme: LandmarkScheme = DLIB68) -> GeometryFit:
    """MAP fit of (N,P,2) photo landmarks (continuous pixel coordinates) of `scheme` with the
    landmark bases of `synface.fitting.landmarks.landmark_basis`."""
    y = torch.as_tensor(targets, dtype=torch.float64)
    N, P = len(y), scheme.count
    if y.ndim != 3 or y.shape[1:] != (P, 2):
        raise ValueError(f"landmarks of shape {tuple(y.shape)}; {scheme.name} needs (N, {P}, 2)")
    iod = (y[:, list(scheme.eye_a)].mean(1) - y[:, list(scheme.eye_b)].mean(1)).norm(dim=1).clamp_min(1.0)
    S, E = len(shape_basis), len(expr_basis)
    pose = torch.zeros(N, 3, dtype=torch.float64, requires_grad=True)
    shape = torch.zeros(N, S, dtype=torch.float64, requires_grad=True)
    expr = torch.zeros(N, E, dtype=torch.float64, requires_grad=True)
    low, high = expr_low.double(), expr_high.double()
    w = scheme.weights()
    sb, eb = shape_basis.reshape(S, -1), expr_basis.reshape(E, -1)
    opt = torch.optim.Adam([pose, shape, expr], lr=LEARNING_RATE)

    def residual() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pts = (mean.reshape(1, -1) + shape @ sb + expr @ eb).view(N, P, 3)
        xy = project_points(pts, pose)
        A, t = fit_similarity(xy, y)
        pred = xy @ A.transpose(1, 2) + t.unsqueeze(1)
        return (pred - y) / iod.view(-1, 1, 1), A, t

    for _ in range(steps):
        opt.zero_grad()
        r, _, _ = residual()
        data = ((r**2).sum(-1) * w).sum(1) / (2 * LANDMARK_NOISE**2)
        prior = 0.5 * (shape**2).sum(1) + 0.5 * ((expr / EXPR_PRIOR_SD) ** 2).sum(1)
        (data + prior).sum().backward()
        opt.step()
        with torch.no_grad():
            expr.copy_(torch.maximum(torch.minimum(expr, high), low))
            pose[:, 1:].clamp_(-1.0, 1.0)
            pose[:, 0].clamp_(-1.4, 1.4)
    with torch.no_grad():
        r, A, t = residual()
        error = (r[:, scheme.inner()].norm(dim=-1) ** 2).mean(1).sqrt()  # the contour is not a vertex
    return GeometryFit(pose.detach().numpy(), shape.detach().numpy(), expr.detach().numpy(),
                       A.numpy(), t.numpy(), error.numpy())
