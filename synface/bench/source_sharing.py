"""`python -m synface bench sources`: how alike two new people of a learned model look to dlib
when their facial regions come from the same source person, and how often a set's identities do.

Why: a learned model composes each new person from regions of its bank people. Identities drawn
independently share a region's source person by chance, and a pair that shares the eyes looks
like one person to a real-face recogniser, yet carries two labels in a training set. This
benchmark draws a set's identities (as `generate` would, independently or with distinct source
people), renders each frontally, neutral and evenly lit, and reports dlib's descriptor distance
over every pair, grouped by which regions the pair shares, with the share of pairs under dlib's
same-person threshold.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from synface.data.realface import DLIB_THRESHOLD



#: the most identities (or real people) whose every pair is compared: pairs grow with the square
MAX_PAIRED_IDENTITIES = 5_000


def _distances(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"pairs": 0}
    return {"pairs": int(len(values)), "median": round(float(np.median(values)), 4),
            "p05": round(float(np.percentile(values, 5)), 4),
            "under_threshold": round(float(np.mean(values < DLIB_THRESHOLD)), 4)}


def _pair_distances(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first, second = np.triu_indices(len(descriptors), 1)
    return first, second, np.linalg.norm(descriptors[first] - descriptors[second], axis=1)


def bench_sources(model: str, identities: int = 400, distinct: bool = False, seed: int = 0,
                  workspace: str | None = None, device: str = "cpu", real: str | None = None, varied: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """dlib distances between the first `identities` identities of a training set with `seed`
    (face model `model`), over all pairs, by the regions each pair shares; with `real` (an
    identity-per-folder set of aligned crops), the same distances between as many real people
    (one photo each) beside them. `varied`: each identity under one draw of the attribute prior
    (pose, expression, light, as a set's images are) instead of frontal, neutral and evenly lit."""
    import torch  # noqa: PLC0415

    from synface.bench.spread import load_aligned_crop, real_identity_images  # noqa: PLC0415
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415
    from synface.data.synth_config import SynthConfig  # noqa: PLC0415
    from synface.data.synth_spec import SyntheticSpec, region_sharing  # noqa: PLC0415
    from synface.face.catalog import load_model  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    if not 2 <= identities <= MAX_PAIRED_IDENTITIES:
        raise ValueError(f"--identities must be at least 2 (the benchmark pairs them) and at most "
                         f"{MAX_PAIRED_IDENTITIES:,} (every pair is compared), got {identities:,}")
    learned = load_model(model, workspace)
    names = getattr(learned, "region_names", None)
    if learned is None or names is None:
        raise ValueError(f"face model {model!r} has no source people (choose a learned model with --model NAME)")
    gen = FaceGenerator(device=device, model=learned)
    spec = SyntheticSpec(SynthConfig(ids=identities, samples=1, seed=seed, model=model, distinct_sources=distinct), gen)
    rows = [spec.first_draw(i) for i in range(identities)]
    shape, albedo = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    people = albedo.reshape(identities, len(names), -1).argmax(2).numpy()
    template = gen.sample(identities, seed)
    template = template if varied else gen.neutral(template)
    coeffs = template.replace(shape=shape.to(template.shape.device), albedo=albedo.to(template.albedo.device))
    tick = progress or (lambda done, total: None)
    descriptors: list[np.ndarray] = []
    for start in range(0, identities, 64):
        images = gen.render(coeffs[list(range(start, min(start + 64, identities)))]).images.cpu().numpy()
        descriptors.extend(aligned_descriptor(image) for image in images)  # the aligned crop as dlib's face box
        tick(len(descriptors), identities)
    first, second, distance = _pair_distances(np.stack(descriptors))
    reference = None
    if real is not None:
        photos = [files[0] for files in real_identity_images(real, identities, 1, need="the reference needs 3 or more")]
        _, _, real_distance = _pair_distances(np.stack([aligned_descriptor(load_aligned_crop(p)) for p in photos]))
        reference = {"source": str(real), "people": len(photos), **_distances(real_distance)}
    shared = people[first] == people[second]  # (pairs, R)
    by_region = {name: _distances(distance[shared[:, r] & (shared.sum(1) == 1)]) for r, name in enumerate(names)}
    return {"bench": "sources", "model": model, "model_version": learned.version, "identities": identities,
            "distinct_sources": distinct, "varied": varied, "seed": seed, "bank_people": int(learned.people),
            "threshold": DLIB_THRESHOLD,
            "no_region_shared": _distances(distance[~shared.any(1)]),
            "one_region_shared": by_region,
            "several_regions_shared": _distances(distance[shared.sum(1) >= 2]),
            "real_strangers": reference,
            "identities_sharing": {name: counts["sharing"]
                                   for name, counts in region_sharing(people, names, learned.people).items()},
            "protocol": "each identity rendered " + ("under one draw of the attribute prior" if varied else
                                                     "frontal, neutral, evenly lit") + "; dlib descriptor of the aligned "
                        "render (the crop as dlib's face box); every pair of identities, grouped by the facial "
                        "regions whose source person they share (first draws, before any privacy redraw)"}
