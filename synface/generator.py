"""FaceGenerator: sample coefficients, render aligned 112x112 faces, blend identities (IM).

One code path for CPU and CUDA: geometry, shading and compositing are batched torch ops, and the
rasteriser picks its numba kernel on the CPU and its torch kernel on a GPU.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synface.base.device import resolve_device
from synface.face import prior as face_prior
from synface.face.builtin import BuiltinFaceModel
from synface.face.coeffs import JITTER_DIM, FaceCoeffs
from synface.face.model import MorphableModel
from synface.render.background import render_background
from synface.render.camera import (
    ARCFACE_TEMPLATE,
    CAMERA_DISTANCE,
    FOCAL_224,
    fit_similarity,
    jitter_transform,
    perspective,
    rotation_matrices,
)
from synface.render.fast_cpu import render_cpu
from synface.render.rasterize import rasterize
from synface.render.shading import AMBIENT_OFFSET, sh_irradiance

IMAGE_SIZE = 112


@dataclass
class RenderResult:
    images: torch.Tensor  # (B,112,112,3) uint8 RGB
    landmarks: torch.Tensor  # (B,5,2) float pixel positions of the 5 landmarks in the output image


@dataclass
class MeshResult:
    vertices: torch.Tensor  # (B,V,3) posed model-space vertices (y up)
    faces: torch.Tensor  # (F,3)
    colours: torch.Tensor  # (B,V,3) shaded vertex colours in [0,1]


class FaceGenerator:
    """Faces of people who do not exist, with explicit identity and attribute coefficients."""

    def __init__(self, device: str | torch.device | None = "auto", model: MorphableModel | None = None,
                 supersample: int = 2, image_size: int = IMAGE_SIZE) -> None:
        self.device = resolve_device(device)
        self.model = (model or BuiltinFaceModel()).to(self.device)
        self.layout = self.model.layout
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.supersample = int(supersample)
        #: use the fused numba kernel on the CPU (the torch path is the reference and the GPU path)
        self.fast_cpu = True
        self.image_size = int(image_size)
        # The rasteriser draws triangles whose screen winding is positive; the model's faces are
        # counter-clockwise in a y-up frame, which the y-down screen flips.
        self._raster_faces = self.model.faces[:, [0, 2, 1]].contiguous()
        self._expr_low, self._expr_high = (t.to(torch.float32) for t in self.model.expr_range())

    @property
    def version(self) -> str:
        """The model's version: synthetic sets refuse to resume under another one."""
        return self.model.version

    # ---------------------------------------------------------------------------------------
    # Sampling
    # ---------------------------------------------------------------------------------------
    def sample(self, n: int, seed: int, *, pose_scale: float = 1.0, expr_scale: float = 1.0,
               light_scale: float = 1.0, identity_scale: float = 1.0,
               prior: face_prior.AttributePrior = face_prior.DEFAULT_PRIOR) -> FaceCoeffs:
        """n new identities, each with attributes drawn from the prior. Same seed, same coefficients.

        `identity_scale` multiplies the identity (shape + albedo) draws: 0 gives the mean face,
        above 1 spreads identities wider than the prior (how `bench realism` probes how far more
        spread alone can separate identities)."""
        if not math.isfinite(identity_scale) or identity_scale < 0:
            raise ValueError(f"identity_scale must be a finite number >= 0, got {identity_scale}")
        g = torch.Generator().manual_seed(int(seed))
        shape, albedo = self.draw_identities(n, g)
        if identity_scale != 1.0:
            shape, albedo = shape * identity_scale, albedo * identity_scale
        attrs = self.sample_attributes(n, int(seed) + 7919, pose_scale=pose_scale, expr_scale=expr_scale,
                                       light_scale=light_scale, prior=prior)
        return FaceCoeffs(shape=shape, albedo=albedo, **attrs).to(self.device)

    def draw_identities(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) of n new identities on the CPU from the model's prior: the one place
        identities are drawn (sample, sample_identities and synthetic datasets all come here)."""
        shape, albedo = face_prior.sample_identity(self.layout, n, generator)
        return self.model.correlate_identity(shape, albedo)

    def sample_identities(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed))
        shape, albedo = self.draw_identities(n, g)
        return shape.to(self.device), albedo.to(self.device)

    def sample_attributes(self, n: int, seed: int, *, pose_scale: float = 1.0, expr_scale: float = 1.0,
                          light_scale: float = 1.0, prior: face_prior.AttributePrior = face_prior.DEFAULT_PRIOR) -> dict[str, torch.Tensor]:
        """Per-image attributes (expr, light, pose, jitter, background) on the CPU, from one seed."""
        g = torch.Generator().manual_seed(int(seed))
        pose = face_prior.sample_pose(n, g, prior, pose_scale)
        expr = face_prior.sample_expression(self._expr_low, self._expr_high, n, g, prior, expr_scale)
        light = face_prior.sample_light_controls(n, g, prior, light_scale).to_sh()
        jitter = face_prior.sample_jitter(n, g, prior)
        background = face_prior.sample_background(n, g)
        return {"expr": expr, "light": light, "pose": pose, "jitter": jitter, "background": background}

    def neutral(self, coeffs: FaceCoeffs) -> FaceCoeffs:
        """The same identities, frontal, neutral, evenly lit, on grey."""
        attrs = face_prior.neutral_attributes(len(coeffs), self.layout.expr)
        return coeffs.replace(**attrs)

    # ---------------------------------------------------------------------------------------
    # Identity mixup
    # ---------------------------------------------------------------------------------------
    @staticmethod
    def mix(a: FaceCoeffs, b: FaceCoeffs, phi: float | torch.Tensor) -> FaceCoeffs:
        """Identity mixup: identity = phi * A + (1 - phi) * B; attributes are A's.

        phi = 1 gives A, phi = 0 gives B's identity (the paper's convention, label (A, phi), (B, 1-phi)).
        """
        phi_t = torch.as_tensor(phi, dtype=torch.float32, device=a.device)
        if not bool(torch.isfinite(phi_t).all()):
            raise ValueError(f"phi must be finite, got {phi}")
        if bool(((phi_t < 0) | (phi_t > 1)).any()):
            raise ValueError(f"phi must lie in [0, 1], got {phi}")
        if len(a) != len(b) and len(b) != 1 and len(a) != 1:
            raise ValueError(f"mix: batch sizes differ ({len(a)} vs {len(b)})")
        w = phi_t.view(-1, 1) if phi_t.dim() > 0 else phi_t
        shape = w * a.shape + (1 - w) * b.shape.to(a.device)
        albedo = w * a.albedo + (1 - w) * b.albedo.to(a.device)
        base = a if len(a) >= len(shape) else a[[0] * len(shape)]
        return base.replace(shape=shape, albedo=albedo)

    # ---------------------------------------------------------------------------------------
    # Validation and clamping
    # ---------------------------------------------------------------------------------------
    def validate(self, coeffs: FaceCoeffs) -> FaceCoeffs:
        if not isinstance(coeffs, FaceCoeffs):
            raise ValueError(f"expected FaceCoeffs, got {type(coeffs).__name__}")
        expected = self.layout.sizes()
        for name, size in expected.items():
            got = getattr(coeffs, name).shape[1]
            if got != size:
                raise ValueError(f"FaceCoeffs.{name} has {got} values per face; this model needs {size}")
        coeffs.check_finite()
        return coeffs.to(self.device) if coeffs.device != self.device else coeffs

    def clamp(self, coeffs: FaceCoeffs) -> tuple[FaceCoeffs, list[str]]:
        """Clamp to the prior's range; returns the clamped batch and a note per changed field."""
        notes: list[str] = []
        lim = face_prior.IDENTITY_CLAMP
        out = {}
        for name in ("shape", "albedo"):
            value = getattr(coeffs, name)
            clamped = value.clamp(-lim, lim)
            if not torch.equal(clamped, value):
                notes.append(f"{name} clamped to [-{lim}, {lim}]")
            out[name] = clamped
        low, high = self._expr_low.to(coeffs.device), self._expr_high.to(coeffs.device)
        expr = torch.maximum(torch.minimum(coeffs.expr, high), low)
        if not torch.equal(expr, coeffs.expr):
            notes.append("expression clamped to each blendshape's range")
        out["expr"] = expr
        limits = torch.tensor(
            [np.radians(face_prior.DEFAULT_PRIOR.yaw_max_deg + 15), np.radians(60.0), np.radians(45.0)],
            dtype=torch.float32, device=coeffs.device)
        pose = torch.maximum(torch.minimum(coeffs.pose, limits), -limits)
        if not torch.equal(pose, coeffs.pose):
            notes.append("pose clamped to yaw +-90, pitch +-60, roll +-45 degrees")
        out["pose"] = pose
        return coeffs.replace(**out), notes

    # ---------------------------------------------------------------------------------------
    # Rendering
    # ---------------------------------------------------------------------------------------
    def posed_mesh(self, coeffs: FaceCoeffs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posed vertices (model space, y up), unit normals, and albedo."""
        verts = self.model.geometry(coeffs.shape, coeffs.expr)
        rot = rotation_matrices(coeffs.pose)
        verts = verts @ rot.transpose(1, 2)
        normals = self.model.vertex_normals(verts)
        albedo = self.model.albedo(coeffs.albedo, coeffs.expr)
        return verts, normals, albedo

    def mesh(self, coeffs: FaceCoeffs) -> MeshResult:
        """Shaded mesh for 3-D views."""
        coeffs = self.validate(coeffs)
        with torch.no_grad():
            verts, normals, albedo = self.posed_mesh(coeffs)
            exposure = self.model.exposure(coeffs.albedo).view(-1, 1, 1)
            colours = (albedo * sh_irradiance(normals, coeffs.light) * exposure).clamp(0, 1)
        return MeshResult(verts, self.model.faces, colours)

    def render_float(self, coeffs: FaceCoeffs) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,112,112) float images in [0,1] and (B,5,2) landmarks."""
        result = self.render(coeffs)
        return result.images.permute(0, 3, 1, 2).float() / 255.0, result.landmarks

    def render(self, coeffs: FaceCoeffs) -> RenderResult:
        """(B,112,112,3) uint8 images aligned to the ArcFace template, plus their 5 landmarks."""
        coeffs = self.validate(coeffs)
        with torch.no_grad():
            if self.device.type == "cpu" and self.fast_cpu:
                images, landmarks = self._render_fused_cpu(coeffs)
            else:
                images, landmarks = self._render_torch(coeffs)
        return RenderResult(images=images, landmarks=landmarks)

    def _alignment(self, verts: torch.Tensor, rot: torch.Tensor, jitter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, t) mapping perspective-projected points to output pixels: the 5-point similarity
        onto the ArcFace template followed by the jitter."""
        size = self.image_size
        lm3d = verts[:, self.model.landmark_vertices] @ rot.transpose(1, 2)
        lm_src, _ = perspective(lm3d)
        template = ARCFACE_TEMPLATE.to(verts.device) * (size / 112.0)
        A, t = fit_similarity(lm_src, template.unsqueeze(0).expand(verts.shape[0], -1, -1))
        J, tj = jitter_transform(jitter, size)
        return J @ A, (t.unsqueeze(1) @ J.transpose(1, 2)).squeeze(1) + tj

    def frontal_pixels(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, V, 2) output pixels of unposed model vertices seen frontally, without jitter: where
        each vertex lands in an aligned crop."""
        B = verts.shape[0]
        rot = torch.eye(3, device=verts.device).expand(B, 3, 3)
        A, t = self._alignment(verts, rot, torch.zeros(B, JITTER_DIM, device=verts.device))
        return self._to_pixels(verts, A, t)

    def _render_fused_cpu(self, coeffs: FaceCoeffs) -> tuple[torch.Tensor, torch.Tensor]:
        # Pose and alignment are small per-image sums (3x3 and 5-point fits) whose float32 result
        # would depend on the batch's kernel choice: they run in float64 and are rounded once, so
        # every image gets the same float32 inputs alone or in any batch.
        verts = self.model.geometry(coeffs.shape, coeffs.expr)
        rot64 = rotation_matrices(coeffs.pose.double())
        verts64 = verts.double()
        A64, t64 = self._alignment(verts64, rot64, coeffs.jitter.double())
        rot, A, t = rot64.float(), A64.float(), t64.float()
        parts = self.model.albedo_parts(coeffs.albedo, coeffs.expr)
        gamma = coeffs.light.view(-1, 3, 9).clone()
        gamma[:, :, 0] += AMBIENT_OFFSET
        gamma = gamma * self.model.exposure(coeffs.albedo).view(-1, 1, 1)
        images = render_cpu(verts, self.model.faces, self._raster_faces, rot, parts, gamma, FOCAL_224 / 224.0,
                            CAMERA_DISTANCE, A, t, self.supersample, coeffs.background, self.image_size,
                            grid_shape=getattr(self.model, "grid_shape", None))
        landmarks = self._project_landmarks(verts64, rot64, A64, t64).float()
        return images, landmarks

    def _project_landmarks(self, verts: torch.Tensor, rot: torch.Tensor, A: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._to_pixels(verts[:, self.model.landmark_vertices] @ rot.transpose(1, 2), A, t)

    @staticmethod
    def _to_pixels(posed: torch.Tensor, A: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) output pixels of posed points: perspective projection, then `_alignment`'s map."""
        xy, _ = perspective(posed)
        return xy @ A.transpose(1, 2) + t.unsqueeze(1)

    def _render_torch(self, coeffs: FaceCoeffs) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference path (and the CUDA path): batched torch ops and the torch/numba rasteriser."""
        size, ss = self.image_size, self.supersample
        big = size * ss
        verts = self.model.geometry(coeffs.shape, coeffs.expr)
        rot = rotation_matrices(coeffs.pose)
        A, t = self._alignment(verts, rot, coeffs.jitter)
        posed = verts @ rot.transpose(1, 2)
        normals = self.model.vertex_normals(posed)
        albedo = self.model.albedo(coeffs.albedo, coeffs.expr)
        exposure = self.model.exposure(coeffs.albedo).view(-1, 1, 1)
        colour = (albedo * sh_irradiance(normals, coeffs.light) * exposure).clamp(0, 1)
        xy, depth = perspective(posed)
        screen = xy @ A.transpose(1, 2) + t.unsqueeze(1)
        landmarks = screen[:, self.model.landmark_vertices]
        screen_big = torch.cat([screen * ss, depth.unsqueeze(-1)], -1).contiguous()
        raster = rasterize(screen_big, self._raster_faces, colour.contiguous(), big, big, cull_backfaces=True)
        premult = (raster.attrs * raster.mask.unsqueeze(-1)).permute(0, 3, 1, 2)
        coverage = raster.mask.unsqueeze(1)
        if ss > 1:
            premult = F.avg_pool2d(premult, ss)
            coverage = F.avg_pool2d(coverage, ss)
        background = render_background(coeffs.background, size)
        image = (premult + (1 - coverage) * background).clamp(0, 1)
        images = (image * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return images, landmarks

    def warmup(self) -> None:
        """Compile kernels and touch caches so the first interactive render is fast."""
        try:
            self.render(self.sample(2, 0))
        except Exception as exc:  # warm-up must never break start-up
            warnings.warn(f"generator warm-up failed: {exc}")


_SHARED: dict[str, FaceGenerator] = {}
_SHARED_LOCK = threading.Lock()


def shared_generator(device: str | torch.device | None = "auto") -> FaceGenerator:
    """One warmed-up FaceGenerator per device and process, for interactive clients.

    The app builds it while the server starts (before it answers requests) and every page then
    reuses it, so no user waits for model construction or kernel loading.
    """
    key = str(resolve_device(device))
    with _SHARED_LOCK:
        gen = _SHARED.get(key)
        if gen is None:
            gen = FaceGenerator(device=key)
            gen.warmup()
            _SHARED[key] = gen
        return gen
