"""The face model of a synthetic set, and how near its people come to the model's source people.

A `SynthConfig` names its face model (`model`: "builtin" or a learned model of the workspace);
`generator_for` gives the generator that renders it. A learned model is built from real people's
photographs, so a set of it can keep every identity at least `min_source_distance` from every
source person (dlib descriptor distance, `synface.data.leakage.source_distances`): an identity
drawn closer is redrawn from a derived seed, attempt 1, 2, ... (`redraw_seed`), so the same
config always gives the same people. `SourceCheck` does the checking and remembers each
identity's accepted attempt and distance (in the set's folder, so a resumed build does not check
again); `privacy_summary` is the card's "privacy" section.

Each identity is checked alone (a batch of one, attribute seed 0: its frontal neutral render and
one fixed prior view), so its distance is a function of the identity only, never of which other
identities shared its batch.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synface.data.check_state import load_check_state, save_check_state
from synface.data.leakage import SourceIndex, source_distances
from synface.face.catalog import BUILTIN, load_model
from synface.face.learned import FaceModelError, LearnedFaceModel
from synface.generator import FaceGenerator

#: draws per identity before a build gives up (each costs one descriptor check)
MAX_ATTEMPTS = 50
#: identities whose source distance the card reports when the build did not check them all
PRIVACY_SAMPLE = 1000
CHECK_FILE = "source_check.json"

Draw = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def model_name_of(generator: FaceGenerator) -> str:
    """The catalog name of the generator's model: its folder for a learned model, else 'builtin'."""
    folder = getattr(generator.model, "folder", None)
    return Path(folder).name if folder is not None else BUILTIN


def generator_for(model: str, generator: FaceGenerator | None = None, device: str | torch.device | None = "auto",
                  workspace: str | Path | None = None) -> FaceGenerator:
    """A generator rendering face model `model`: `generator` itself when it already does (any
    non-learned model counts as the built-in head, as before models had names), else a new one on
    `generator`'s device (or `device`). A FaceModelError (a ValueError) names a missing model."""
    if model in (None, "", BUILTIN):
        if generator is not None and not isinstance(generator.model, LearnedFaceModel):
            return generator
        return FaceGenerator(device=generator.device if generator is not None else device)
    learned = load_model(model, workspace)
    if generator is not None and learned is not None and generator.model.version == learned.version:
        return generator
    return FaceGenerator(device=generator.device if generator is not None else device, model=learned)


def privacy_floor(model: str, workspace: str | Path | None = None) -> float:
    """The minimum source distance a set of face model `model` gets unless the user lowers it: its
    card's `stranger_nearest_p01`, the distance only 1% of real strangers come closer than to the
    source people (0 for the built-in head, which no real person's photo went into, and for a card
    without the figure). A FaceModelError (a ValueError) names a model that does not load."""
    if model in (None, "", BUILTIN):
        return 0.0
    from synface.face.catalog import model_card  # noqa: PLC0415

    value = model_card(model, workspace).get("stranger_nearest_p01")  # the checked card
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) and value > 0 else 0.0


def redraw_seed(first_seed: int, attempt: int) -> int:
    """The identity seed of draw `attempt` (0: `first_seed` itself). Later attempts hash
    (first seed, attempt) and keep the first seed's parity, so training and benchmark identities
    stay on their disjoint (even / odd) seed streams."""
    if attempt == 0:
        return int(first_seed)
    digest = hashlib.sha256(f"redraw/{int(first_seed)}/{int(attempt)}".encode()).digest()
    value = int.from_bytes(digest[:8], "little") & (2**63 - 1)
    return (value << 1) | (int(first_seed) & 1)


class SourceCheck:
    """Each identity's distance to its nearest source person, with redraws below `min_distance`."""

    def __init__(self, generator: FaceGenerator, min_distance: float = 0.0, max_attempts: int = MAX_ATTEMPTS) -> None:
        try:
            self.index = SourceIndex.of_model(generator.model)
        except FaceModelError as exc:
            raise FaceModelError(f"--min-source-distance: {exc}") from None
        self.gen = generator
        self.min_distance = float(min_distance)
        self.max_attempts = int(max_attempts)
        #: identity -> (accepted attempt, its distance)
        self.accepted: dict[int, tuple[int, float]] = {}
        self._dirty = False

    def distance(self, shape: torch.Tensor, albedo: torch.Tensor) -> float:
        """One identity's distance to its nearest source person (checked alone: see the module)."""
        dist, _ = source_distances(self.gen, self.index, shape.reshape(1, -1), albedo.reshape(1, -1), seed=0)
        return float(dist[0])

    def choose(self, identity: int, first_seed: int, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) of `identity`: its first draw at least `min_distance` from every source person."""
        known = self.accepted.get(identity)
        if known is not None:
            return draw(redraw_seed(first_seed, known[0]))
        farthest = 0.0
        for attempt in range(self.max_attempts):
            shape, albedo = draw(redraw_seed(first_seed, attempt))
            dist = self.distance(shape, albedo)
            if dist >= self.min_distance:
                self.accepted[identity] = (attempt, dist)
                self._dirty = True
                return shape, albedo
            farthest = max(farthest, dist)
        raise ValueError(f"identity {identity}: all {self.max_attempts} draws lie closer than --min-source-distance "
                         f"{self.min_distance:g} to a source person (the farthest at {farthest:.3f}); lower it")

    # ------------------------------------------------------------------ persistence (the set's folder)
    def load(self, path: Path, key: dict) -> None:
        """Adopt the accepted draws stored by an earlier build of the same set (`key` matches)."""
        data = load_check_state(path, key)
        if data is None:
            return
        try:
            if float(data.get("min_distance", -1)) != self.min_distance:
                return
            accepted = {int(i): (int(a), float(d)) for i, (a, d) in data["accepted"].items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return
        if all(math.isfinite(d) for _, d in accepted.values()):  # else ignored whole, and redone
            self.accepted.update(accepted)

    def save(self, path: Path, key: dict) -> None:
        if not self._dirty:
            return
        save_check_state(path, key, {"min_distance": self.min_distance,
                                     "accepted": {str(i): list(v) for i, v in sorted(self.accepted.items())}})
        self._dirty = False


def _stranger_reference(index, dist: np.ndarray) -> dict:
    """How close real strangers come to the same gallery (each source person against the others):
    the fair yardstick, since with many source people most strangers lie within the pair
    threshold of somebody."""
    strangers = index.stranger_distances()
    p01 = float(np.percentile(strangers, 1))
    return {"strangers_under_threshold": round(float((strangers < index.threshold).mean()), 4),
            "stranger_nearest_p01": round(p01, 4),
            "share_under_stranger_p01": round(float((dist < p01).mean()), 4) if len(dist) else None}


def _histogram(index, dist: np.ndarray) -> dict:
    """Counts of the identities' and of real strangers' nearest distances on one set of bins, for
    the card's picture of the two side by side."""
    from synface.data.leakage import HIST_BINS  # noqa: PLC0415

    strangers = index.stranger_distances()
    top = max(float(HIST_BINS[-1]), float(dist.max()) if len(dist) else 0.0, float(strangers.max()))
    bins = np.append(HIST_BINS[:-1], np.ceil(top * 20) / 20 + 1e-9)  # the last bin takes whatever lies beyond
    return {"bins": [round(float(b), 2) for b in bins], "identities": np.histogram(dist, bins=bins)[0].tolist(),
            "strangers": np.histogram(strangers, bins=bins)[0].tolist()}


def privacy_summary(check: SourceCheck, identities: list[int], total: int, all_checked: bool) -> dict:
    """The card's "privacy" section from the distances `check` holds for `identities`."""
    dist = np.array([check.accepted[i][1] for i in identities], np.float64)
    redrawn = [check.accepted[i][0] for i in identities]
    threshold = float(check.index.threshold)
    return {
        "source_people": len(check.index.people),
        "source_photos": int(len(check.index.person)),
        "threshold": round(threshold, 4),
        "min_source_distance": check.min_distance,
        "identities_checked": len(identities),
        "identities": total,
        "checked": "every identity, while drawing it" if all_checked else f"the first {len(identities)} identities, after the build",
        "nearest_min": round(float(dist.min()), 4) if len(dist) else None,
        "nearest_p01": round(float(np.percentile(dist, 1)), 4) if len(dist) else None,
        "nearest_median": round(float(np.median(dist)), 4) if len(dist) else None,
        "under_threshold": int((dist < threshold).sum()),
        "share_under_threshold": round(float((dist < threshold).mean()), 4) if len(dist) else None,
        "redrawn": int(sum(a > 0 for a in redrawn)),
        "extra_draws": int(sum(redrawn)),
        **_stranger_reference(check.index, dist),
        "histogram": _histogram(check.index, dist),
        "protocol": "dlib descriptor distance of each identity (frontal neutral render and one prior view, the "
                    "closer counts) to its nearest source photo; mixed (IM) images are blends of checked identities",
    }
