"""Pose, perspective projection and the 5-point similarity alignment to the ArcFace template.

Alignment is folded into the projection: after the perspective divide, one 2-D similarity maps
the 5 projected landmarks onto the template (least squares, as insightface's norm_crop does), so
the face is rendered already aligned, with no resampling blur.
"""

from __future__ import annotations

import torch

from synface.base.exact import stable_cos, stable_exp, stable_sin

#: ArcFace 112x112 template (reference.md section 3): eyes, nose tip, mouth corners.
ARCFACE_TEMPLATE = torch.tensor(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
CAMERA_DISTANCE = 10.0  # Deep3DFaceReconstruction convention
FOCAL_224 = 1015.0  # focal length for a 224x224 image
JITTER_DIM = 3  # tx, ty (fraction of the image width) and log-scale, applied after alignment


def rotation_matrices(pose: torch.Tensor) -> torch.Tensor:
    """(B,3) yaw, pitch, roll in radians -> (B,3,3) R = Rz(roll) @ Ry(yaw) @ Rx(pitch).

    Positive yaw turns the face toward the image's left, positive pitch tilts the chin down... in
    camera terms: rotation about +y then +x, +z as reference.md section 2 states.
    """
    yaw, pitch, roll = pose[:, 0], pose[:, 1], pose[:, 2]
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    cx, sx = stable_cos(pitch), stable_sin(pitch)
    cy, sy = stable_cos(yaw), stable_sin(yaw)
    cz, sz = stable_cos(roll), stable_sin(roll)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def perspective(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera on +z at CAMERA_DISTANCE looking at the origin: (B,V,3) -> pixel xy (y down) and depth."""
    depth = CAMERA_DISTANCE - points[..., 2]
    focal = FOCAL_224 / 224.0  # in image widths; the similarity fixes the final scale anyway
    x = focal * points[..., 0] / depth
    y = -focal * points[..., 1] / depth
    return torch.stack([x, y], -1), depth


def fit_similarity(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares 2-D similarity (Umeyama, no reflection) mapping src (B,N,2) onto dst (B,N,2).

    Returns (B,2,2) scaled rotation A and (B,2) translation t with dst ~= src @ A^T + t.
    """
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s, d = src - mu_s, dst - mu_d
    # For similarities the closed form reduces to two numbers a, b: A = [[a, -b], [b, a]].
    denom = (s**2).sum((1, 2)).clamp(min=1e-12)
    a = (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1]).sum(1) / denom
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(1) / denom
    A = torch.stack([a, -b, b, a], 1).view(-1, 2, 2)
    t = mu_d.squeeze(1) - (mu_s.squeeze(1).unsqueeze(1) @ A.transpose(1, 2)).squeeze(1)
    return A, t


def jitter_transform(jitter: torch.Tensor, size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Small post-alignment shift and scale (about the image centre), as detectors leave in real data."""
    scale = stable_exp(jitter[:, 2])
    A = torch.diag_embed(torch.stack([scale, scale], 1))
    centre = torch.full_like(jitter[:, :2], size / 2)
    t = centre - centre * scale.unsqueeze(1) + jitter[:, :2] * size
    return A, t
