"""`python -m synface bench identity`: how much identity each coefficient carries for a real-face
recogniser.

Why: the realism bar asks dlib's descriptor (trained on real photographs) to tell our identities
apart. Sweeping one shape or albedo coefficient from -A to +A on otherwise fixed, neutrally posed
and lit identities, and measuring the descriptor distance between the two ends, shows which
coefficients the recogniser perceives at all, so the model can spend its variation where it
counts. Two reference distances give the scale: two random identities, both neutral (what the
whole prior separates), and one identity neutral vs under random attributes (what pose, light and
expression alone move).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from synface.generator import FaceGenerator


def bench_identity(n_identities: int = 10, amplitude: float = 2.0, seed: int = 7, device: str = "auto",
                   coefficients: list[str] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Mean dlib distance between renders at -amplitude and +amplitude of each identity coefficient.

    `coefficients` limits the sweep to these names (default: every shape and albedo coefficient).
    """
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415

    if n_identities < 2:
        raise ValueError(f"n_identities must be at least 2 (the impostor reference pairs them), got {n_identities}")
    if not np.isfinite(amplitude) or amplitude <= 0:
        raise ValueError(f"amplitude must be a positive number, got {amplitude}")
    gen = FaceGenerator(device=device)
    shape_names = [info.name for info in gen.model.shape_info]
    albedo_names = [info.name for info in gen.model.albedo_info]
    wanted = coefficients if coefficients is not None else shape_names + albedo_names
    unknown = [name for name in wanted if name not in shape_names and name not in albedo_names]
    if unknown:
        raise ValueError(f"unknown coefficient(s) {unknown}; shape and albedo names are listed by the model's "
                         f"shape_info / albedo_info (e.g. {shape_names[0]!r}, {albedo_names[0]!r})")

    def embed(coeffs) -> np.ndarray:
        images = gen.render(coeffs).images.cpu().numpy()
        return np.stack([aligned_descriptor(im) for im in images])

    ids = gen.sample(n_identities, seed)
    neutral = gen.neutral(ids)
    total = len(wanted) + 2
    tick = progress or (lambda done, total: None)
    tick(0, total)
    base = embed(neutral)
    impostor = float(np.linalg.norm(base - np.roll(base, 1, axis=0), axis=1).mean())
    tick(1, total)
    attributes = float(np.linalg.norm(base - embed(ids), axis=1).mean())
    tick(2, total)
    rows: list[dict[str, Any]] = []
    for k, name in enumerate(wanted):
        field = "shape" if name in shape_names else "albedo"
        index = (shape_names if field == "shape" else albedo_names).index(name)
        ends = []
        for value in (-amplitude, amplitude):
            coeffs = getattr(neutral, field).clone()
            coeffs[:, index] = value
            ends.append(embed(neutral.replace(**{field: coeffs})))
        rows.append({"coefficient": name, "kind": field,
                     "distance": round(float(np.linalg.norm(ends[0] - ends[1], axis=1).mean()), 4)})
        tick(k + 3, total)
    rows.sort(key=lambda row: -row["distance"])
    return {
        "bench": "identity",
        "recogniser": "dlib 128-D descriptor (face_recognition_models weights)",
        "identities": n_identities,
        "amplitude": amplitude,
        "seed": seed,
        "reference_impostor_neutral": round(impostor, 4),
        "reference_attributes_only": round(attributes, 4),
        "coefficients": rows,
    }
