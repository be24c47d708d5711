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
from typing import Iterator, Sequence

import numpy as np
import streamlit as st

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = (REPO_ROOT / ".." / "shared" / "data" / "lfw").resolve()
#: pass as `persist_state=` to widgets whose value must survive page switches (needs a `key`)
PERSIST = "session"
LFW_KEY = "side.lfw"


# ----------------------------------------------------------------------------- resources


def generator_device() -> str:
    """The app's render device: $SYNFACE_DEVICE, default auto (CUDA when present)."""
    return os.environ.get("SYNFACE_DEVICE", "auto")


@st.cache_resource(show_spinner="Starting the face generator (torch and its kernels load once per server start) ...")
def builtin_generator():
    """The process's shared, warmed-up FaceGenerator of the built-in head (app.py starts building it
    in the background at server start; a caller before it is ready waits for that same build)."""
    from synface.generator import shared_generator

    return shared_generator(generator_device())


def get_generator(model: str | None = None):
    """The shared, warmed-up FaceGenerator of face model `model` (None or "builtin": the built-in
    head; else a learned model of the workspace, one generator per model version)."""
    if model in (None, "", "builtin"):
        return builtin_generator()
    from synface.generator import shared_generator

    return shared_generator(generator_device(), model, workspace())


def study_model_picker(key: str) -> str:
    """The face model whose paper tables a page shows: "builtin" or a learned model of the
    workspace (each model's studies are tagged apart, so tables of two models never pool)."""
    names = model_names()
    if len(names) == 1:
        return names[0]
    return st.selectbox("Face model", names, key=key, help="Tables and verdicts of runs whose synthetic sets this "
                        "face model drew (`reproduce ... --model NAME`).")


def model_names() -> list[str]:
    """"builtin" and the learned face models of the workspace that load."""
    from synface.face.catalog import model_names as names

    return names(workspace())


def preload() -> None:
    """Server start-up work, run in the background by `start_warmup`: the warmed built-in
    generator first (what the first page needs), then the heavy imports other pages use. Never
    raises: a problem (say, SYNFACE_DEVICE=cuda on a machine without a GPU) shows up later as a
    page message."""
    t0 = time.perf_counter()
    try:
        from synface.generator import shared_generator

        shared_generator(generator_device())
        print(f"SynFace Studio: generator ready in {time.perf_counter() - t0:.1f} s", flush=True)
        import pandas  # noqa: F401
        import plotly.graph_objects  # noqa: F401
    except Exception:  # noqa: BLE001 - start-up must not fail on what a page can report
        traceback.print_exc()


_WARMUP: list[threading.Thread] = []
_WARMUP_LOCK = threading.Lock()


def start_warmup() -> threading.Thread:
    """Run `preload` once per process in a daemon thread and return it.

    Why a thread: the server must answer (and the browser open) while torch loads and numba's
    kernels compile; a page that needs the generator meanwhile waits only for what is left, on
    the same shared generator (never a second build)."""
    with _WARMUP_LOCK:
        if not _WARMUP:
            thread = threading.Thread(target=preload, name="synface-warmup", daemon=True)
            thread.start()
            _WARMUP.append(thread)
        return _WARMUP[0]


def render(coeffs, model: str | None = None) -> np.ndarray:
    """(B,112,112,3) uint8 images of `coeffs` on the shared generator of face model `model`
    (under the shared generators' render lock: sessions are threads of one server)."""
    from synface.generator import SHARED_RENDER_LOCK

    gen = get_generator(model)
    with SHARED_RENDER_LOCK:
        return gen.render(coeffs).images.cpu().numpy()


# ----------------------------------------------------------------------------- who may use the app


def app_password() -> str:
    """The password visitors must give: $SYNFACE_PASSWORD, else `password` in .streamlit/secrets.toml."""
    from synface.base.access import PASSWORD_ENV

    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    try:
        return str(st.secrets.get("password", "") or "")
    except Exception:  # noqa: BLE001 - no secrets file, or one that does not parse: no password
        return ""


def open_to_other_hosts() -> bool:
    """True when the server listens beyond the loopback interface (server.address)."""
    from synface.base.access import listens_beyond_loopback

    return listens_beyond_loopback(st.get_option("server.address"))


def access_gate() -> bool:
    """With a password set, a sign-in form until the visitor gives it (False: draw nothing else);
    True when the visitor may see the pages."""
    from synface.base.access import password_matches

    expected = app_password()
    if not expected or st.session_state.get("access.granted"):
        return True
    st.title("SynFace Studio")
    with st.form("access.form"):
        given = st.text_input("Password", type="password", key="access.password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if password_matches(given, expected):
            st.session_state["access.granted"] = True
            st.rerun()
        time.sleep(1.0)  # slows guessing
        st.error("Wrong password.")
    return False


def require_access() -> None:
    """Every page's first call: draws nothing more (st.stop) until the visitor may see pages."""
    if not access_gate():
        st.stop()


def use_navigation_only() -> None:
    """Make app.py's navigation the only way pages run, from the server's first request on.

    Why: Streamlit serves a folder named pages/ beside the main script as pages of their own
    (its first multipage design) until some session has run the main script's st.navigation; a
    first visitor who opens /results directly would then run that page without app.py: no
    password, no warning, and modules that are not pages listed in the menu. The flag is
    Streamlit's own switch for that mode; every page also calls `require_access` itself."""
    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
    except (ImportError, AttributeError):  # another Streamlit: the pages' own checks still hold
        pass


def network_warning() -> None:
    """On every page: a warning while the app is reachable from other hosts without a password."""
    if open_to_other_hosts() and not app_password():
        st.warning(f"This app is reachable from other hosts (server.address {st.get_option('server.address') or '*'!s}, "
                   f"port {st.get_option('server.port')}) and has no password: anyone who reaches it can start jobs, "
                   "read the data folders and delete runs. Set SYNFACE_PASSWORD (or `password` in "
                   ".streamlit/secrets.toml) and restart, or serve it on 127.0.0.1 and use an SSH tunnel.",
                   icon=":material/lock_open:")


def data_roots() -> list[Path]:
    """The folders the app may read: the workspace and $SYNFACE_DATA_DIRS (by default the LFW copy
    beside the checkout, when there is one)."""
    from synface.base.access import configured_data_dirs

    return [workspace(), *configured_data_dirs(default=[DEFAULT_LFW])]


def readable(path: str, what: str = "folder") -> Path:
    """`path` resolved, when the app may read it; a ValueError naming it and the allowed folders otherwise."""
    from synface.base.access import check_readable

    return check_readable(path, data_roots(), what)


# ----------------------------------------------------------------------------- workspace and state


def workspace() -> Path:
    """The workspace folder ($SYNFACE_HOME or workspace/ beside app.py), created on first use."""
    from synface.base.workspace import workspace_root

    root = workspace_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def datasets_dir() -> Path:
    return workspace() / "datasets"


def lfw_path() -> str:
    """The LFW folder chosen in the sidebar (default: the shared copy, when present); "" when none
    is chosen or the app may not read the one typed."""
    value = st.session_state.get(LFW_KEY)
    if value is None:
        value = str(DEFAULT_LFW) if DEFAULT_LFW.is_dir() else ""
    if not str(value).strip():
        return ""
    try:
        return str(readable(str(value), "LFW folder"))
    except ValueError:
        return ""


def default(key: str, value) -> None:
    """Set a widget's initial value once (instead of `value=`, which would fight session state)."""
    if key not in st.session_state:
        st.session_state[key] = value


def device_label() -> str:
    """'CUDA (name)' or 'CPU': the generator's device, resolved without waiting for the generator
    (so no page's sidebar waits for the start-up warm-up)."""
    from synface.base.device import resolve_device

    dev = resolve_device(generator_device())
    if dev.type == "cuda":
        import torch

        return f"CUDA ({torch.cuda.get_device_name(dev)})"
    return "CPU"


def sidebar() -> None:
    """Device, workspace, LFW folder: drawn by app.py on every page."""
    with st.sidebar:
        st.markdown(f"**Device:** {device_label()}")
        st.caption(f"Workspace: `{workspace().name}`", help="the folder where datasets, runs and models are kept "
                   "(the server's $SYNFACE_HOME, else workspace/ beside app.py); its full path stays on the server")
        default(LFW_KEY, str(DEFAULT_LFW) if DEFAULT_LFW.is_dir() else "")
        st.text_input("LFW folder (evaluation)", key=LFW_KEY, persist_state="session",
                      help="An LFW-layout folder (images/ + pairs.txt) used for verification.")
        path = str(st.session_state.get(LFW_KEY, "")).strip()
        if path:
            try:
                if not (readable(path, "LFW folder") / "pairs.txt").is_file():
                    st.warning("No pairs.txt in this folder.")
            except ValueError as exc:
                st.error(str(exc))
        job_slots()


def job_slots() -> None:
    """How many background jobs work and wait, and how many may work at once."""
    from synface.base import jobs

    base = workspace() / jobs.JOBS_DIR
    kinds = [p.name for p in base.iterdir() if p.is_dir() and p.name[0] != "." and p.name != "run"] if base.is_dir() else []
    alive = [j for kind in kinds for j in jobs.list_jobs(kind, workspace()) if j["alive"]]
    waiting = sum(1 for j in alive if j["waiting"])
    st.caption(f"Background jobs: {len(alive) - waiting} working, {waiting} waiting; at most {jobs.max_jobs()} work at "
               "once (training runs queue separately).")


# ----------------------------------------------------------------------------- errors and images


@contextlib.contextmanager
def page_errors(what: str = "This page") -> Iterator[None]:
    """Show any exception of a page body as an st.error message; the trace goes to the server log."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything a page may raise
        traceback.print_exc()
        st.error(f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}")


def verdicts(table: str, scale: str | None, model: str | None = None, rows=None) -> None:
    """A paper table's trends with their 95% intervals and verdicts, and the seeds that would
    resolve them (the Attributes and Results pages), for face model `model` (`rows`: the runs'
    study rows already read, `synface.analysis.tables.study_rows`)."""
    from synface.analysis.verdicts import table_verdicts
    from synface.studies.report import seeds_lines

    found = table_verdicts(table, root=workspace(), scale=scale, model=model, rows=rows)
    st.markdown("**Does the paper's trend hold?**")
    if not found:
        st.caption("Not enough finished cells to check the paper's trend.")
        return
    st.caption("Differences in accuracy points with 95% confidence intervals over matched training seed x "
               "test fold pairs: holds, reversed, or not resolved at this scale (the interval contains 0).")
    st.markdown("\n".join(f"- {v.line()}" for v in found))
    st.caption(" ".join(seeds_lines(found)))


def upscale(image: np.ndarray, size: int, smooth: bool = True) -> np.ndarray:
    """One (H,W,3) uint8 image resized to size x size (bicubic or nearest) for display."""
    from PIL import Image

    resample = Image.BICUBIC if smooth else Image.NEAREST
    return np.asarray(Image.fromarray(image).resize((size, size), resample))


def tile(images: np.ndarray, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(N,H,W,3) images -> one grid image, `cols` per row (`synface.api.image_grid`, as notebooks lay them out)."""
    from synface.api import image_grid

    return image_grid(images, cols, pad, fill)


# ----------------------------------------------------------------------------- background jobs


def show_job(status: dict, stages: Sequence[str] = (), stop_key: str | None = None) -> None:
    """One st.progress per stage of a background job (`stages` first, even before they start, then
    any other its log shows) and, while it runs, a Stop button."""
    from synface.base import jobs

    seen = status.get("stages") or {}
    names = list(stages) + [s for s in seen if s not in stages]
    for stage in names:
        done, total = seen.get(stage, (0, 0))
        st.progress(min(1.0, done / total) if total else 0.0, text=f"{stage}: {done} / {total}")
    if status.get("alive") and st.button("Stop", key=stop_key or f"btn.job.{status['kind']}.{status['key']}.stop"):
        jobs.stop(status["kind"], status["key"], workspace())


@st.fragment(run_every=1.0)
def follow_job(kind: str, key: str, title: str = "", stages: Sequence[str] = (), stop_key: str | None = None) -> None:
    """Poll a running background job (`synface.base.jobs`): its title, stage bars and Stop button;
    when it ends the whole page reruns, so the page shows how it ended."""
    from synface.base import jobs

    status = jobs.status(kind, key, workspace())
    if not status["alive"]:
        st.rerun(scope="app")
    if title:
        st.markdown(title)
    show_job(status, stages, stop_key)
