"""`python -m synface bench leakage --model NAME`: are a learned model's synthetic people nobody real?

For each of `identities` new people, the nearest source person under dlib's descriptor, the share
closer than the genuine-pair threshold, and the nearest-distance distribution beside the real
impostor distances of the source photos. `--variant` measures the same for the alternatives the
model's regional mosaic was chosen over (`docs/realism.md`).
"""

from __future__ import annotations

import copy
from typing import Callable

from synface.data.leakage import SourceIndex, leakage_report
from synface.face.catalog import load_model
from synface.face.learned import IDENTITY_MODES
from synface.generator import FaceGenerator


def with_identity_mode(model, variant: str):
    """A copy of a learned model (sharing its arrays) drawing identities by `variant`, for a
    comparison; the cached model itself is left as it is."""
    if variant not in IDENTITY_MODES:
        raise ValueError(f"--variant {variant!r}: choose from {', '.join(IDENTITY_MODES)}")
    variant_model = copy.copy(model)
    variant_model.identity_mode = variant
    return variant_model


def bench_leakage(model: str, identities: int = 1000, seed: int = 0, variant: str = "mosaic", workspace: str | None = None,
                  device: str = "auto", progress: Callable[[int, int], None] | None = None,
                  min_distance: float = 0.0) -> dict:
    learned = load_model(model, workspace)
    if learned is None:
        raise ValueError("bench leakage needs a learned model (--model NAME): the built-in head has no source people")
    learned = with_identity_mode(learned, variant)
    gen = FaceGenerator(device=device, model=learned)
    index = SourceIndex.of_model(learned)
    report = leakage_report(gen, index, identities=identities, seed=seed, progress=progress, min_distance=min_distance)
    return {"bench": "leakage", "model": model, "generator": gen.version, "variant": variant,
            "recogniser": "dlib 128-D descriptor of the aligned crop", **report}
