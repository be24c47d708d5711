"""A synthetic set rendered during training, never written to disk (same images as the on-disk build)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from synface.data.synth_config import SynthConfig
from synface.data.synth_context import CONTEXT_CHECK_FILE
from synface.data.synth_model import CHECK_FILE, generator_for
from synface.data.synth_spec import SampleLabels, SyntheticSpec
from synface.face.coeffs import FaceCoeffs
from synface.generator import FaceGenerator


class OnTheFlyDataset(torch.utils.data.Dataset):
    """Renders images during training without touching disk; index = identity * samples + k.

    `get_batch` renders many at once (what a training loop should call); `__getitem__` renders one.
    The pixels equal the on-disk build's before JPEG compression (PNG builds match exactly).
    """

    def __init__(self, config: SynthConfig, generator: FaceGenerator | None = None,
                 workspace: str | Path | None = None, folder: str | Path | None = None) -> None:
        """`folder`: where this set is (or was being) built: its stored privacy and context checks
        are adopted when their key matches, so an identity or a context the build redrew renders
        here as it was built (without it, those checks run again as the rows are drawn)."""
        self.config = config
        self.gen = generator_for(config.model, generator, workspace=workspace)
        self.spec = SyntheticSpec(config, self.gen)
        if folder is not None:
            key = {"fingerprint": config.fingerprint(), "generator_version": self.gen.version}
            if self.spec.check is not None:
                self.spec.check.load(Path(folder) / CHECK_FILE, key)
            if self.spec.context is not None:
                self.spec.context.load(Path(folder) / CONTEXT_CHECK_FILE, key)

    def __len__(self) -> int:
        return self.config.num_images

    def _split(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside a set of {len(self)} images")
        return divmod(int(index), self.config.samples)

    def get_batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """uint8 images (N,112,112,3), labels (N,2), weights (N,2)."""
        by_identity: dict[int, list[int]] = {}
        order = []
        for idx in indices:
            i, k = self._split(idx)
            by_identity.setdefault(i, []).append(k)
            order.append((i, k))
        coeffs_list: list[FaceCoeffs] = []
        keys: list[tuple[int, int]] = []
        labels_list: list[SampleLabels] = []
        for i, ks in by_identity.items():
            coeffs, labels = self.spec.identity_batch(i, ks)
            coeffs_list.append(coeffs)
            labels_list.append(labels)
            keys.extend((i, k) for k in ks)
        coeffs = FaceCoeffs.cat(coeffs_list)
        if self.spec.context is not None:
            images = torch.from_numpy(self.spec.context.render(
                coeffs, np.concatenate([part.context for part in labels_list]),
                np.concatenate([part.context_key for part in labels_list])))
        else:
            images = self.gen.render(coeffs).images.cpu()
        label = np.concatenate([part.label for part in labels_list])
        partner = np.concatenate([part.partner for part in labels_list])
        phi = np.concatenate([part.phi for part in labels_list])
        position = {key: j for j, key in enumerate(keys)}
        perm = torch.tensor([position[key] for key in order])
        lab = torch.from_numpy(np.stack([label, partner], 1))[perm]
        wts = torch.from_numpy(np.stack([phi, 1 - phi], 1).astype(np.float32))[perm]
        wts[lab[:, 1] < 0, 1] = 0.0
        return {"images": images[perm], "labels": lab, "weights": wts}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.get_batch([index])
        return {k: v[0] for k, v in batch.items()}
