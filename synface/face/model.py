"""The morphable-model interface every face model implements.

The built-in procedural model implements it; loaders of published models (Basel Face Model 2009
plus an expression basis, ICT-FaceKit) can implement the same methods, so the generator, the
datasets and the app never depend on where a model came from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from synface.face.coeffs import FaceLayout
from synface.render.alignment_calibration import AlignmentCalibration

#: basis entries below this magnitude are stored as exact zeros
BASIS_FLUSH = 1e-12


def basis_tensor(values) -> torch.Tensor:
    """A float32 basis (or mask library) with negligible entries flushed to zero.

    Why: smooth falloffs (Gaussians far from their centre) leave denormal floats in a basis, and
    every GEMM over a basis with denormals runs about 4x slower on x86 CPUs; entries below 1e-12
    change no vertex or pixel.
    """
    t = torch.as_tensor(values).to(torch.float32).clone()
    t[t.abs() < BASIS_FLUSH] = 0.0
    return t.contiguous()


@dataclass(frozen=True)
class CoeffInfo:
    """What one coefficient means, for sliders and documentation."""

    name: str
    description: str
    low: float = -3.0  # slider / clamp range (in prior standard deviations for identity coefficients)
    high: float = 3.0


class MorphableModel(ABC):
    """A linear-or-not face model: identity (shape, albedo) and expression coefficients in, mesh out.

    Geometry is in model units (the head is about 1.5 units wide, +y up, +z toward the viewer,
    the head's centre near the origin), so the camera of `synface.render.camera` frames any model.
    """

    #: names and ranges of each coefficient (lengths define the layout)
    shape_info: tuple[CoeffInfo, ...]
    albedo_info: tuple[CoeffInfo, ...]
    expr_info: tuple[CoeffInfo, ...]

    @property
    def version(self) -> str:
        """Names the model's pixels: datasets record it and refuse to resume under another."""
        return type(self).__name__

    @property
    def alignment_calibration(self) -> AlignmentCalibration | None:
        """Where a photo's landmark detector finds the 5 landmark vertices, by pose (measured by
        `synface.fitting.alignment`); the renderer aligns by it. None: on the vertices."""
        return None

    @property
    def layout(self) -> FaceLayout:
        return FaceLayout(shape=len(self.shape_info), albedo=len(self.albedo_info), expr=len(self.expr_info))

    @property
    @abstractmethod
    def faces(self) -> torch.Tensor:
        """(F, 3) int64 triangle indices; counter-clockwise seen from outside the head."""

    @property
    @abstractmethod
    def num_vertices(self) -> int: ...

    @property
    @abstractmethod
    def landmark_vertices(self) -> torch.Tensor:
        """(5,) int64 vertex ids: left eye, right eye, nose tip, left and right mouth corner
        (image left/right, as in the ArcFace template)."""

    @abstractmethod
    def geometry(self, shape: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertex positions for (B, n_shape) and (B, n_expr) coefficients."""

    @abstractmethod
    def albedo(self, albedo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertex reflectance in [0, 1]. Expression is passed because closing an eye or
        opening the mouth changes what colour is visible at a vertex."""

    def albedo_parts(self, albedo: torch.Tensor, expr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reflectance as (base (B,3), scale (B,3,V), coverage (B,V), paint (B,3,V)) with
        albedo = clamp(base * scale * (1 - coverage) + paint, 0, 1); the fused CPU renderer combines
        them per vertex. The default wraps `albedo`; models with a cheaper factorisation override it."""
        full = self.albedo(albedo, expr)
        B, V = full.shape[0], full.shape[1]
        ones = torch.ones(B, 3, device=full.device)
        zeros = torch.zeros(B, V, device=full.device)
        return ones, full.permute(0, 2, 1), zeros, torch.zeros(B, 3, V, device=full.device)

    def correlate_identity(self, shape: torch.Tensor, albedo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map independent standard-normal identity draws onto the model's prior.

        Why: some traits go together in people (dark skin with dark hair and eyes); a model whose
        coefficients have meanings can say so here. Marginals stay unit normal. Default: independent.
        """
        return shape, albedo

    def exposure(self, albedo: torch.Tensor) -> torch.Tensor:
        """(B,) light multiplier a camera's auto-exposure would apply for these identities
        (metering on the face). Default: none."""
        return torch.ones(albedo.shape[0], device=albedo.device)

    def vertex_normals(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) unit normals of posed vertices; models with a known topology may do better."""
        from synface.render.shading import vertex_normals  # noqa: PLC0415

        return vertex_normals(verts, self.faces)

    @abstractmethod
    def to(self, device: str | torch.device) -> "MorphableModel": ...

    def expr_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bounds of each expression coefficient."""
        low = torch.tensor([c.low for c in self.expr_info])
        high = torch.tensor([c.high for c in self.expr_info])
        return low, high


class KeepsBaseMesh:
    """For models that keep another model's mesh (`self.base`) and change only identity: the
    topology, landmarks and normals come from the base, in one place."""

    base: MorphableModel
    #: the calibration measured on this model's own renders (its faces differ from the base's,
    #: and so does where a detector finds their landmarks); None: the base's
    own_alignment_calibration: AlignmentCalibration | None = None

    @property
    def faces(self) -> torch.Tensor:
        return self.base.faces

    @property
    def alignment_calibration(self) -> AlignmentCalibration | None:
        own = self.own_alignment_calibration
        return own if own is not None else self.base.alignment_calibration

    @property
    def num_vertices(self) -> int:
        return self.base.num_vertices

    @property
    def landmark_vertices(self) -> torch.Tensor:
        return self.base.landmark_vertices

    @property
    def grid_shape(self) -> tuple[int, int] | None:
        return getattr(self.base, "grid_shape", None)

    @property
    def uv_layout(self):  # noqa: ANN201 - the base model's UVLayout
        return self.base.uv_layout  # type: ignore[attr-defined]  # the base is the built-in head, which has it

    @property
    def face_region(self) -> torch.Tensor:
        return self.base.face_region  # type: ignore[attr-defined]  # the base is the built-in head, which has it

    def vertex_normals(self, verts: torch.Tensor) -> torch.Tensor:
        return self.base.vertex_normals(verts)
