"""The render pipeline: coefficients -> posed mesh -> shaded, textured, rasterised, aligned
112x112 images.

Reflectance is a texture map per image, sampled per pixel: the model's per-vertex reflectance
field (the built-in head's whole procedural albedo, a learned model's expression colour) baked
onto the model's texture square (`uv_layout`), plus, for a learned model, its photographed bank
composed on that square (`texture_bank`, `bank_entries`). On the CPU a fused numba kernel does
shading to compositing per image (`fast_cpu`); the torch path (the reference, and the CUDA path)
does the same with batched ops. The model is any object with the `MorphableModel` methods
(geometry, albedo, albedo_parts, exposure, vertex_normals, faces, landmark_vertices, uv_layout,
and optionally alignment_calibration); the coefficients any object with FaceCoeffs' fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synface.render.alignment_calibration import AlignmentCalibration, template_eye_spacing, template_pixels
from synface.render.background import render_background
from synface.render.camera import (
    JITTER_DIM, fit_similarity, jitter_transform, perspective,
    rotation_matrices,
)
from synface.render.fast_cpu import FusedInputs, TextureInputs, render_cpu
from synface.render.rasterize import rasterize
from synface.render.shading import AMBIENT_OFFSET, sh_irradiance
from synface.render.texture_torch import bake_field, compose_bank, footprint_lod, mip_chain, sample, texture_size

#: the CPU renderer's revision, part of every generator's version: a set drawn by an earlier
#: revision (other pixels for the same coefficients) is not resumed or extended by this one.
#: 2: a pixel is shaded once per triangle it shows, at its samples' mean barycentrics
RENDERER_REVISION = "render-2"

#: the fused kernel's bank arrays for a model without one (typed, empty)
NO_BANK = {"low": np.zeros((1, 1, 3), np.float32), "wide": np.zeros((1, 1), np.float32),
           "tones": np.zeros((1, 3), np.float32), "up_idx": np.zeros((1, 4), np.int32),
           "up_w": np.zeros((1, 4), np.float32), "narrow": np.zeros((1, 1), np.float32),
           "detail": np.zeros((1, 1, 3), np.float32)}


@dataclass
class RenderResult:
    images: torch.Tensor  # (B,112,112,3) uint8 RGB
    #: (B,5,2) float pixel positions of the 5 landmark vertices in the output image (a photo's
    #: detector finds the landmarks `alignment_calibration`'s offsets away from them)
    landmarks: torch.Tensor


@dataclass
class MeshResult:
    vertices: torch.Tensor  # (B,V,3) posed model-space vertices (y up)
    faces: torch.Tensor  # (F,3)
    colours: torch.Tensor  # (B,V,3) shaded vertex colours in [0,1]


class RenderPipeline:
    """Renders one model's faces at one size; `fast_cpu` picks the fused kernel on the CPU."""

    def __init__(self, model: Any, device: torch.device, supersample: int = 2, image_size: int = 112) -> None:
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.model = model
        self.device = device
        self.supersample = int(supersample)
        self.image_size = int(image_size)
        #: use the fused numba kernel on the CPU (the torch path is the reference and the GPU path)
        self.fast_cpu = True
        # The rasteriser draws triangles whose screen winding is positive; the model's faces are
        # counter-clockwise in a y-up frame, which the y-down screen flips.
        self._raster_faces = model.faces[:, [0, 2, 1]].contiguous()
        #: the side of each image's texture map
        self.texture_size = texture_size(self.image_size)
        #: where a photo's detector finds the model's 5 landmarks (see `_landmark_alignment`);
        #: settable, so a calibration can be measured by rendering with a candidate
        self.alignment_calibration: AlignmentCalibration = (getattr(model, "alignment_calibration", None)
                                                            or AlignmentCalibration.none())

    def posed_mesh(self, coeffs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posed vertices (model space, y up), unit normals, and albedo."""
        verts = self.model.geometry(coeffs.shape, coeffs.expr)
        rot = rotation_matrices(coeffs.pose)
        verts = verts @ rot.transpose(1, 2)
        normals = self.model.vertex_normals(verts)
        albedo = self.model.albedo(coeffs.albedo, coeffs.expr)
        return verts, normals, albedo

    def mesh(self, coeffs: Any) -> MeshResult:
        """Shaded mesh for 3-D views."""
        with torch.no_grad():
            verts, normals, albedo = self.posed_mesh(coeffs)
            exposure = self.model.exposure(coeffs.albedo).view(-1, 1, 1)
            colours = (albedo * sh_irradiance(normals, coeffs.light) * exposure).clamp(0, 1)
        return MeshResult(verts, self.model.faces, colours)

    def render_float(self, coeffs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,112,112) float images in [0,1] and (B,5,2) landmarks."""
        result = self.render(coeffs)
        return result.images.permute(0, 3, 1, 2).float() / 255.0, result.landmarks

    def render(self, coeffs: Any, backdrop: torch.Tensor | None = None, alpha: torch.Tensor | None = None) -> RenderResult:
        """(B,112,112,3) uint8 images aligned to the ArcFace template, plus their 5 landmarks.
        `backdrop` (B, size, size, 3) float images in [0, 1] replace the procedural background
        (a photo's context, warped into the crop) and `alpha` (V,) says how far each vertex's
        surface is drawn over it (default: all of it)."""
        with torch.no_grad():
            if self.device.type == "cpu" and self.fast_cpu:
                images, landmarks = self._render_fused_cpu(coeffs, backdrop, alpha)
            else:
                images, landmarks = self._render_torch(coeffs, backdrop, alpha)
        return RenderResult(images=images, landmarks=landmarks)

    def vertex_pixels(self, coeffs: Any, vertices: torch.Tensor | None = None,
                      alignment: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """(B, N, 2) float64 output pixels of the mesh's `vertices` (indices; default all) as
        rendering these coefficients places them (for masks drawn over a render); `alignment`:
        these coefficients' `alignment(coeffs)` when the caller has it already."""
        with torch.no_grad():
            verts = self.model.geometry(coeffs.shape, coeffs.expr)
            if vertices is not None:
                verts = verts[:, vertices]
            posed = verts.double() @ rotation_matrices(coeffs.pose.double()).transpose(1, 2)
            A, t = alignment if alignment is not None else self.alignment(coeffs)
            return self._to_pixels(posed, A, t)

    def alignment(self, coeffs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(A (B, 2, 2), t (B, 2)) float64: the map from perspective-projected points to output
        pixels that rendering these coefficients uses (its 5-point framing and jitter)."""
        verts = self.model.geometry(coeffs.shape, coeffs.expr)
        rot64 = rotation_matrices(coeffs.pose.double())
        landmarks64 = verts[:, self.model.landmark_vertices].double()
        return self._landmark_alignment(landmarks64, rot64, coeffs.jitter.double(), coeffs.pose.double())

    def _alignment(self, verts: torch.Tensor, rot: torch.Tensor, jitter: torch.Tensor,
                   pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, t) mapping perspective-projected points to output pixels: the 5-point similarity
        onto the ArcFace template followed by the jitter."""
        return self._landmark_alignment(verts[:, self.model.landmark_vertices], rot, jitter, pose)

    def _landmark_alignment(self, landmarks: torch.Tensor, rot: torch.Tensor, jitter: torch.Tensor,
                            pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`_alignment` from the unposed landmark vertices alone (B, 5, 3) and the pose (B, 3).

        The similarity takes the 5 points where a photo's detector would find the landmarks (the
        projected vertices plus the calibration's offsets) onto the template, as real crops are
        aligned (`template_pixels`: the template in the rasteriser's pixel-centre coordinates)."""
        size = self.image_size
        lm_src, _ = perspective(landmarks @ rot.transpose(1, 2))
        template = template_pixels(size, landmarks.device, landmarks.dtype).unsqueeze(0).expand(landmarks.shape[0], -1, -1)
        A, t = fit_similarity(lm_src, template)
        calibration = self.alignment_calibration
        if not calibration.is_none():
            lm_src = lm_src + self._source_offsets(calibration.offsets(pose), A)
            A, t = fit_similarity(lm_src, template)
        J, tj = jitter_transform(jitter, size)
        return J @ A, (t.unsqueeze(1) @ J.transpose(1, 2)).squeeze(1) + tj

    def _source_offsets(self, offsets_iod: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """(B, 5, 2) calibration offsets (inter-ocular distances, aligned frame) carried into the
        projection plane through the inverse of the uncalibrated similarity A = [[a, -b], [b, a]]
        (elementwise: no batched product whose rounding could depend on the batch)."""
        iod = template_eye_spacing(self.image_size)
        dx, dy = offsets_iod[..., 0] * iod, offsets_iod[..., 1] * iod
        a, b = A[:, 0, 0].unsqueeze(1), A[:, 1, 0].unsqueeze(1)
        norm = a * a + b * b
        return torch.stack([(a * dx + b * dy) / norm, (a * dy - b * dx) / norm], -1)

    def frontal_pixels(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, V, 2) output pixels of unposed model vertices seen frontally, without jitter: where
        each vertex lands in an aligned crop."""
        B = verts.shape[0]
        rot = torch.eye(3, device=verts.device).expand(B, 3, 3)
        A, t = self._alignment(verts, rot, torch.zeros(B, JITTER_DIM, device=verts.device),
                               torch.zeros(B, 3, device=verts.device))
        return self._to_pixels(verts, A, t)

    def _render_fused_cpu(self, coeffs: Any, backdrop: torch.Tensor | None = None,
                          alpha: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # Pose and alignment are small per-image sums (3x3 and 5-point fits) whose float32 result
        # would depend on the batch's kernel choice: they run in float64 and are rounded once, so
        # every image gets the same float32 inputs alone or in any batch.
        verts = self.model.geometry(coeffs.shape, coeffs.expr)
        rot64 = rotation_matrices(coeffs.pose.double())
        landmarks64 = verts[:, self.model.landmark_vertices].double()  # only these enter the float64 sums
        A64, t64 = self._landmark_alignment(landmarks64, rot64, coeffs.jitter.double(), coeffs.pose.double())
        rot, A, t = rot64.float(), A64.float(), t64.float()
        parts = self.model.albedo_parts(coeffs.albedo, coeffs.expr)
        gamma = coeffs.light.view(-1, 3, 9).clone()
        gamma[:, :, 0] += AMBIENT_OFFSET
        gamma = gamma * self.model.exposure(coeffs.albedo).view(-1, 1, 1)
        images = render_cpu(FusedInputs(verts, self.model.faces, self._raster_faces, rot, parts, gamma, A, t,
                                        coeffs.background, self._texture_inputs(coeffs.albedo),
                                        getattr(self.model, "grid_shape", None), alpha, backdrop),
                            self.supersample, self.image_size)
        landmarks = self._to_pixels(landmarks64 @ rot64.transpose(1, 2), A64, t64).float()
        return images, landmarks

    def _texture_inputs(self, albedo: torch.Tensor) -> TextureInputs:
        """The fused kernel's texture square and, for a model with a bank, its bank and entries."""
        layout = self.model.uv_layout
        size = self.texture_size
        ids, weights = layout.texel_map(size)
        bank = self.model.texture_bank(size) if hasattr(self.model, "texture_bank") else None
        B = albedo.shape[0]
        entries: tuple[np.ndarray, ...]
        if bank is None:
            bank = NO_BANK
            entries = (np.zeros((B, 1, 0), np.int64), np.zeros((B, 1, 0), np.float32), np.zeros((B, 1, 0), np.float32))
        else:
            bank = {k: v.cpu().numpy() for k, v in bank.items()}
            entries = tuple(np.ascontiguousarray(e.cpu().numpy()) for e in self.model.bank_entries(albedo))
        return TextureInputs(size=size, vu=layout.uv[:, 0].copy(), vv=layout.uv[:, 1].copy(), pole=layout.pole,
                             face_area=layout.face_area, texel_ids=ids, texel_w=weights, low=bank["low"],
                             wide=bank["wide"], tones=bank["tones"], up_idx=bank["up_idx"], up_w=bank["up_w"],
                             narrow=bank["narrow"], detail=bank["detail"], idx=entries[0], low_w=entries[1],
                             high_w=entries[2])

    def textures(self, albedo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) the reflectance maps of these identities and expressions (unclamped), in torch."""
        layout = self.model.uv_layout
        size = self.texture_size
        ids, weights = layout.texel_map(size)
        device = albedo.device
        skin, scale, coverage, paint = self.model.albedo_parts(albedo, expr)
        field = (skin.unsqueeze(2) * scale * (1 - coverage.clamp(0, 1)).unsqueeze(1) + paint).permute(0, 2, 1)
        texture = bake_field(field, torch.from_numpy(ids).long().to(device), torch.from_numpy(weights).to(device), size)
        bank = self.model.texture_bank(size) if hasattr(self.model, "texture_bank") else None
        if bank is not None:
            idx, low_w, high_w = self.model.bank_entries(albedo)
            bank = {k: v.to(device) for k, v in bank.items()}
            bank["up_idx"] = bank["up_idx"].long()
            texture = texture + compose_bank(bank, idx.to(device), low_w.to(device), high_w.to(device), size)
        return texture

    @staticmethod
    def _to_pixels(posed: torch.Tensor, A: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) output pixels of posed points: perspective projection, then `_alignment`'s map."""
        xy, _ = perspective(posed)
        return xy @ A.transpose(1, 2) + t.unsqueeze(1)

    def _render_torch(self, coeffs: Any, backdrop: torch.Tensor | None = None,
                      alpha: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference path (and the CUDA path): batched torch ops, the torch/numba rasteriser and
        trilinear texture lookups per sample."""
        import math  # noqa: PLC0415

        size, ss = self.image_size, self.supersample
        big = size * ss
        verts = self.model.geometry(coeffs.shape, coeffs.expr)
        rot = rotation_matrices(coeffs.pose)
        A, t = self._alignment(verts, rot, coeffs.jitter, coeffs.pose)
        posed = verts @ rot.transpose(1, 2)
        normals = self.model.vertex_normals(posed)
        exposure = self.model.exposure(coeffs.albedo).view(-1, 1, 1)
        irradiance = sh_irradiance(normals, coeffs.light) * exposure
        levels = mip_chain(self.textures(coeffs.albedo, coeffs.expr))
        layout = self.model.uv_layout
        uv = torch.from_numpy(layout.uv).to(posed.device)
        turn = 2 * math.pi * uv[:, 0]
        pole = (uv[:, 0] < 0).float()
        coords = torch.stack([torch.cos(turn) * (1 - pole), torch.sin(turn) * (1 - pole), uv[:, 1]], 1)
        weight = (torch.ones(posed.shape[1], device=posed.device) if alpha is None else alpha.to(posed.device).float())
        attrs = torch.cat([coords.unsqueeze(0).expand(posed.shape[0], -1, -1), irradiance,
                           weight.view(1, -1, 1).expand(posed.shape[0], -1, 1)], -1).contiguous()
        xy, depth = perspective(posed)
        screen = xy @ A.transpose(1, 2) + t.unsqueeze(1)
        landmarks = screen[:, self.model.landmark_vertices]
        screen_big = torch.cat([screen * ss, depth.unsqueeze(-1)], -1).contiguous()
        raster = rasterize(screen_big, self._raster_faces, attrs, big, big, cull_backfaces=True)
        u = torch.remainder(torch.atan2(raster.attrs[..., 1], raster.attrs[..., 0]) / (2 * math.pi), 1.0)
        v = raster.attrs[..., 2]
        lod = footprint_lod(u, v, raster.mask, self.texture_size)
        albedo = sample(levels, u, v, lod)
        colour = (albedo * raster.attrs[..., 3:6].permute(0, 3, 1, 2)).clamp(0, 1)
        drawn = (raster.mask * raster.attrs[..., 6]).unsqueeze(1)
        premult = colour * drawn
        coverage = drawn
        if ss > 1:
            premult = F.avg_pool2d(premult, ss)
            coverage = F.avg_pool2d(coverage, ss)
        background = (render_background(coeffs.background, size) if backdrop is None
                      else backdrop.to(premult.device).float().permute(0, 3, 1, 2))
        image = (premult + (1 - coverage) * background).clamp(0, 1)
        images = (image * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return images, landmarks
