"""The coefficients and soft labels of every image of a synthetic set: a pure function of (config,
identity, sample), shared by the on-disk build and the on-the-fly dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from synface.data.errors import DataError
from synface.data.synth_config import SynthConfig, identity_seed, stream_seed
from synface.data.synth_context import ContextSpec
from synface.data.synth_model import SourceCheck, model_name_of
from synface.face.coeffs import FaceCoeffs
from synface.generator import FaceGenerator


@dataclass
class SampleLabels:
    label: np.ndarray  # (N,) identity index
    partner: np.ndarray  # (N,) partner identity, -1 without mixup
    phi: np.ndarray  # (N,) weight of `label` (1.0 without mixup)
    context: np.ndarray | None = None  # (N,) context photo of each image (sets drawn into context photos)
    context_key: np.ndarray | None = None  # (N,) each composite's camera-grain seed (synface.data.context_match)


class SyntheticSpec:
    """The coefficients and soft labels of every image of one config (shared by build and on-the-fly)."""

    def __init__(self, config: SynthConfig, generator: FaceGenerator) -> None:
        rendering = model_name_of(generator)
        if rendering != config.model:
            raise DataError(f"synthetic set {config.name!r} uses face model {config.model!r}, but the generator "
                            f"renders {rendering!r} ({generator.version})")
        self.config = config
        self.gen = generator
        self._identity_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        #: the source-distance check of a set with min_source_distance > 0 (None otherwise)
        self.check = SourceCheck(generator, config.min_source_distance) if config.min_source_distance > 0 else None
        #: the context photos of a set drawn into them (None for plain sets)
        self.context = ContextSpec(config, generator) if config.context != "plain" else None

    def first_seed(self, i: int) -> int:
        return identity_seed(self.config.seed, i, self.config.purpose)

    def draw(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of the identity drawn from `seed` (CPU)."""
        shape, albedo = self.gen.draw_identities(1, torch.Generator().manual_seed(int(seed)))
        return shape[0], albedo[0]

    def identity(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of identity i (CPU): its seed's draw, or with min_source_distance
        the first of its redraws far enough from every source person."""
        if i not in self._identity_cache:
            if self.check is None:
                rows = self.draw(self.first_seed(i))
            else:
                rows = self.check.choose(i, self.first_seed(i), self.draw)
            if len(self._identity_cache) > 50_000:
                self._identity_cache.clear()
            self._identity_cache[i] = rows
        return self._identity_cache[i]

    def _attributes(self, i: int) -> dict[str, torch.Tensor]:
        """All M samples' attributes of identity i, with 'fixed' attributes held."""
        c = self.config
        m = c.samples
        varied = self.gen.sample_attributes(
            m, stream_seed("attr", c.seed, c.purpose, i),
            pose_scale=c.pose_scale, expr_scale=c.expression_scale, light_scale=c.illumination_scale)
        held = self.gen.sample_attributes(
            1, stream_seed("fixed", c.seed, c.purpose, i),
            pose_scale=c.pose_scale, expr_scale=c.expression_scale, light_scale=c.illumination_scale)
        for attr, key in (("pose", "pose"), ("expression", "expr"), ("illumination", "light")):
            if getattr(c, attr) == "fixed":
                varied[key] = held[key].expand(m, -1).clone()
        return varied

    def _mixup(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Partner and phi per sample of identity i (seeded, unlike the paper's unseeded draw)."""
        c = self.config
        m = c.samples
        if not c.im:
            return np.full(m, -1, dtype=np.int64), np.ones(m, dtype=np.float32)
        rng = np.random.default_rng(stream_seed("mix", c.seed, c.purpose, i))
        partner = rng.integers(0, c.ids - 1, size=m)
        partner = partner + (partner >= i)  # any identity but i
        phi = np.asarray(c.phi_grid, dtype=np.float32)[rng.integers(0, len(c.phi_grid), size=m)]
        return partner.astype(np.int64), phi

    def identity_batch(self, i: int, ks: Sequence[int] | None = None) -> tuple[FaceCoeffs, SampleLabels]:
        """Coefficients and labels of samples `ks` (default all) of identity i."""
        ks = list(range(self.config.samples)) if ks is None else list(ks)
        attrs = {k: v[ks] for k, v in self._attributes(i).items()}
        partner, phi = self._mixup(i)
        partner, phi = partner[ks], phi[ks]
        shape_i, albedo_i = self.identity(i)
        own = FaceCoeffs(shape=shape_i.expand(len(ks), -1).clone(), albedo=albedo_i.expand(len(ks), -1).clone(), **attrs)
        if not (partner >= 0).any():
            coeffs = own
        else:  # the one identity mixup (FaceGenerator.mix); a sample without a partner keeps phi = 1
            others = [self.identity(int(p) if p >= 0 else i) for p in partner]
            partners = own.replace(shape=torch.cat([o[0].reshape(1, -1) for o in others]),
                                   albedo=torch.cat([o[1].reshape(1, -1) for o in others]))
            coeffs = FaceGenerator.mix(own, partners, torch.from_numpy(phi.astype(np.float32)))
        labels = SampleLabels(np.full(len(ks), i, dtype=np.int64), partner, phi.astype(np.float32))
        if self.context is not None:
            labels.context = self.context.rows(i, ks, coeffs, own)
            labels.context_key = self.context.grain_keys(i, ks)
            coeffs = self.context.apply(coeffs, labels.context)
        return coeffs, labels


