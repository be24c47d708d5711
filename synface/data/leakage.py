"""Privacy of a learned face model: is any synthetic person someone from its source photos?

A learned model's people are built from real people's photographs, so each synthetic identity is
compared with every source photo under dlib's descriptor (the recogniser the realism benchmarks
use, the same aligned-crop protocol), and called a leak when it lies closer to a source person
than the genuine-pair threshold measured on the source photos themselves (two photos of one
person are usually that close). Generation can refuse such identities and redraw them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from synface.face.learned import FaceModelError

#: renders per identity the check takes the closest of (frontal neutral, then prior draws)
VIEWS = 2
HIST_BINS = np.round(np.arange(0.0, 1.21, 0.05), 2)


@dataclass
class SourceIndex:
    """Descriptors of a learned model's source photos and the person of each."""

    descriptors: np.ndarray  # (N, 128)
    person: np.ndarray  # (N,) index into people
    people: list[str]
    threshold: float  # genuine-pair threshold measured on the sources
    bank_person: np.ndarray | None = None  # (P,) person index of each reflectance-bank entry

    @staticmethod
    def of_model(model) -> "SourceIndex":
        """The index stored beside a learned model (its sources.npz, checked with the model's other
        files when it was loaded: synface.face.model_files); a named error for the built-in head."""
        sources = getattr(model, "sources", None)
        if not sources:
            raise FaceModelError("the built-in head has no source people: leakage applies to learned models only")
        return SourceIndex(sources["descriptors"].astype(np.float32), sources["person"].astype(np.int64),
                           list(model.card["source_people"]), float(model.card["genuine_threshold"]),
                           sources["bank_person"].astype(np.int64))

    def nearest(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M,) distance to the nearest source photo and (M,) that photo's person index."""
        d = np.asarray(descriptors, np.float64)
        src = self.descriptors.astype(np.float64)
        sq = (d**2).sum(1)[:, None] + (src**2).sum(1)[None, :] - 2 * d @ src.T
        nearest = sq.argmin(1)
        dist = np.sqrt(np.clip(sq[np.arange(len(d)), nearest], 0, None))
        return dist, self.person[nearest]

    def stranger_distances(self, rows: int = 1000) -> np.ndarray:
        """Each source photo's distance to the nearest photo of ANOTHER source person: how close a
        real stranger comes to somebody in a gallery of this size (leave one person out). A
        synthetic person is judged against this, not against pair distances: with a thousand
        people in the gallery, most strangers lie within the genuine-pair threshold of someone."""
        src = self.descriptors.astype(np.float64)
        norms = (src**2).sum(1)
        out = np.empty(len(src))
        for start in range(0, len(src), rows):
            part = slice(start, start + rows)
            sq = norms[part, None] + norms[None, :] - 2 * src[part] @ src.T
            sq[self.person[part, None] == self.person[None, :]] = np.inf
            out[part] = np.sqrt(np.clip(sq.min(1), 0, None))
        return out

    def impostor_distances(self, count: int = 5000, seed: int = 0) -> np.ndarray:
        """Distances between photos of two different source people (random pairs): the real
        impostor distribution the synthetic people's nearest distances are shown beside."""
        rng = np.random.default_rng(seed)
        a, b = rng.integers(0, len(self.person), size=(2, count * 2))
        keep = self.person[a] != self.person[b]
        a, b = a[keep][:count], b[keep][:count]
        return np.linalg.norm(self.descriptors[a] - self.descriptors[b], axis=1)


def _view_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    return [int(seed)] * n if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]


def identity_descriptors(generator, shape: torch.Tensor, albedo: torch.Tensor,
                         seed: int | Sequence[int] = 0) -> np.ndarray:
    """(N, VIEWS, 128) descriptors of N identities: frontal neutral, then under prior attributes.

    `seed` is each identity's view seed (one int for all): identity i's views come from its own
    seed alone, so its descriptors never depend on which identities shared its batch."""
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415
    from synface.face.coeffs import FaceCoeffs  # noqa: PLC0415

    n = len(shape)
    seeds = _view_seeds(seed, n)
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} view seeds for {n} identities")

    def attributes(offset: int) -> dict[str, torch.Tensor]:
        rows = [generator.sample_attributes(1, s + offset) for s in seeds]
        return {k: torch.cat([r[k] for r in rows]) for k in rows[0]}

    views = [generator.neutral(FaceCoeffs(shape=shape, albedo=albedo, **attributes(0)))]
    for v in range(1, VIEWS):
        views.append(views[0].replace(**attributes(1000 * v)))
    out = np.zeros((n, len(views), 128), np.float32)
    for j, coeffs in enumerate(views):
        for i, image in enumerate(generator.render(coeffs).images.cpu().numpy()):
            out[i, j] = aligned_descriptor(image)
    return out


def source_distances(generator, index: SourceIndex, shape: torch.Tensor, albedo: torch.Tensor,
                     seed: int | Sequence[int] = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N,) each identity's distance to its nearest source person (closest over its views), and
    (N,) that person's index; `seed` as in `identity_descriptors`."""
    desc = identity_descriptors(generator, shape, albedo, seed)
    n, v, _ = desc.shape
    dist, person = index.nearest(desc.reshape(n * v, -1))
    dist, person = dist.reshape(n, v), person.reshape(n, v)
    best = dist.argmin(1)
    return dist[np.arange(n), best], person[np.arange(n), best]


def identity_draw_seed(seed: int, identity: int) -> int:
    """The identity seed of a leakage report's identity `identity` (one stream per report seed)."""
    return int(seed) * 1_000_003 + int(identity)


def _constituents(model, albedo: torch.Tensor, bank_person: np.ndarray | None) -> list[set[int]] | None:
    """Per identity, the source people its reflectance was taken from (learned mosaic models)."""
    if bank_person is None or not hasattr(model, "people"):
        return None
    weights = albedo.reshape(len(albedo), -1, model.people)
    return [set(bank_person[np.unique(np.nonzero(w.numpy())[1])].tolist()) for w in weights]


Choose = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def leakage_report(generator, index: SourceIndex, identities: int = 1000, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None, choose: Choose | None = None,
                   min_distance: float = 0.0) -> dict:
    """For `identities` new people of the model: the nearest source person, the share closer than
    the genuine threshold and than the 1st percentile of real strangers' nearest distances, how
    often the nearest source person is one the identity was built from, and the distributions.

    `choose(i)` gives identity i's (shape, albedo) rows; by default each is drawn from its own
    seed (`identity_draw_seed`). Generation's redraw below a distance passes its own chooser
    (`synface.data.synth_model.SourceCheck.choose`, then `min_distance` is recorded); either
    way every identity is re-checked under views no draw saw."""
    tick = progress or (lambda done, total: None)

    def own_draw(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape, albedo = generator.draw_identities(1, torch.Generator().manual_seed(identity_draw_seed(seed, i)))
        return shape[0], albedo[0]

    choose = choose or own_draw
    dists: list[np.ndarray] = []
    persons: list[np.ndarray] = []
    own: list[bool] = []
    batch = 50
    for start in range(0, identities, batch):
        ids = range(start, min(start + batch, identities))
        rows = [choose(i) for i in ids]
        shape, albedo = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
        # the held-out views: per-identity attribute seeds unrelated to any used while drawing
        d, p = source_distances(generator, index, shape, albedo, seed=[seed * 1_000_003 + 500_000 + i for i in ids])
        dists.append(d)
        persons.append(p)
        parts = _constituents(generator.model, albedo, index.bank_person)
        if parts is not None:
            own.extend(int(pi) in part for pi, part in zip(p, parts))
        tick(ids.stop, identities)
    dist = np.concatenate(dists)
    person = np.concatenate(persons)
    impostor = index.impostor_distances()
    strangers = index.stranger_distances()
    stranger_p01 = float(np.percentile(strangers, 1))
    closest = np.argsort(dist)[:5]
    counts = lambda x: np.histogram(x, bins=HIST_BINS)[0].tolist()  # noqa: E731
    hub, hub_count = np.unique(person, return_counts=True)
    return {
        "identities": identities,
        "seed": seed,
        "min_source_distance": min_distance,
        "source_photos": int(len(index.person)),
        "source_people": len(index.people),
        "genuine_threshold": round(index.threshold, 4),
        "leaked": int((dist < index.threshold).sum()),
        "leaked_share": round(float((dist < index.threshold).mean()), 4),
        "strangers_under_genuine_threshold": round(float((strangers < index.threshold).mean()), 4),
        "stranger_nearest_p01": round(stranger_p01, 4),
        "stranger_nearest_median": round(float(np.median(strangers)), 4),
        "under_stranger_p01_share": round(float((dist < stranger_p01).mean()), 4),
        "nearest_is_own_source_share": round(float(np.mean(own)), 4) if own else None,
        "most_frequent_nearest": {"person": index.people[int(hub[hub_count.argmax()])],
                                  "share": round(float(hub_count.max() / len(person)), 4)},
        "nearest_dist_median": round(float(np.median(dist)), 4),
        "nearest_dist_min": round(float(dist.min()), 4),
        "nearest_dist_p01": round(float(np.percentile(dist, 1)), 4),
        "real_impostor_dist_median": round(float(np.median(impostor)), 4),
        "real_impostor_below_threshold": round(float((impostor < index.threshold).mean()), 4),
        "closest_identities": [{"identity": int(i), "distance": round(float(dist[i]), 4),
                                "source_person": index.people[int(person[i])]} for i in closest],
        "histogram_bins": HIST_BINS.tolist(),
        "nearest_histogram": counts(dist),
        "stranger_nearest_histogram": counts(strangers),
        "real_impostor_histogram": counts(impostor),
    }
