"""The Generator page's live face: its identities and its image, kept between reruns.

Why a module of its own: Streamlit executes a page file again on every rerun, so a cache defined
in the page would start empty each time; this module is imported once per server process, so its
caches live as long as the server. They are plain `functools.lru_cache`s, keyed by hashable
tuples (the model and its version, the identities, phi, the controls): a lookup costs less than
`st.cache_data`'s hashing of the same inputs and the copy of its result, and a slider move then
only composes and renders. Everything cached is read only (mixing and posing make new
coefficients; the page only reads the image).
"""

from __future__ import annotations

import functools

import numpy as np

from synface.face.coeffs import FaceCoeffs
from synface.face.controls import FaceControls, picked_identity
from ui import common


def model_of(key: str) -> str:
    """The face model's name in a page key ('name|version')."""
    return key.split("|", 1)[0]


@functools.lru_cache(maxsize=64)
def identity_coeffs(key: str, ident: tuple) -> FaceCoeffs:
    """One identity of the model `key` names: ("seed", seed) is the seed's draw; a learned model's
    editor identity ("learned", seed, shape, picks) replaces the draw's identity with the editor's."""
    gen = common.get_generator(model_of(key))
    coeffs = gen.sample(1, ident[1])
    if ident[0] == "learned":
        shape, albedo = picked_identity(gen.model, ident[2], ident[3])
        coeffs = coeffs.replace(shape=shape, albedo=albedo)
    return coeffs


def build_coeffs(key: str, ident_a: tuple, ident_b: tuple, phi: float,
                 controls: FaceControls) -> tuple[FaceCoeffs, list[str]]:
    """The live face (`FaceGenerator.compose`): clamped, with a note per clamped field."""
    gen = common.get_generator(model_of(key))
    return gen.compose(identity_coeffs(key, ident_a), identity_coeffs(key, ident_b), phi, controls)


@functools.lru_cache(maxsize=256)
def live_image(key: str, ident_a: tuple, ident_b: tuple, phi: float,
               controls: FaceControls) -> tuple[np.ndarray, tuple[str, ...]]:
    """The live face (112 x 112 uint8) and its clamping notes."""
    coeffs, notes = build_coeffs(key, ident_a, ident_b, phi, controls)
    return common.render(coeffs, model_of(key))[0], tuple(notes)


@functools.lru_cache(maxsize=4)
def context_renderer(key: str, mode: str):
    """The learned model's context photos (`synface.data.contexts.ContextRenderer`), loaded once per
    model version and mode; a DataError names a model fitted without them."""
    from synface.data.contexts import ContextRenderer  # noqa: PLC0415

    return ContextRenderer(common.get_generator(model_of(key)), mode)


@functools.lru_cache(maxsize=256)
def live_in_context(key: str, ident_a: tuple, ident_b: tuple, phi: float, controls: FaceControls, mode: str,
                    context_seed: int) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """The live face drawn into a context photo chosen near the sliders' pose (112 x 112 uint8), the
    photo's row, and the clamping notes. The photo's pose, expression and light replace the sliders'."""
    from synface.generator import SHARED_RENDER_LOCK  # noqa: PLC0415

    coeffs, notes = build_coeffs(key, ident_a, ident_b, phi, controls)
    with SHARED_RENDER_LOCK:
        images, rows, _ = context_renderer(key, mode).render(coeffs, seed=context_seed)
    return images[0], int(rows[0]), tuple(notes)


@functools.lru_cache(maxsize=64)
def strip_in_context(key: str, ident_a: tuple, ident_b: tuple, phis: tuple[float, ...], mode: str,
                     row: int) -> np.ndarray:
    """The identity mixup strip drawn into one context photo (`row`): (len(phis), 112, 112, 3)."""
    import torch  # noqa: PLC0415

    from synface.generator import SHARED_RENDER_LOCK, FaceGenerator  # noqa: PLC0415

    mixed = FaceGenerator.mix(identity_coeffs(key, ident_a), identity_coeffs(key, ident_b),
                              torch.tensor([float(p) for p in phis]))
    with SHARED_RENDER_LOCK:
        images, _, _ = context_renderer(key, mode).render(mixed, rows=np.full(len(phis), row))
    return images
