"""FaceGenerator: sample coefficients, blend identities (IM), render aligned 112x112 faces.

The generator owns the model and its prior; `synface.render.pipeline` draws the pixels.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from synface.base.device import resolve_device
from synface.face import prior as face_prior
from synface.face.builtin import BuiltinFaceModel
from synface.face.coeffs import FaceCoeffs
from synface.face.controls import FaceControls
from synface.face.model import MorphableModel
from synface.render.pipeline import RENDERER_REVISION, MeshResult, RenderPipeline, RenderResult

IMAGE_SIZE = 112


class FaceGenerator:
    """Faces of people who do not exist, with explicit identity and attribute coefficients."""

    def __init__(self, device: str | torch.device | None = "auto", model: MorphableModel | None = None,
                 supersample: int = 2, image_size: int = IMAGE_SIZE) -> None:
        self.device = resolve_device(device)
        self.model = (model or BuiltinFaceModel()).to(self.device)
        self.layout = self.model.layout
        self.pipeline = RenderPipeline(self.model, self.device, supersample, image_size)
        self._expr_low, self._expr_high = (t.to(torch.float32) for t in self.model.expr_range())

    @property
    def version(self) -> str:
        """The model's version and the renderer's revision: synthetic sets refuse to resume under
        another one."""
        return f"{self.model.version}+{RENDERER_REVISION}"

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

    def draw_distinct_identities(self, seeds: Sequence[int], chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape (N, S), region people (N, R) long) on the CPU of one identity per seed, in
        order, each drawn from its own seed as `draw_identities` draws it, except that a learned
        model's mosaic gives every region the bank person earlier identities used least
        (`LearnedFaceModel.distinct_people`; `people_weights` turns people into coefficients)."""
        bank: Any = self.model  # a learned model (a bank of source people), checked here
        people_of = getattr(bank, "distinct_people", None)
        if people_of is None:
            raise ValueError("distinct source people need a learned face model (the built-in head has no source people)")
        usage = torch.zeros(bank.regions, bank.people, dtype=torch.int64)
        shapes, people = [torch.zeros(0, self.layout.shape)], [torch.zeros(0, bank.regions, dtype=torch.int64)]
        for start in range(0, len(seeds), chunk):
            draws = [face_prior.sample_identity(self.layout, 1, torch.Generator().manual_seed(int(s)))
                     for s in seeds[start:start + chunk]]
            shape, albedo = torch.cat([d[0] for d in draws]), torch.cat([d[1] for d in draws])
            shapes.append(self.model.correlate_identity(shape, albedo)[0])
            people.append(people_of(albedo, usage))
        return torch.cat(shapes), torch.cat(people)

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

    def compose(self, identity_a: FaceCoeffs, identity_b: FaceCoeffs, phi: float,
                controls: FaceControls) -> tuple[FaceCoeffs, list[str]]:
        """One face: identity phi * A + (1 - phi) * B (`mix`), posed, expressed and lit as `controls`
        say, without jitter, on A's background; clamped to the prior's range, with a note per
        clamped field (`clamp`)."""
        mixed = self.mix(identity_a, identity_b, phi)
        return self.clamp(mixed.replace(**controls.attributes(mixed.jitter.shape[1], self.layout.expr)))

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
        return self.pipeline.posed_mesh(self.validate(coeffs))

    def mesh(self, coeffs: FaceCoeffs) -> MeshResult:
        """Shaded mesh for 3-D views."""
        return self.pipeline.mesh(self.validate(coeffs))

    def render_float(self, coeffs: FaceCoeffs) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,112,112) float images in [0,1] and (B,5,2) landmarks."""
        return self.pipeline.render_float(self.validate(coeffs))

    def render(self, coeffs: FaceCoeffs) -> RenderResult:
        """(B,112,112,3) uint8 images aligned to the ArcFace template, plus their 5 landmarks."""
        return self.pipeline.render(self.validate(coeffs))

    def frontal_pixels(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, V, 2) output pixels of unposed model vertices seen frontally, without jitter."""
        return self.pipeline.frontal_pixels(verts)

    @property
    def fast_cpu(self) -> bool:
        """Whether CPU renders use the fused numba kernel (False: the torch reference path)."""
        return self.pipeline.fast_cpu

    @fast_cpu.setter
    def fast_cpu(self, value: bool) -> None:
        self.pipeline.fast_cpu = bool(value)

    @property
    def supersample(self) -> int:
        return self.pipeline.supersample

    @property
    def image_size(self) -> int:
        return self.pipeline.image_size

    def warmup(self) -> None:
        """Compile kernels and touch caches so the first interactive render is fast."""
        try:
            self.render(self.sample(2, 0))
        except Exception as exc:  # noqa: BLE001 - warm-up must never break start-up
            warnings.warn(f"generator warm-up failed: {exc}", stacklevel=2)


_SHARED: dict[tuple[str, str, str], FaceGenerator] = {}
_SHARED_LOCK = threading.Lock()
#: held around every render of a shared generator: one render at a time, since a generator is not
#: written to be re-entrant (its render path shares one worker pool between calls) and an interactive
#: client's sessions are threads of one process
SHARED_RENDER_LOCK = threading.Lock()


def shared_generator(device: str | torch.device | None = "auto", model: str | None = None,
                     workspace: str | Path | None = None) -> FaceGenerator:
    """One warmed-up FaceGenerator per device, face model and model version, for interactive clients.

    `model` names the face model: None or "builtin" for the built-in head, else a learned model of
    `workspace` (a FaceModelError when it does not load). A refitted model (a new version) gets a
    new generator. The app builds the built-in one while the server starts (before it answers
    requests) and every page then reuses it, so no user waits for model construction or kernel
    loading. Threads that share generators render under `SHARED_RENDER_LOCK`.
    """
    from synface.face.catalog import BUILTIN, load_model  # noqa: PLC0415

    key_device = str(resolve_device(device))
    learned = load_model(model, workspace)
    key = (key_device, model or BUILTIN, learned.version if learned is not None else "")
    with _SHARED_LOCK:
        gen = _SHARED.get(key)
        if gen is None:
            gen = FaceGenerator(device=key_device, model=learned)  # a learned model moves as a copy
            gen.warmup()
            stale = [k for k in _SHARED if k[:2] == key[:2]]  # older versions of a refitted model
            for k in stale:
                del _SHARED[k]
            _SHARED[key] = gen
        return gen
