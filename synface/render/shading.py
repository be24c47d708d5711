"""Spherical-harmonics lighting in the Deep3DFaceReconstruction convention (reference.md s.2).

Normals live in camera space: x right, y up, z toward the viewer. Irradiance of colour c at unit
normal n is  E_c(n) = Y(n) . (gamma_c + 0.8 e_0), with Y the 9 scaled SH basis functions below;
a vertex colour is albedo * E.
"""

from __future__ import annotations

import math

import torch

from synface.base.exact import stable_cos, stable_sin

SH_A = (math.pi, 2 * math.pi / math.sqrt(3), 2 * math.pi / math.sqrt(8))
SH_C = (1 / math.sqrt(4 * math.pi), math.sqrt(3) / math.sqrt(4 * math.pi),
        3 * math.sqrt(5) / math.sqrt(12 * math.pi))
#: the folded band constants a_l * c_l, the one set every shader uses
SH_K = (SH_A[0] * SH_C[0], SH_A[1] * SH_C[1], SH_A[2] * SH_C[2])
AMBIENT_OFFSET = 0.8  # added to band 0 of every colour (Deep3DFace convention)
N_FIT_DIRS = 1024  # sphere directions for the least-squares fit of light_to_sh

_FIT_CACHE: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """(...,3) unit normals -> (...,9) scaled SH basis, Deep3DFace order and signs."""
    x, y, z = normals.unbind(-1)
    k0, k1, k2 = SH_K
    return torch.stack([
        torch.full_like(x, k0),
        -k1 * y,
        k1 * z,
        -k1 * x,
        k2 * x * y,
        -k2 * y * z,
        k2 * 0.5 / math.sqrt(3.0) * (3 * z * z - 1),
        -k2 * x * z,
        k2 * 0.5 * (x * x - y * y),
    ], dim=-1)


def _with_offset(gamma: torch.Tensor) -> torch.Tensor:
    """(B,27) -> (B,3,9) coefficients including the 0.8 ambient offset on band 0."""
    g = gamma.reshape(gamma.shape[0], 3, 9)
    offset = torch.zeros(9, dtype=g.dtype, device=g.device)
    offset[0] = AMBIENT_OFFSET
    return g + offset


def sh_irradiance(normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Per-colour irradiance (B,V,3) at normals (B,V,3) for SH lighting gamma (B,27)."""
    if normals.dim() != 3 or normals.shape[-1] != 3:
        raise ValueError(f"normals must be (B,V,3), got shape {tuple(normals.shape)}")
    if gamma.dim() != 2 or gamma.shape[1] != 27 or gamma.shape[0] != normals.shape[0]:
        raise ValueError(f"gamma must be (B,27) with B={normals.shape[0]}, "
                         f"got shape {tuple(gamma.shape)}")
    return torch.einsum("bvk,bck->bvc", sh_basis(normals), _with_offset(gamma))


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Smooth unit normals (B,V,3): sum of adjacent face cross products (area weighting).

    Counter-clockwise faces (seen from outside) give outward normals. A vertex with no
    (non-degenerate) face gets +z, the direction toward the viewer, instead of NaN.
    """
    v0, v1, v2 = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    fn = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # (B,F,3), |fn| = 2 * area
    acc = torch.zeros_like(verts)
    for k in range(3):
        acc.index_add_(1, faces[:, k], fn)
    norm = acc.norm(dim=-1, keepdim=True)
    fallback = torch.zeros_like(acc)
    fallback[..., 2] = 1.0
    tiny = norm <= 1e-12
    return torch.where(tiny, fallback, acc / norm.clamp_min(1e-12))


def light_direction(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """Unit vector toward the light (B,3): yaw about +y (positive = from +x, the image right),
    pitch about x (positive = from above); yaw = pitch = 0 is the camera direction (0,0,1)."""
    cp = stable_cos(pitch)
    return torch.stack([stable_sin(yaw) * cp, stable_sin(pitch), stable_cos(yaw) * cp], dim=-1)


def _fibonacci_sphere(n: int) -> torch.Tensor:
    """n nearly uniform unit directions (float64), deterministic."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    r = torch.sqrt(1 - z * z)
    phi = math.pi * (3 - math.sqrt(5)) * i
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)


def _fit_operator(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(dirs (N,3), P (9,N)) with P = pinv(Y(dirs)): least squares SH fit of samples on dirs.

    Computed once per device/dtype and cached: it only depends on the fixed direction set.
    """
    key = (str(device), dtype)
    if key not in _FIT_CACHE:
        dirs = _fibonacci_sphere(N_FIT_DIRS)
        proj = torch.linalg.pinv(sh_basis(dirs))
        _FIT_CACHE[key] = (dirs.to(device, dtype), proj.to(device, dtype))
    return _FIT_CACHE[key]


def light_to_sh(direction_yaw: torch.Tensor, direction_pitch: torch.Tensor,
                intensity: torch.Tensor, ambient: torch.Tensor,
                colour: torch.Tensor) -> torch.Tensor:
    """Friendly light controls -> gamma (B,27), ready for sh_irradiance (0.8 offset removed).

    gamma is the least-squares SH fit (over N_FIT_DIRS sphere directions) of
    E_c(n) = colour_c * (ambient + intensity * max(0, n . d)). Order-2 SH cannot represent the
    clamped cosine's kink exactly, so the fit is smooth (RMS error ~ 4% of the direct term).
    Controls are (B,) tensors, colour (B,3); see light_direction for yaw/pitch.
    """
    out_dtype = colour.dtype if colour.is_floating_point() else torch.float32
    # The fit is two matrix products whose float32 rows would depend on the batch's GEMM kernel:
    # on the CPU they run in float64 and are rounded once (the same light alone or in a batch).
    dtype = torch.float64 if colour.device.type == "cpu" else out_dtype
    dirs, proj = _fit_operator(colour.device, dtype)
    d = light_direction(direction_yaw.to(dtype), direction_pitch.to(dtype))  # (B,3)
    lobe = (d @ dirs.T).clamp_min(0)  # (B,N)
    shape = ambient.to(dtype)[:, None] + intensity.to(dtype)[:, None] * lobe  # (B,N)
    coef = shape @ proj.T  # (B,9): fit of the colourless light
    gamma = colour.to(dtype)[:, :, None] * coef[:, None, :]  # (B,3,9)
    gamma[:, :, 0] -= AMBIENT_OFFSET
    return gamma.reshape(-1, 27).to(out_dtype)


def sh_to_light(gamma: torch.Tensor) -> dict[str, torch.Tensor]:
    """Best-effort inverse of light_to_sh, for display: dominant direction, intensity, ambient,
    colour (normalised to max channel 1). Exact (up to the fit) for gamma from light_to_sh with
    max(colour) = 1; for arbitrary gamma it reads the linear band as the light direction.
    """
    g = _with_offset(gamma)  # (B,3,9)
    zero = torch.zeros(1, dtype=g.dtype, device=g.device)
    ref = light_to_sh(zero, zero, zero + 1, zero, torch.ones(1, 3, dtype=g.dtype, device=g.device))
    ref = _with_offset(ref)[0, 0]  # unit frontal light: ref[0] DC, ref[2] linear (z) band
    unit_ambient = 1.0 / (SH_A[0] * SH_C[0])
    # linear band order (-y, z, -x) -> direction (x, y, z), luminance-weighted over colours
    lin = torch.stack([-g[:, :, 3], -g[:, :, 1], g[:, :, 2]], dim=-1)  # (B,3,3)
    lin_sum = lin.sum(1)
    direction = lin_sum / lin_sum.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    dc = g[:, :, 0]
    colour = dc / dc.amax(1, keepdim=True).clamp_min(1e-12)
    lin_mag = (lin * direction[:, None, :]).sum(-1).clamp_min(0)  # (B,3) per colour
    intensity = lin_mag.sum(1) / (ref[2] * colour.sum(1)).clamp_min(1e-12)
    ambient = (dc.sum(1) / colour.sum(1).clamp_min(1e-12) - intensity * ref[0]) / unit_ambient
    return {
        "yaw": torch.atan2(direction[:, 0], direction[:, 2]),
        "pitch": torch.asin(direction[:, 1].clamp(-1, 1)),
        "direction": direction,
        "intensity": intensity,
        "ambient": ambient,
        "colour": colour,
    }
