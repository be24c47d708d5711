"""Shared pieces of the app's pages: the cached generator, the sidebar, error handling, state.

Pages stay thin: they read widgets, call `synface`, and show results. What every page needs
(one generator per process, the workspace, the LFW folder, turning exceptions into messages,
and the widget-persistence convention: `key=` plus `persist_state=PERSIST`) lives here once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Iterator

import numpy as np
import streamlit as st

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = (REPO_ROOT / ".." / "shared" / "data" / "lfw").resolve()
#: pass as `persist_state=` to widgets whose value must survive page switches (needs a `key`)
PERSIST = "session"
LFW_KEY = "side.lfw"


# ----------------------------------------------------------------------------- resources


@st.cache_resource(show_spinner="Loading the face generator ...")
def get_generator():
    """One FaceGenerator per server process (device from $SYNFACE_DEVICE, default auto)."""
    from synface.generator import FaceGenerator

    return FaceGenerator(device=os.environ.get("SYNFACE_DEVICE", "auto"))


@st.cache_resource
def render_lock() -> threading.Lock:
    """Serialises renders between sessions and the warm-up thread (one kernel launch at a time)."""
    return threading.Lock()


def render(coeffs) -> np.ndarray:
    """(B,112,112,3) uint8 images of `coeffs` on the cached generator."""
    gen = get_generator()
    with render_lock():
        return gen.render(coeffs).images.cpu().numpy()


def _warm(gen, status: dict) -> None:
    """Background warm-up of the renderer's numba kernels. Never calls st.*.

    UMAP's JIT (about 30 s of mostly GIL-holding compilation) is not warmed here: it made every
    Generator slider move wait (median 1.4 s in the browser test). The Features page starts it in
    the background when first opened (`synface.analysis.umap_embed.warmup_umap`).
    """
    t0 = time.perf_counter()
    try:
        with render_lock():
            gen.warmup()
        status["generator_s"] = round(time.perf_counter() - t0, 2)
    except Exception as exc:  # noqa: BLE001 - warm-up is an optimisation, never a failure
        status["error"] = f"{type(exc).__name__}: {exc}"
    status["done"] = True


@st.cache_resource
def start_warmup() -> dict:
    """Start the warm-up thread once per process; returns its (live-updated) status dict."""
    status: dict = {"done": False}
    threading.Thread(target=_warm, args=(get_generator(), status), name="synface-warmup", daemon=True).start()
    return status


# ----------------------------------------------------------------------------- workspace and state


def workspace() -> Path:
    """The workspace folder ($SYNFACE_HOME or workspace/ beside app.py), created on first use."""
    from synface.runs import workspace_root

    root = workspace_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def datasets_dir() -> Path:
    return workspace() / "datasets"


def lfw_path() -> str:
    """The LFW folder chosen in the sidebar (default: the shared copy, when present)."""
    value = st.session_state.get(LFW_KEY)
    if value is None:
        value = str(DEFAULT_LFW) if DEFAULT_LFW.is_dir() else ""
    return str(value)


def default(key: str, value) -> None:
    """Set a widget's initial value once (instead of `value=`, which would fight session state)."""
    if key not in st.session_state:
        st.session_state[key] = value


def device_label() -> str:
    """'CUDA (name)' or 'CPU', from the generator's device."""
    dev = get_generator().device
    if dev.type == "cuda":
        import torch

        return f"CUDA ({torch.cuda.get_device_name(dev)})"
    return "CPU"


def sidebar() -> None:
    """Device, workspace, LFW folder: drawn by app.py on every page."""
    with st.sidebar:
        st.markdown(f"**Device:** {device_label()}")
        st.caption(f"Workspace: `{workspace()}`")
        default(LFW_KEY, str(DEFAULT_LFW) if DEFAULT_LFW.is_dir() else "")
        st.text_input("LFW folder (evaluation)", key=LFW_KEY, persist_state="session",
                      help="An LFW-layout folder (images/ + pairs.txt) used for verification.")
        path = st.session_state.get(LFW_KEY, "")
        if path and not (Path(path) / "pairs.txt").is_file():
            st.warning("No pairs.txt in this folder.")
        warm = start_warmup()
        if not warm.get("done"):
            st.caption("Warming up the renderer in the background ...")
        elif warm.get("error"):
            st.caption(f"Warm-up problem: {warm['error']}")


# ----------------------------------------------------------------------------- errors and images


@contextlib.contextmanager
def page_errors(what: str = "This page") -> Iterator[None]:
    """Show any exception of a page body as an st.error message; the trace goes to the server log."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything a page may raise
        traceback.print_exc()
        st.error(f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}")


def upscale(image: np.ndarray, size: int, smooth: bool = True) -> np.ndarray:
    """One (H,W,3) uint8 image resized to size x size (bicubic or nearest) for display."""
    from PIL import Image

    resample = Image.BICUBIC if smooth else Image.NEAREST
    return np.asarray(Image.fromarray(image).resize((size, size), resample))


def tile(images: np.ndarray, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(N,H,W,3) images -> one grid image, `cols` per row (a strip when N <= cols)."""
    n, h, w, c = images.shape
    rows = (n + cols - 1) // cols
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), fill, np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = img
    return out
