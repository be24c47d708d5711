"""A side-by-side picture of face models: the same attribute draws on each model's new people."""

from __future__ import annotations

import numpy as np


def preview_grid(models: dict, people: int = 8, seed: int = 0, device: str = "cpu",
                 context: str = "plain") -> tuple[np.ndarray, list[str]]:
    """(rows*112, people*112, 3) uint8 and a label per row: per model one row of new people under
    prior attributes and one row of the same people frontal and neutral; with `context` "photo" or
    "background", learned models get a third row: the same people drawn into their model's context
    photos (a picture derived from the source photos: not for committing). `models` maps a label
    to a model (None: the built-in head)."""
    from synface.data.contexts import ContextRenderer  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    rows, labels = [], []
    for label, model in models.items():
        gen = FaceGenerator(device=device, model=model)
        coeffs = gen.sample(people, seed)
        for batch, what in ((coeffs, "prior attributes"), (gen.neutral(coeffs), "neutral")):
            rows.append(np.concatenate(list(gen.render(batch).images.cpu().numpy()), axis=1))
            labels.append(f"{label}: {what}")
        if context != "plain" and model is not None:
            images, _, _ = ContextRenderer(gen, context).render(coeffs, seed)
            rows.append(np.concatenate(list(images), axis=1))
            labels.append(f"{label}: in context ({context}), pose, expression and light of each context photo")
    return np.concatenate(rows, axis=0), labels
