"""A face model learned from photographs: the built-in head's topology, a learned identity space.

Why: the procedural reflectance reads as a mannequin and real-photo recognisers barely tell its
people apart. Here identity comes from people the user photographed (fitted by
`synface.fitting`):

- shape: a Gaussian over the built-in shape coefficients fitted to the photos, whitened, so the
  model's shape coefficients are standard normal in the learned space;
- reflectance: a bank of per-vertex colours, one per source person, sampled from their photos
  with their fitted geometry and their estimated light divided out. A new person is a mosaic:
  each facial region (eyes and brows, nose, mouth and chin, the rest of the head) comes from a
  different bank person, with soft seams, and every region is moved to the skin tone of the
  person chosen for the rest of the head. A blend of whole faces shows doubled brows and lips
  (no two people's features coincide exactly), a PCA sample is an average; one real person per
  region keeps photographic structure, and no synthetic person copies any one source.
  Coefficients: one block of bank weights per region, so identity mixup blends linearly;
- expression, light and pose are the built-in model's; expression-dependent colour (an open
  mouth's interior, a closed eyelid) is the built-in model's colour change added to the blend.

The file is a plain `.npz` read with `allow_pickle=False` plus a JSON card, so loading a model
can never run code; what the files must hold is declared in `synface.face.model_files`, and a
model is checked against it before anything is built from it.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from synface.base.exact import basis_product
from synface.face.builtin import GENERATOR_MODEL_VERSION, BuiltinFaceModel
from synface.face.model import CoeffInfo, KeepsBaseMesh, MorphableModel, basis_tensor
from synface.face.model_files import (
    CARD_FILE, LEARNED_FORMAT, MODEL_FILE, FaceModelError, ModelFiles, model_version, read_model_folder,
)
from synface.face.mosaic_kernel import mosaic

__all__ = ["LearnedFaceModel", "FaceModelError", "IDENTITY_MODES", "MODEL_FILE", "CARD_FILE", "check_model_folder",
           "model_arrays", "model_version", "save_model_arrays"]

#: how a new person's reflectance is drawn (see LearnedFaceModel.correlate_identity)
IDENTITY_MODES = ("mosaic", "one_person", "whole_face_blend")
#: the share of the bank, nearest in skin tone to the head's person, the other regions draw from
TONE_NEIGHBOURS = 0.25
#: people a "whole_face_blend" identity blends
BLEND_PEOPLE = 3


def head_sizes(base: BuiltinFaceModel) -> dict[str, int]:
    """The built-in head's sizes a learned model's arrays must match (synface.face.model_files)."""
    return {"S": base.layout.shape, "V": base.num_vertices}


@lru_cache(maxsize=1)
def _builtin_sizes() -> dict[str, int]:
    return head_sizes(BuiltinFaceModel())


def check_model_folder(folder: str | Path, base: BuiltinFaceModel | None = None) -> ModelFiles:
    """A model folder checked against its declared format (`model_files.read_model_folder`) and this
    version's built-in head; one FaceModelError naming every problem otherwise."""
    sizes = head_sizes(base) if base is not None else dict(_builtin_sizes())
    return read_model_folder(folder, sizes, GENERATOR_MODEL_VERSION)


class LearnedFaceModel(KeepsBaseMesh, MorphableModel):
    """The built-in mesh, expressions and hair/ears/neck topology with a learned identity space."""

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu", base: BuiltinFaceModel | None = None) -> None:
        folder = Path(folder)
        self.base = base or BuiltinFaceModel()
        files = check_model_folder(folder, self.base)  # every array's dtype, shape, values; every card key
        arrays = files.arrays
        self.card = files.card
        self.sources = files.sources
        self.name = folder.name  # a model is named by its folder (a copied folder is its own model)
        self.folder = folder
        n_builtin = self.base.layout.shape
        components, bank = arrays["shape_components"], arrays["bank"]
        regions, tones, eligible = arrays["regions"], arrays["tones"], arrays["eligible"]
        mean = arrays["shape_mean"]
        self._version = model_version(self.name, arrays)
        self.landmarks68 = torch.from_numpy(arrays["landmarks68"].astype(np.int64))
        # geometry: builtin_mean + (shape_mean + z @ components) @ shape_basis + expr @ expr_basis
        base_basis = self.base._basis  # noqa: SLF001  (same package: the built-in head's own basis)
        shape_basis, expr_basis = base_basis[:n_builtin].double(), base_basis[n_builtin:]
        comp = torch.from_numpy(components.astype(np.float64))
        self._mean = (self.base.mean_vertices.double().view(-1)
                      + torch.from_numpy(mean.astype(np.float64)) @ shape_basis).float()
        self._basis = basis_tensor(torch.cat([(comp @ shape_basis).float(), expr_basis]))
        self._bank = torch.from_numpy(bank.astype(np.float32)).reshape(len(bank), -1).contiguous()
        self._regions = torch.from_numpy(regions.astype(np.float32))  # (R, V), summing to 1 per vertex
        self._tones = torch.from_numpy(tones.astype(np.float32))  # (P, 3) each person's skin tone
        self._eligible = torch.from_numpy(eligible.astype(bool))  # (R, P) who may serve each region
        self.region_names = tuple(self.card["regions"])
        self._expr_colour = self._expression_basis()
        self.shape_info = tuple(CoeffInfo(f"learned_shape_{k:02d}", f"learned head-shape direction {k} (prior sd)")
                                for k in range(len(components)))
        self.albedo_info = tuple(CoeffInfo(f"{region}_source_{k:04d}", f"weight of source person {k} in the {region}", 0.0, 1.0)
                                 for region in self.region_names for k in range(len(bank)))
        self.expr_info = self.base.expr_info
        self.identity_mode = "mosaic"
        self.device = torch.device("cpu")
        self.to(device)

    def _expression_basis(self) -> torch.Tensor:
        """(E, V*3) the built-in head's colour change per blendshape at full strength, per unit."""
        E = self.base.layout.expr
        high = torch.tensor([c.high if c.high != 0 else c.low for c in self.base.expr_info], dtype=torch.float32)
        zeros = torch.zeros(E + 1, self.base.layout.albedo)
        expr = torch.cat([torch.zeros(1, E), torch.diag(high)])
        colours = self.base.albedo(zeros, expr).reshape(E + 1, -1).double()
        return basis_tensor(((colours[1:] - colours[0]) / high.double().view(-1, 1)).float())

    @property
    def version(self) -> str:
        return self._version if self.identity_mode == "mosaic" else f"{self._version}-{self.identity_mode}"

    @property
    def people(self) -> int:
        return int(self._bank.shape[0])

    @property
    def regions(self) -> int:
        return int(self._regions.shape[0])

    def region_people(self) -> list[list[int]]:
        """Per region, the bank people whose photos saw that region well enough to serve it."""
        eligible = self._eligible.cpu()
        return [eligible[r].nonzero().flatten().tolist() for r in range(self.regions)]

    def geometry(self, shape: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        coeffs = torch.cat([shape, expr], dim=1)
        return basis_product(coeffs, self._basis, self._mean).view(coeffs.shape[0], -1, 3)

    def _mosaic(self, albedo: torch.Tensor) -> torch.Tensor:
        """(B, 3, V) reflectance: sum over regions of mask * (region blend - its tone), plus the
        tone of the first region's (the rest of the head's) blend. Linear in the weights."""
        B = len(albedo)
        blocks = albedo.reshape(B, self.regions, self.people)
        if self._bank.device.type == "cpu":
            return mosaic(blocks, self._bank, self._tones, self._regions)
        blend = torch.einsum("brp,pn->brn", blocks, self._bank).view(B, self.regions, -1, 3)
        tone = torch.einsum("brp,pc->brc", blocks, self._tones)
        out = tone[:, 0].unsqueeze(1) + (self._regions.view(1, self.regions, -1, 1) * (blend - tone.unsqueeze(2))).sum(1)
        return out.permute(0, 2, 1)

    def _expression_colour(self, expr: torch.Tensor) -> torch.Tensor:
        """(B, V*3) colour change of an expression: the built-in head's change per blendshape at
        full strength, scaled linearly (an open mouth's interior, a closed eyelid)."""
        return basis_product(expr, self._expr_colour)

    def albedo(self, albedo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        B = len(albedo)
        colour = self._mosaic(albedo).permute(0, 2, 1) + self._expression_colour(expr).view(B, -1, 3)
        return colour.clamp(0, 1)

    def albedo_parts(self, albedo: torch.Tensor, expr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        B = len(albedo)
        scale = self._mosaic(albedo)
        paint = self._expression_colour(expr).view(B, -1, 3).permute(0, 2, 1)
        return (torch.ones(B, 3, device=scale.device), scale.contiguous(),
                torch.zeros(B, self.num_vertices, device=scale.device), paint.contiguous())

    def correlate_identity(self, shape: torch.Tensor, albedo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Independent normal draws -> a new person: learned shape as drawn; reflectance by
        `identity_mode`. "mosaic" (the default): in each region's block the largest draw among
        the people who may serve that region (and, beyond the head, whose skin tone is among the
        TONE_NEIGHBOURS nearest to the head person's) chooses its bank person, with weight 1. The other
        modes exist to measure what the mosaic was chosen over: "one_person" (one source
        person's whole face) and "whole_face_blend" (BLEND_PEOPLE whole faces, flat-Dirichlet
        weights)."""
        B, P, R = len(albedo), self.people, self.regions
        blocks = albedo.reshape(B, R, P)
        weights = torch.zeros_like(blocks)
        if self.identity_mode == "mosaic":
            eligible = self._eligible.to(albedo.device)
            head = blocks[:, 0].masked_fill(~eligible[0], float("-inf")).argmax(1)  # (B,)
            # the other regions come from people of a similar skin tone: a dark-skinned person's
            # eyes moved onto a light face (or the reverse) keep a wrong hue around them
            tone_gap = (self._tones.unsqueeze(0) - self._tones[head].unsqueeze(1)).abs().sum(2)  # (B, P)
            near = tone_gap.argsort(dim=1, stable=True).argsort(dim=1, stable=True) < max(2, int(TONE_NEIGHBOURS * P))
            allowed = blocks.masked_fill(~(eligible.unsqueeze(0) & near.unsqueeze(1)), float("-inf"))
            allowed[:, 0] = blocks[:, 0].masked_fill(~eligible[0], float("-inf"))
            weights.scatter_(2, allowed.argmax(2, keepdim=True), 1.0)
        elif self.identity_mode == "one_person":
            weights.scatter_(2, blocks[:, :1].argmax(2, keepdim=True).expand(B, R, 1), 1.0)
        else:
            k = min(BLEND_PEOPLE, P)
            chosen = blocks[:, 0].topk(k, dim=1).indices  # (B, k)
            uniform = (0.5 * (1 + torch.erf(blocks[:, 1 % R].gather(1, chosen).double() / 2**0.5))).clamp(1e-9, 1 - 1e-9)
            w = -torch.log(uniform)
            w = (w / w.sum(1, keepdim=True)).float()
            weights.scatter_(2, chosen.unsqueeze(1).expand(B, R, k), w.unsqueeze(1).expand(B, R, k))
        return shape, weights.view(B, -1)

    def to(self, device: str | torch.device) -> "LearnedFaceModel":
        """This model on `device`: itself when it is there already, else a copy, so one cached
        instance can serve generators on several devices (the catalog shares loads)."""
        device = torch.device(device)
        if device == self.device:
            return self
        other = copy.copy(self)
        other._move(device)
        return other

    def _move(self, device: torch.device) -> None:
        self.base = copy.copy(self.base).to(device)
        self._mean = self._mean.to(device)
        self._basis = self._basis.to(device)
        self._bank = self._bank.to(device)
        self._regions = self._regions.to(device)
        self._tones = self._tones.to(device)
        self._eligible = self._eligible.to(device)
        self._expr_colour = self._expr_colour.to(device)
        self.landmarks68 = self.landmarks68.to(device)
        self.device = device


def model_arrays(shape_mean: np.ndarray, shape_components: np.ndarray, bank: np.ndarray, landmarks68: np.ndarray,
                 regions: np.ndarray, tones: np.ndarray, eligible: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of a model file, in their stored types."""
    return {"format": np.array([LEARNED_FORMAT]), "shape_mean": shape_mean.astype(np.float32),
            "shape_components": shape_components.astype(np.float32), "bank": bank.astype(np.float16),
            "landmarks68": landmarks68.astype(np.int64), "regions": regions.astype(np.float32),
            "tones": tones.astype(np.float32), "eligible": eligible.astype(bool)}


def save_model_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a model file (to a temporary path the caller renames into place)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
