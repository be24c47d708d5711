"""`python -m synface bench leakage --model NAME`: are a learned model's synthetic people nobody real?

For each of `identities` new people, the nearest source person under dlib's descriptor, the share
closer than the genuine-pair threshold, and the nearest-distance distribution beside the real
impostor distances of the source photos. `--variant` measures the same for the alternatives the
model's regional mosaic was chosen over (`docs/realism.md`).
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from synface.data.leakage import SourceIndex, identity_draw_seed, leakage_report
from synface.data.synth_model import SourceCheck
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
    choose, redraws = None, {}
    if min_distance > 0:
        # the very mechanism generation uses (--min-source-distance), checked again on unseen views
        check = SourceCheck(gen, min_distance)

        def draw(identity_seed: int):
            shape, albedo = gen.draw_identities(1, torch.Generator().manual_seed(int(identity_seed)))
            return shape[0], albedo[0]

        def choose(i: int):
            return check.choose(i, identity_draw_seed(seed, i), draw)

    if progress is not None:
        progress(0, identities)  # the bar shows its size before the first chunk of 50
    report = leakage_report(gen, index, identities=identities, seed=seed, progress=progress, choose=choose,
                            min_distance=min_distance)
    if min_distance > 0:
        attempts = [a for a, _ in check.accepted.values()]
        redraws = {"redrawn": sum(a > 0 for a in attempts), "extra_draws": int(sum(attempts))}
    return {"bench": "leakage", "model": model, "generator": gen.version, "variant": variant,
            "recogniser": "dlib 128-D descriptor of the aligned crop", **report, **redraws}
