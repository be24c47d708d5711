"""The coefficient container: one batch of faces as named tensors.

Every image the tool makes is a pure function of one row of `FaceCoeffs`, so dataset manifests
store the flat row and can re-render any image exactly. Identity is `shape` + `albedo`; the rest
are attributes that vary per image.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from synface.render.camera import JITTER_DIM

#: Field order of the flat layout. Dimensions beyond these come from the model (`FaceLayout`).
FIELD_ORDER: tuple[str, ...] = ("shape", "albedo", "expr", "light", "pose", "jitter", "background")

#: Fixed sizes of the attribute fields (the identity and expression sizes depend on the model).
LIGHT_DIM = 27  # 9 spherical-harmonic bands x RGB (reference.md section 2)
POSE_DIM = 3  # yaw, pitch, roll in radians
BACKGROUND_DIM = 12  # colour A rgb, colour B rgb, gradient angle, noise amplitude, 4 noise weights


@dataclass(frozen=True)
class FaceLayout:
    """Sizes of each field; a model's layout fixes how a flat row is split."""

    shape: int
    albedo: int
    expr: int
    light: int = LIGHT_DIM
    pose: int = POSE_DIM
    jitter: int = JITTER_DIM
    background: int = BACKGROUND_DIM

    @property
    def total(self) -> int:
        return sum(self.sizes().values())

    def sizes(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIELD_ORDER}

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in self.sizes().items():
            out[name] = slice(start, start + size)
            start += size
        return out

    def column_names(self) -> list[str]:
        """Flat column names (`shape_000`, ..., `background_011`) for manifests."""
        return [f"{name}_{i:03d}" for name, size in self.sizes().items() for i in range(size)]


@dataclass
class FaceCoeffs:
    """A batch of B faces. Each field is a float32 tensor of shape (B, dim)."""

    shape: torch.Tensor
    albedo: torch.Tensor
    expr: torch.Tensor
    light: torch.Tensor
    pose: torch.Tensor
    jitter: torch.Tensor
    background: torch.Tensor

    def __post_init__(self) -> None:
        batch = None
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, torch.Tensor):
                value = torch.as_tensor(np.asarray(value, dtype=np.float32))
                setattr(self, f.name, value)
            if value.dim() == 1:
                value = value.unsqueeze(0)
                setattr(self, f.name, value)
            if value.dim() != 2:
                raise ValueError(f"FaceCoeffs.{f.name}: expected shape (B, dim), got {tuple(value.shape)}")
            if batch is None:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise ValueError(
                    f"FaceCoeffs.{f.name}: batch size {value.shape[0]} differs from the other fields ({batch})"
                )
        for name, expected in (("light", LIGHT_DIM), ("pose", POSE_DIM), ("jitter", JITTER_DIM), ("background", BACKGROUND_DIM)):
            got = getattr(self, name).shape[1]
            if got != expected:
                raise ValueError(f"FaceCoeffs.{name}: expected {expected} values per face, got {got}")

    # ----- batch behaviour -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.shape.shape[0])

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> "FaceCoeffs":
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[index])

    def __iter__(self) -> Iterator["FaceCoeffs"]:
        for i in range(len(self)):
            yield self[i]

    def map(self, fn) -> "FaceCoeffs":
        """Apply `fn` to every field tensor (indexing, device moves, dtype casts)."""
        return FaceCoeffs(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: str | torch.device) -> "FaceCoeffs":
        return self.map(lambda t: t.to(device))

    @property
    def device(self) -> torch.device:
        return self.shape.device

    def clone(self) -> "FaceCoeffs":
        return self.map(lambda t: t.clone())

    def replace(self, **updates: torch.Tensor) -> "FaceCoeffs":
        """A copy with some fields replaced (broadcasting a single row over the batch)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in updates.items():
            if name not in values:
                raise KeyError(f"FaceCoeffs has no field {name!r}; fields are {list(values)}")
            value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            if value.dim() == 1:
                value = value.unsqueeze(0)
            if value.shape[0] == 1 and len(self) > 1:
                value = value.expand(len(self), -1)
            values[name] = value.clone()
        return FaceCoeffs(**values)

    @staticmethod
    def cat(items: Sequence["FaceCoeffs"]) -> "FaceCoeffs":
        if not items:
            raise ValueError("FaceCoeffs.cat needs at least one batch")
        return FaceCoeffs(**{f.name: torch.cat([getattr(c, f.name) for c in items]) for f in fields(FaceCoeffs)})

    @property
    def identity(self) -> torch.Tensor:
        """The identity vector (shape then albedo), the part identity mixup blends."""
        return torch.cat([self.shape, self.albedo], dim=1)

    @property
    def layout(self) -> FaceLayout:
        return FaceLayout(shape=self.shape.shape[1], albedo=self.albedo.shape[1], expr=self.expr.shape[1])

    # ----- flat rows for manifests -----------------------------------------------------------
    def to_flat(self) -> np.ndarray:
        """(B, layout.total) float32 array in FIELD_ORDER."""
        return torch.cat([getattr(self, n).detach().float().cpu() for n in FIELD_ORDER], dim=1).numpy()

    @staticmethod
    def from_flat(flat: np.ndarray | torch.Tensor, layout: FaceLayout, device: str | torch.device = "cpu") -> "FaceCoeffs":
        array = torch.as_tensor(np.asarray(flat, dtype=np.float32))
        if array.dim() == 1:
            array = array.unsqueeze(0)
        if array.dim() != 2 or array.shape[1] != layout.total:
            raise ValueError(f"flat coefficients: expected (B, {layout.total}) for this model, got {tuple(array.shape)}")
        parts = {name: array[:, sl].to(device) for name, sl in layout.slices().items()}
        return FaceCoeffs(**parts)

    def to_dict(self) -> dict[str, list[list[float]]]:
        return {n: getattr(self, n).detach().cpu().tolist() for n in FIELD_ORDER}

    @staticmethod
    def from_dict(data: Mapping[str, Sequence[Sequence[float]]]) -> "FaceCoeffs":
        missing = [n for n in FIELD_ORDER if n not in data]
        if missing:
            raise ValueError(f"coefficient record lacks fields {missing}")
        return FaceCoeffs(**{n: torch.tensor(data[n], dtype=torch.float32) for n in FIELD_ORDER})

    def check_finite(self) -> None:
        """Raise a ValueError naming the first field that holds NaN or inf."""
        for name in FIELD_ORDER:
            value = getattr(self, name)
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                row, col = (int(i) for i in bad.nonzero()[0])
                raise ValueError(f"FaceCoeffs.{name}[{row}, {col}] is {value[row, col].item()} (NaN or inf is not a valid coefficient)")
