"""A side-by-side picture of face models: the same attribute draws on each model's new people."""

from __future__ import annotations

import numpy as np


def preview_grid(models: dict, people: int = 8, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """(rows*112, people*112, 3) uint8: per model one row of new people under prior attributes
    and one row of the same people frontal and neutral. `models` maps a label to a model (None:
    the built-in head)."""
    from synface.generator import FaceGenerator  # noqa: PLC0415

    rows = []
    for model in models.values():
        gen = FaceGenerator(device=device, model=model)
        coeffs = gen.sample(people, seed)
        for batch in (coeffs, gen.neutral(coeffs)):
            rows.append(np.concatenate(list(gen.render(batch).images.cpu().numpy()), axis=1))
    return np.concatenate(rows, axis=0)
