"""A face model learned from photographs: the built-in head's topology, a learned identity space.

Why: the procedural reflectance reads as a mannequin and real-photo recognisers barely tell its
people apart. Here identity comes from people the user photographed (fitted by
`synface.fitting`):

- shape: a Gaussian over the built-in shape coefficients fitted to the photos, whitened, so the
  model's shape coefficients are standard normal in the learned space;
- reflectance: a bank of texture maps on the built-in head's texture square, one per source
  person, unwrapped from their photos at the photos' resolution with their fitted geometry and
  their estimated light divided out. A new person is a mosaic: each facial region (eyes and
  brows, nose, mouth and chin, the rest of the head) comes from a different bank person. Each
  texture is split into a low band (colour, tone, no feature shapes) and a detail band; the low
  band blends over wide region masks, every region moved to the skin tone of the person chosen
  for the rest of the head, and the detail band comes from one person per region over sharp
  masks, so no two people's features overlap (a blend of whole faces shows doubled brows and
  lips). Coefficients: one block of bank weights per region. Identity mixup blends the low band
  linearly and hands each region's detail from one person to the other at its own point of phi
  (`DETAIL_SWITCH`), so every intermediate is one face with one set of features;
- expression, light and pose are the built-in model's; expression-dependent colour (an open
  mouth's interior, a closed eyelid) is the built-in model's colour change, baked into each
  image's texture.

The files are a plain `.npz` and a `.npy` of textures (uint8, memory-mapped), both read with
`allow_pickle=False`, plus a JSON card, so loading a model can never run code; what the files must
hold is declared in `synface.face.model_files`, and a model is checked against it before anything
is built from it.
"""

from __future__ import annotations

import copy
import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from synface.base.exact import basis_product
from synface.face.builtin import GENERATOR_MODEL_VERSION, BuiltinFaceModel
from synface.face.learned_bank import bank_for_size, detail_weights, textures_digest
from synface.face.model import CoeffInfo, KeepsBaseMesh, MorphableModel, basis_tensor
from synface.face.model_files import (
    CARD_FILE, LEARNED_FORMAT, MODEL_FILE, TEXTURE_FILE, FaceModelError, ModelFiles, model_version,
    read_model_folder,
)
from synface.render.alignment_calibration import AlignmentCalibration, CalibrationError

__all__ = ["LearnedFaceModel", "FaceModelError", "IDENTITY_MODES", "MODEL_FILE", "CARD_FILE", "TEXTURE_FILE",
           "check_model_folder", "model_arrays", "model_version", "save_model_arrays", "save_textures"]

#: how a new person's reflectance is drawn (see LearnedFaceModel.correlate_identity)
IDENTITY_MODES = ("mosaic", "one_person", "whole_face_blend")
#: the share of the bank, nearest in skin tone to the head's person, the other regions draw from
TONE_NEIGHBOURS = 0.25
#: blendshapes whose built-in colour change a learned face does without (see _expression_basis)
LID_BLENDSHAPES = ("blink_left", "blink_right")
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

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu", base: BuiltinFaceModel | None = None,
                 parts: tuple[dict[str, np.ndarray], np.ndarray, dict] | None = None) -> None:
        """The model in `folder`, checked (`check_model_folder`: every array, every card key); with
        `parts` (arrays, textures, card), the model a fit is about to write there, from memory (the
        fit measures its framing before writing it, and checks the folder before it swaps it in)."""
        folder = Path(folder)
        self.base = base or BuiltinFaceModel()
        if parts is None:
            files = check_model_folder(folder, self.base)
            arrays, self._textures, self.card, self.sources = files.arrays, files.textures, files.card, files.sources
        else:
            arrays, self._textures, self.card = parts
            self.sources = {}
        # a model is named by its folder (a copied folder is its own model); a fit's model in memory
        # (its staging folder) by the name it is being fitted as
        self.name = folder.name if parts is None else str(self.card["name"])
        self.folder = folder
        n_builtin = self.base.layout.shape
        mean, components = arrays["shape_mean"], arrays["shape_components"]
        regions, tones, eligible = arrays["regions"], arrays["tones"], arrays["eligible"]
        try:
            coefficients = np.asarray(arrays["alignment"], dtype=np.float64)
            self.own_alignment_calibration = AlignmentCalibration.from_array(
                coefficients, "dlib68-" + hashlib.sha256(coefficients.tobytes()).hexdigest()[:12])
        except (CalibrationError, TypeError, ValueError) as exc:
            raise FaceModelError(f"{folder}: the model's framing (array 'alignment') cannot be used: {exc}") from None
        P = self._textures.shape[0]
        self._version = model_version(self.name, arrays)
        self.landmarks68 = torch.from_numpy(arrays["landmarks68"].astype(np.int64))
        # geometry: builtin_mean + (shape_mean + z @ components) @ shape_basis + expr @ expr_basis
        base_basis = self.base._basis  # noqa: SLF001  (same package: the built-in head's own basis)
        shape_basis, expr_basis = base_basis[:n_builtin].double(), base_basis[n_builtin:]
        comp = torch.from_numpy(components.astype(np.float64))
        self._mean = (self.base.mean_vertices.double().view(-1)
                      + torch.from_numpy(mean.astype(np.float64)) @ shape_basis).float()
        self._basis = basis_tensor(torch.cat([(comp @ shape_basis).float(), expr_basis]))
        self._region_masks = regions.astype(np.float32)  # (R, S*S) detail masks on the texture square
        self._tones = torch.from_numpy(tones.astype(np.float32))  # (P, 3) each person's skin tone
        self._eligible = torch.from_numpy(eligible.astype(bool))  # (R, P) who may serve each region
        self._banks: dict[int, dict[str, torch.Tensor]] = {}
        self.region_names = tuple(self.card["regions"])
        self._expr_colour = self._expression_basis()
        self.shape_info = tuple(CoeffInfo(f"learned_shape_{k:02d}", f"learned head-shape direction {k} (prior sd)")
                                for k in range(len(components)))
        self.albedo_info = tuple(CoeffInfo(f"{region}_source_{k:04d}", f"weight of source person {k} in the {region}", 0.0, 1.0)
                                 for region in self.region_names for k in range(P))
        self.expr_info = self.base.expr_info
        self.identity_mode = "mosaic"
        self.device = torch.device("cpu")
        self.to(device)

    def _expression_basis(self) -> torch.Tensor:
        """(E, V*3) the built-in head's colour change per blendshape at full strength, per unit,
        except the blinks': the built-in head paints a closed lid over its painted eye, while a
        learned face's closing lid carries the photographed lid's own texels over the eye."""
        E = self.base.layout.expr
        high = torch.tensor([c.high if c.high != 0 else c.low for c in self.base.expr_info], dtype=torch.float32)
        zeros = torch.zeros(E + 1, self.base.layout.albedo)
        expr = torch.cat([torch.zeros(1, E), torch.diag(high)])
        colours = self.base.albedo(zeros, expr).reshape(E + 1, -1).double()
        change = (colours[1:] - colours[0]) / high.double().view(-1, 1)
        for k, info in enumerate(self.base.expr_info):
            if info.name in LID_BLENDSHAPES:
                change[k] = 0.0
        return basis_tensor(change.float())

    @property
    def version(self) -> str:
        return self._version if self.identity_mode == "mosaic" else f"{self._version}-{self.identity_mode}"

    @property
    def people(self) -> int:
        return int(self._tones.shape[0])

    @property
    def regions(self) -> int:
        return int(self._region_masks.shape[0])

    @property
    def bank_texture_size(self) -> int:
        """The side of the stored texture maps."""
        return int(self._textures.shape[1])

    def region_people(self) -> list[list[int]]:
        """Per region, the bank people whose photos saw that region well enough to serve it."""
        eligible = self._eligible.cpu()
        return [eligible[r].nonzero().flatten().tolist() for r in range(self.regions)]

    def geometry(self, shape: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        coeffs = torch.cat([shape, expr], dim=1)
        return basis_product(coeffs, self._basis, self._mean).view(coeffs.shape[0], -1, 3)

    def texture_bank(self, size: int) -> dict[str, torch.Tensor]:
        """The bank prepared for composing `size` x `size` textures (see learned_bank.bank_for_size);
        computed once per size, on this model's device."""
        if size not in self._banks:
            bank = bank_for_size(self._textures, self._region_masks, self._tones.cpu().numpy(), size)
            self._banks[size] = {k: torch.from_numpy(v).to(self.device) for k, v in bank.items()}
        return self._banks[size]

    def bank_entries(self, albedo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image and region, the bank people in use ((B, R, K) long, ascending), their low-band
        weights (the coefficients) and their detail weights (`detail_weights`)."""
        B = len(albedo)
        w = albedo.detach().reshape(B, self.regions, self.people).to(torch.float32).cpu()
        count = max(1, int((w != 0).sum(2).max().item())) if B else 1
        key = (w == 0).to(torch.int64) * self.people + torch.arange(self.people)
        idx = torch.argsort(key, dim=2)[:, :, :count]
        low_w = w.gather(2, idx)
        return idx.contiguous(), low_w.contiguous(), detail_weights(low_w).contiguous()

    def _expression_colour(self, expr: torch.Tensor) -> torch.Tensor:
        """(B, V*3) colour change of an expression: the built-in head's change per blendshape at
        full strength, scaled linearly (an open mouth's interior, a closed eyelid)."""
        return basis_product(expr, self._expr_colour)

    def albedo(self, albedo: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) reflectance at the vertices (the 3-D view): the composed texture read at each
        vertex, plus the expression's colour."""
        from synface.render.texture_torch import compose_bank  # noqa: PLC0415

        B, size = len(albedo), 128
        bank = dict(self.texture_bank(size))
        bank["up_idx"] = bank["up_idx"].long()
        idx, low_w, high_w = self.bank_entries(albedo)
        texture = compose_bank(bank, idx.to(self.device), low_w.to(self.device), high_w.to(self.device), size)
        uv = torch.from_numpy(self.uv_layout.uv).to(self.device)
        col = (torch.remainder(uv[:, 0], 1.0) * size).long().clamp(0, size - 1)
        row = (uv[:, 1] * size).long().clamp(0, size - 1)
        colour = texture[:, :, row, col].permute(0, 2, 1) + self._expression_colour(expr).view(B, -1, 3)
        return colour.clamp(0, 1)

    def albedo_parts(self, albedo: torch.Tensor, expr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-vertex part of the reflectance is the expression's colour alone (the bank is
        composed on the texture square): base 0, so base * scale * (1 - coverage) + paint = paint."""
        B = len(albedo)
        paint = self._expression_colour(expr).view(B, -1, 3).permute(0, 2, 1).contiguous()
        return (torch.zeros(B, 3, device=paint.device), paint, torch.zeros(B, self.num_vertices, device=paint.device),
                paint)

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
            allowed = blocks.masked_fill(~(eligible.unsqueeze(0) & self._tone_near(head).unsqueeze(1)), float("-inf"))
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

    def _tone_near(self, head: torch.Tensor) -> torch.Tensor:
        """(B, P) bool: the TONE_NEIGHBOURS share of the bank nearest in skin tone to each head
        person. The other regions come from these people: a dark-skinned person's eyes moved onto
        a light face (or the reverse) keep a wrong hue around them."""
        tones = self._tones.to(head.device)
        tone_gap = (tones.unsqueeze(0) - tones[head].unsqueeze(1)).abs().sum(2)  # (B, P)
        return tone_gap.argsort(dim=1, stable=True).argsort(dim=1, stable=True) < max(2, int(TONE_NEIGHBOURS * self.people))

    def distinct_people(self, albedo: torch.Tensor, usage: torch.Tensor) -> torch.Tensor:
        """(N, R) long: the bank person of each region for N identities drawn in order (`albedo`:
        their independent normal draws), each region's person chosen as the mosaic chooses it but
        among the people that earlier identities used least in that region. `usage` (R, P) int64
        counts the earlier identities' people and is updated (so a long set goes in chunks).

        Why: with independent mosaics, identities share a region's source person by chance (a
        bank of P people and P identities leaves about two in three sharing one), and two
        identities with one person's forehead and cheeks look related. Identity 0 is the
        mosaic's own choice; a bank larger than the set gives every identity its own people."""
        if self.identity_mode != "mosaic":
            raise ValueError(f"distinct source people need the mosaic identity mode, not {self.identity_mode!r}")
        N, P, R = len(albedo), self.people, self.regions
        blocks = albedo.detach().reshape(N, R, P).to(torch.float32).cpu()
        eligible = self._eligible.cpu()
        if usage.shape != (R, P) or usage.dtype != torch.int64:
            raise ValueError(f"usage must be ({R}, {P}) int64, got {tuple(usage.shape)} {usage.dtype}")
        people = torch.zeros(N, R, dtype=torch.int64)
        big = torch.iinfo(torch.int64).max
        for i in range(N):
            near = None
            for r in range(R):
                allowed = eligible[r] if near is None else eligible[r] & near
                least = usage[r].masked_fill(~allowed, big).min()
                candidates = allowed & (usage[r] == least)
                person = blocks[i, r].masked_fill(~candidates, float("-inf")).argmax()
                people[i, r] = person
                usage[r, person] += 1
                if r == 0:
                    near = self._tone_near(person.view(1)).cpu()[0]
        return people

    def people_weights(self, people: torch.Tensor) -> torch.Tensor:
        """(N, R*P) albedo coefficients of identities given their (N, R) region people."""
        weights = torch.zeros(len(people), self.regions, self.people)
        weights.scatter_(2, people.unsqueeze(2).cpu(), 1.0)
        return weights.view(len(people), -1)

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
        self._tones = self._tones.to(device)
        self._eligible = self._eligible.to(device)
        self._expr_colour = self._expr_colour.to(device)
        self._banks = {}
        self.landmarks68 = self.landmarks68.to(device)
        self.device = device


def model_arrays(shape_mean: np.ndarray, shape_components: np.ndarray, landmarks68: np.ndarray, regions: np.ndarray,
                 tones: np.ndarray, eligible: np.ndarray, textures: np.ndarray,
                 alignment: AlignmentCalibration) -> dict[str, np.ndarray]:
    """The arrays of a model file, in their stored types (`textures` go to their own file; the
    model file keeps their digest; `alignment` is where dlib finds the model's landmarks)."""
    return {"format": np.array([LEARNED_FORMAT]), "shape_mean": shape_mean.astype(np.float32),
            "shape_components": shape_components.astype(np.float32), "landmarks68": landmarks68.astype(np.int64),
            "regions": regions.astype(np.float32), "tones": tones.astype(np.float32), "eligible": eligible.astype(bool),
            "texture_digest": textures_digest(textures), "alignment": alignment.array().numpy()}


def save_model_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a model file (to a temporary path the caller renames into place)."""
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle among the **kwds


def save_textures(path: Path, textures: np.ndarray) -> None:
    """Write the texture file (to a temporary path the caller renames into place)."""
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(textures, dtype=np.uint8), allow_pickle=False)
