"""The coefficients and soft labels of every image of a synthetic set: a pure function of (config,
identity, sample), shared by the on-disk build and the on-the-fly dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

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
        #: with distinct_sources: every identity's (shape (N, S), region people (N, R)), drawn once
        self._distinct: tuple[torch.Tensor, torch.Tensor] | None = None
        #: the source-distance check of a set with min_source_distance > 0 (None otherwise)
        self.check = SourceCheck(generator, config.min_source_distance) if config.min_source_distance > 0 else None
        #: the context photos of a set drawn into them (None for plain sets)
        self.context = (ContextSpec(config, generator, lambda i: self.first_draw(i)[1])
                        if config.context != "plain" else None)

    def first_seed(self, i: int) -> int:
        return identity_seed(self.config.seed, i, self.config.purpose)

    def draw(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of the identity drawn from `seed` (CPU)."""
        shape, albedo = self.gen.draw_identities(1, torch.Generator().manual_seed(int(seed)))
        return shape[0], albedo[0]

    def first_draw(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of identity i's first draw: its seed's, or with distinct_sources
        the same shape with region people as distinct as the bank allows (drawn for the whole set
        at once, in identity order, so any part of the set gets the same people)."""
        if not self.config.distinct_sources:
            return self.draw(self.first_seed(i))
        if self._distinct is None:
            self._distinct = self.gen.draw_distinct_identities([self.first_seed(k) for k in range(self.config.ids)])
        shapes, people = self._distinct
        bank: Any = self.gen.model  # a learned model: draw_distinct_identities refuses any other
        return shapes[i], bank.people_weights(people[i : i + 1])[0]

    def draws_of(self, i: int) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        """Identity i's draws by seed, for a source check: its first seed gives `first_draw`, a
        redraw an ordinary draw from its own seed."""
        first = self.first_seed(i)
        return lambda seed: self.first_draw(i) if seed == first else self.draw(seed)

    def identity(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of identity i (CPU): its first draw (`first_draw`), or with
        min_source_distance the first of its draws far enough from every source person (a redraw
        is an ordinary draw from its own seed)."""
        if i not in self._identity_cache:
            if self.check is None:
                rows = self.first_draw(i)
            else:
                rows = self.check.choose(i, self.first_seed(i), self.draws_of(i))
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


#: identities beyond which a card does not count shared source people (one draw each)
SHARING_LIMIT = 100_000


def source_sharing(spec: SyntheticSpec) -> dict | None:
    """The card's "sources" section of a learned model's set: per facial region, how many
    identities share their source person with another identity, and the most identities any one
    person serves (first draws, before any privacy redraw). None for models without a bank."""
    model = spec.gen.model
    regions, people = getattr(model, "region_names", None), getattr(model, "people", None)
    if regions is None or people is None:
        return None
    ids = spec.config.ids
    section: dict = {"distinct_sources": spec.config.distinct_sources, "bank_people": int(people), "identities": ids}
    if ids > SHARING_LIMIT:
        return {**section, "counted": False, "why": f"more than {SHARING_LIMIT:,} identities"}
    chosen = torch.stack([spec.first_draw(i)[1].reshape(len(regions), people).argmax(1) for i in range(ids)])
    return {**section, "counted": True, "regions": region_sharing(chosen.numpy(), regions, people),
            "meaning": "identities whose region comes from a source person another identity of the set also has there"}


def region_sharing(people: np.ndarray, regions: Sequence[str], bank_people: int) -> dict[str, dict[str, int]]:
    """Per region of (N, R) identities' bank people: how many identities share their person there
    with another identity, and the most identities one person serves."""
    out = {}
    for r, name in enumerate(regions):
        counts = np.bincount(np.asarray(people)[:, r], minlength=bank_people)
        out[name] = {"sharing": int(counts[counts > 1].sum()), "most_per_person": int(counts.max())}
    return out
