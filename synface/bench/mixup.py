"""`bench mixup`: identity mixup strips under dlib: is every intermediate one face, and does the
identity move steadily from B to A as phi grows?

Per strip: two identities A and B, one attribute draw (the default prior, half its pose and
expression spread), renders at phi = 0, 0.1, ..., 1. dlib's detector must find exactly one face
in each render (a ghost of two faces over each other is what breaks detection first); dlib's
descriptor of each render is compared with the strip's two ends. A strip moves steadily when
the distance to A never grows and the distance to B never shrinks as phi grows, beyond a small
tolerance (the descriptor's own jitter under re-rendering).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from synface.generator import FaceGenerator

#: a step against the direction of the strip smaller than this (descriptor distance) is jitter
TOLERANCE = 0.03
STEPS = 11


def strip_descriptors(gen: FaceGenerator, strips: int, seed: int, tick: Callable[[int, int], None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phis, faces found (S, P) int, descriptors (S, P, 128)) of `strips` strips of STEPS renders."""
    from synface.data.realface import aligned_descriptor, detect_faces, detector_view  # noqa: PLC0415

    phis = np.round(np.linspace(0.0, 1.0, STEPS), 2)
    a = gen.sample(strips, seed + 303)
    b = gen.sample(strips, seed + 404)
    attrs = gen.sample_attributes(strips, seed + 505, pose_scale=0.5, expr_scale=0.5)
    found = np.zeros((strips, STEPS), np.int64)
    desc = np.zeros((strips, STEPS, 128))
    tick(0, STEPS * strips)
    for p, phi in enumerate(phis):
        images = gen.render(FaceGenerator.mix(a, b, float(phi)).replace(**attrs)).images.cpu().numpy()
        for s, image in enumerate(images):
            found[s, p] = len(detect_faces(detector_view(image), upsample=0))
            desc[s, p] = aligned_descriptor(image)
        tick((p + 1) * strips, STEPS * strips)
    return phis, found, desc


def strip_statistics(desc: np.ndarray, found: np.ndarray, tolerance: float = TOLERANCE) -> dict:
    """Per strip: distance to B (phi = 0) and to A (phi = 1) along phi; steady when neither goes
    the wrong way by more than `tolerance` between neighbouring steps."""
    to_b = np.linalg.norm(desc - desc[:, :1], axis=2)
    to_a = np.linalg.norm(desc - desc[:, -1:], axis=2)
    steady = ((np.diff(to_b, axis=1) >= -tolerance).all(1) & (np.diff(to_a, axis=1) <= tolerance).all(1))
    return {"one_face": round(float((found == 1).mean()), 4), "no_face": round(float((found == 0).mean()), 4),
            "several_faces": round(float((found > 1).mean()), 4),
            "steady_strips": round(float(steady.mean()), 4),
            "largest_wrong_step": round(float(max(-np.diff(to_b, axis=1).min(), np.diff(to_a, axis=1).max(), 0.0)), 4),
            "mean_dist_to_b": [round(float(v), 4) for v in to_b.mean(0)],
            "mean_dist_to_a": [round(float(v), 4) for v in to_a.mean(0)]}


def bench_mixup(model: str | None = None, strips: int = 40, seed: int = 0, device: str = "auto",
                workspace: str | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Mixup strips of the built-in head or the learned model `model` (module docstring)."""
    from synface.face.catalog import load_model  # noqa: PLC0415

    gen = FaceGenerator(device=device, model=load_model(model, workspace))
    phis, found, desc = strip_descriptors(gen, strips, seed, progress or (lambda done, total: None))
    return {"bench": "mixup", "model": model or "builtin", "generator": gen.version, "strips": strips, "seed": seed,
            "phi": phis.tolist(), "tolerance": TOLERANCE, **strip_statistics(desc, found)}
