"""The context ablation: plain renders against faces drawn into context photos, in one study.

Why a study of its own: whether drawing synthetic people into real photos' context (hair, ears,
scenes) helps a recogniser is the question the context option exists for, and only a paired
comparison at equal image counts answers it. Cells (all synthetic sets 400 x 20 with IM at the
cpu scale, the Table 3 set): the built-in head plain; the learned model plain (and plain with
distinct source people: identities share no region's bank person while the bank lasts), with the whole head
over a context photo ('background'), with its face in a context photo ('photo'), with one photo
per identity; the real photos of LFW folds 1-3; and the photo set with DigiFace-1M's published
augmentation, at the scale's epochs and at three times as many (does augmentation pay once
training is long enough?). Context sets keep every composite at least the model card's
strangers' 1st percentile from its photo's person.
"""

from __future__ import annotations

from typing import Any, Callable

from synface.analysis.tables import CONTEXT_CELLS as CELLS
from synface.analysis.tables import CONTEXT_LONG_EPOCHS as LONG_EPOCHS

CONTEXT_STUDY = "context"
DIGIFACE_AUGMENT = "digiface-published"


def context_spec(base: dict[str, Any], context: str, per_identity: bool, min_distance: float) -> dict[str, Any]:
    """A synthetic set's spec drawn into context photos (`base`: the plain set's spec)."""
    if context == "plain":
        return dict(base)
    return {**base, "context": context, "contexts_per_identity": per_identity, "min_context_distance": min_distance,
            "name": base["name"] + f"_ctx-{context}" + ("-perid" if per_identity else "")}


def add_context_cells(base_spec: Callable[[str], dict[str, Any]], dataset: Callable[[dict[str, Any]], Any],
                      add_runs: Callable[..., None], study: str, real_train: Any, train_images: int, epochs: int,
                      min_distance: float, evals: list[dict], notes: list[str]) -> None:
    """Append the study's datasets and runs through the plan's own helpers: `base_spec(model)` is
    the Table 3 set's spec of a model, `dataset(spec)` adds it, `add_runs(study, label, cell, data,
    images, evals)` adds a cell's runs over the seeds."""
    learned = base_spec("learned")
    sets = {"builtin": dataset(base_spec("builtin")), "plain": dataset(learned),
            "distinct": dataset({**learned, "distinct_sources": True, "name": learned["name"] + "_distinct"})}
    for context, per_identity in (("background", False), ("photo", False), ("photo", True)):
        key = context + ("-id" if per_identity else "")
        sets[key] = dataset(context_spec(learned, context, per_identity, min_distance))
    long = {"epochs": epochs * LONG_EPOCHS}
    aug = {"augment": DIGIFACE_AUGMENT}
    cells: list[tuple[str, str, dict[str, Any]]] = [(CELLS[0], "builtin", {}), (CELLS[1], "plain", {}), (CELLS[2], "background", {}), (CELLS[3], "photo", {}),
             (CELLS[4], "photo-id", {}), (CELLS[6], "photo", aug), (CELLS[7], "photo", long),
             (CELLS[8], "photo", {**aug, **long}), (CELLS[9], "distinct", {})]
    for label, key, extra in cells[:5]:
        step = sets[key]
        add_runs(study, label, {"method": label, "data": step.name}, {"data": step.path, **extra}, step.images, evals)
    add_runs(study, CELLS[5], {"method": CELLS[5], "data": real_train.name}, {"real_root": real_train.path},
             train_images, evals)
    for label, key, extra in cells[5:]:
        step = sets[key]
        add_runs(study, label, {"method": label, "data": step.name}, {"data": step.path, **extra}, step.images, evals)
    notes.append(f"context study: every synthetic set {sets['plain'].images} images; context sets redraw a composite "
                 f"nearer than {min_distance:g} to its photo's person; 'DigiFace aug' is the augmentation preset "
                 f"'{DIGIFACE_AUGMENT}'; long cells train {epochs * LONG_EPOCHS} epochs instead of {epochs}")
