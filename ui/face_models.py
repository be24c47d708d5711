"""Generator page pieces for learned face models: the identity editor and fitting a model from a folder.

A learned model's identity is its learned shape directions (standard normal, the largest
variation among the source people first) and, per facial region, one person of its reflectance
bank: hundreds of albedo coefficients, one-hot per region. So the editor shows a slider per shape
direction and a source-person picker per region rather than hundreds of albedo sliders. The
editor starts from the identity's seed (the same person `FaceGenerator.sample` draws) and follows
it whenever the seed or the model changes.

Fitting runs `python -m synface face-model fit` as a detached process (`synface.fitting.jobs`),
so it survives reruns and page switches; the expander polls its log and shows each stage.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from synface.face.controls import region_picks
from ui import common

SHAPE_COLUMNS = 4


def key(which: str, part: str) -> str:
    return f"gen.learned.{which}.{part}"


def bank_names(model) -> list[str]:
    """'k: name' of each reflectance-bank person (the card's names, in bank order; both checked
    when the model loaded)."""
    names = model.card["source_people"]
    return [f"{k}: {names[int(i)]}" for k, i in enumerate(model.sources["bank_person"])]


def eligible_people(gen) -> list[list[int]]:
    """Per region, the bank people who may serve it (the model's own rule)."""
    return gen.model.region_people()


def sync(which: str, gen, model_key: str, seed: int) -> None:
    """Set identity `which`'s editor to the person its seed draws, when the seed or model changed
    (call before the editor's widgets are drawn)."""
    s = st.session_state
    origin = f"{model_key}/{seed}"
    if s.get(key(which, "origin")) == origin:
        return
    model = gen.model
    draw = gen.sample(1, seed)
    for k, value in enumerate(draw.shape[0].tolist()):
        s[key(which, f"shape.{k}")] = float(np.clip(round(value, 2), -3.0, 3.0))
    for r, pick in enumerate(region_picks(model, draw.albedo[0])):
        s[key(which, f"region.{r}")] = int(pick)
    s[key(which, "origin")] = origin


def identity(which: str, gen, seed: int) -> tuple:
    """A hashable description of identity `which` as the editor holds it (cache key and input)."""
    s = st.session_state
    model = gen.model
    shape = tuple(float(s[key(which, f"shape.{k}")]) for k in range(len(model.shape_info)))
    picks = tuple(int(s[key(which, f"region.{r}")]) for r in range(model.regions))
    return ("learned", int(seed), shape, picks)


def identity_editor(gen, on_new_person) -> None:
    """Shape sliders and a source person per region for identity A or B of a learned model."""
    model = gen.model
    with st.expander("Identity (learned model): shape directions and a source person per region"):
        c1, c2 = st.columns([1, 3])
        which = c1.radio("edit identity", ["A", "B"], key="gen.learned.edit", persist_state="session", horizontal=True)
        c2.button("Draw a new person", key="btn.gen.learned.new", on_click=on_new_person,
                  args=("gen.seed_a" if which == "A" else "gen.seed_b",),
                  help="a new seed for this identity: its shape and one bank person per region are drawn from the prior")
        names = bank_names(model)
        eligible = eligible_people(gen)
        cols = st.columns(model.regions)
        for r, (col, region) in enumerate(zip(cols, model.region_names)):
            col.selectbox(f"{region.replace('_', ' ')}: source person", eligible[r] or list(range(model.people)),
                          format_func=lambda k: names[k] if k < len(names) else str(k),
                          key=key(which, f"region.{r}"), persist_state="session")
        st.caption(f"Shape: {len(model.shape_info)} learned directions in prior standard deviations "
                   "(direction 0 varies most among the source people). A new person takes each region from a "
                   "different bank person, toned to the head's skin.")
        cols = st.columns(SHAPE_COLUMNS)
        for k, info in enumerate(model.shape_info):
            cols[k % SHAPE_COLUMNS].slider(f"direction {k}", float(info.low), float(info.high), step=0.01,
                                           key=key(which, f"shape.{k}"), persist_state="session")


# ----------------------------------------------------------------------------- fitting


def fit_expander() -> None:
    """Folder, name and people count -> a detached `face-model fit`, with its progress per stage."""
    from synface.fitting.jobs import fit_jobs, fit_status, launch_fit

    s = st.session_state
    for k, v in {"gen.fit.photos": str(common.DEFAULT_LFW) if common.DEFAULT_LFW.is_dir() else "",
                 "gen.fit.name": "learned", "gen.fit.people": 0}.items():
        common.default(k, v)
    with st.expander("Fit a face model from a folder"):
        st.caption("A folder of <person>/<photo> images, or an LFW copy (images/ + people.txt). dlib finds 68 points "
                   "per photo; the head is fitted to them and each person's skin colours are read from the photos. "
                   "The fit runs in the background (about a minute for 60 LFW people on 2 CPU cores) and the "
                   "model then appears in the face model list.")
        c1, c2, c3 = st.columns([3, 2, 1])
        c1.text_input("photo folder", key="gen.fit.photos", persist_state="session")
        c2.text_input("model name", key="gen.fit.name", persist_state="session",
                      help="face_models/<name>/ in the workspace: letters, digits, '.', '_' and '-'")
        c3.number_input("people (0: all)", 0, 1_000_000, step=1, key="gen.fit.people", persist_state="session",
                        help="use only the first N people, sorted by name")
        if st.button("Fit", key="btn.gen.fit"):
            try:
                photos = common.readable(str(s["gen.fit.photos"]), "photo folder")
                launch_fit(photos, str(s["gen.fit.name"]).strip(), common.workspace(),
                           people=int(s["gen.fit.people"]) or None)
            except (ValueError, FileNotFoundError) as exc:
                st.error(f"Cannot fit: {exc}")
        jobs = fit_jobs(common.workspace())
        shown = [n for n in jobs if fit_status(n, common.workspace())["alive"]] or jobs[:1]
        for name in shown:
            if fit_status(name, common.workspace())["alive"]:
                fit_progress(name)
            else:
                show_fit(fit_status(name, common.workspace()))


def damaged_models_expander() -> None:
    """The workspace's model folders that do not pass the check, each with its reason and a Remove
    button (shown only when there are some)."""
    from synface.face.catalog import FaceModelBusy, damaged_models, remove_model

    damaged = damaged_models(common.workspace())
    if not damaged:
        return
    with st.expander(f"Damaged face models ({len(damaged)}): not offered in the list above", expanded=False):
        for model in damaged:
            c1, c2 = st.columns([6, 1])
            c1.markdown(f"**{model['name']}**: {model['error']}")
            if c2.button("Remove", key=f"btn.gen.remove_model.{model['name']}"):
                try:
                    remove_model(model["name"], common.workspace())
                except (FaceModelBusy, OSError, ValueError) as exc:
                    st.error(f"Cannot remove {model['name']}: {exc}")
                else:
                    st.rerun(scope="app")


def show_fit(status: dict) -> None:
    from synface.fitting.jobs import STAGES

    st.markdown(f"**Fit `{status['name']}`** from `{status.get('photos')}`: {status['state']}")
    common.show_job(status, STAGES, stop_key=f"btn.gen.fit.stop.{status['name']}")  # its stages, and Stop while it runs
    if status["state"] == "finished":
        card = status.get("card") or {}
        st.success(f"Model {status['name']} is ready ({card.get('people_fitted', '?')} people, "
                   f"{card.get('images_fitted', '?')} photos): choose it in the face model list.")
    elif status["state"] == "failed":
        st.error(f"The fit failed: {status['error']}")
    elif status["state"] == "stopped":
        st.warning(f"The fit stopped before it finished; start it again to resume. Log: `{status['log']}`")


@st.fragment(run_every=1.0)
def fit_progress(name: str) -> None:
    """Polls a running fit; when it ends, the whole page reruns so the model joins the picker."""
    from synface.fitting.jobs import fit_status

    status = fit_status(name, common.workspace())
    show_fit(status)
    if not status["alive"]:
        st.rerun(scope="app")
