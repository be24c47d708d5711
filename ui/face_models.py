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


#: why the Generator hides the source people's names unless asked
NAMES_NOTE = ("Source people are real people whose photos the model was learned from; their names are hidden by "
              "default so that screenshots and shared screens do not tie a synthetic face to a real person.")


def anonymous_names(people: int) -> list[str]:
    """'source person k' for each reflectance-bank person: what the editor shows by default."""
    return [f"source person {k}" for k in range(people)]


def bank_names(model) -> list[str]:
    """'k: name' of each reflectance-bank person (the card's names, in bank order; both checked
    when the model loaded); shown only on request."""
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
        show_names = st.toggle("show source people's names", key="gen.learned.names", persist_state="session",
                               help=NAMES_NOTE)
        names = bank_names(model) if show_names else anonymous_names(model.people)
        st.caption(NAMES_NOTE if not show_names else "Names shown: " + NAMES_NOTE.split(";")[0].lower() + ".")
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


@st.cache_data(max_entries=16, ttl=60, show_spinner=False)
def photo_count(folder: str, people: int, folds: tuple[int, ...]) -> tuple[int, int]:
    """(people, photos) a fit of these settings would use (a DataError's message as a ValueError)."""
    from synface.fitting.photos import find_photos

    found = find_photos(folder, people=people or None, folds=list(folds) or None)
    return len(found.people), len(found.files)


def fold_picker(folder: str) -> list[int]:
    """LFW copies: the people.txt folds to fit on (1-based; default 1-3), and the folds that stay
    unseen for evaluation. Other folders: [] (every person)."""
    from synface.data.realsets import lfw_fold_count

    try:
        folds = lfw_fold_count(folder) if folder else None
    except (OSError, ValueError):
        folds = None
    if not folds:
        return []
    options = list(range(1, folds + 1))
    if "gen.fit.folds" not in st.session_state or not set(st.session_state["gen.fit.folds"]) <= set(options):
        st.session_state["gen.fit.folds"] = options[:3] if folds > 3 else []
    chosen = st.multiselect(f"LFW folds to fit on (people.txt has {folds})", options, key="gen.fit.folds",
                            persist_state="session",
                            help="The model learns these folds' people; evaluate on the other folds, whose people "
                                 "it never saw. Empty: every person of the folder.")
    rest = [f for f in options if f not in chosen]
    if chosen and rest:
        st.caption(f"Fits the people of folds {', '.join(map(str, chosen))}; evaluate on folds "
                   f"{', '.join(map(str, rest))} (register LFW on the Datasets page with training folds "
                   f"{', '.join(map(str, chosen))} and choose that set on the Train page).")
    else:
        st.caption("Every person of the folder: a run that evaluates on this LFW copy's pairs will be refused "
                   "(its faces would be built from the people it is tested on).")
    return chosen


def fit_estimate(folder: str, people: int, folds: list[int]) -> None:
    """How long the fit will take, from the rates the last finished fit here measured."""
    from synface.fitting.jobs import estimate_fit

    try:
        n_people, n_photos = photo_count(folder, people, tuple(folds))
    except (OSError, ValueError) as exc:
        st.caption(f"Cannot fit this folder: {exc}")
        return
    found = estimate_fit(n_photos, common.workspace())
    if found is None:
        st.caption(f"{n_people:,} people, {n_photos:,} photos. No fit has finished in this workspace yet, so there "
                   "is no measured rate to estimate from; each stage shows its progress while it runs.")
        return
    seconds, rates = found
    st.caption(f"{n_people:,} people, {n_photos:,} photos: about {max(1, round(seconds / 60))} min "
               f"({sum(rates.per_photo.values()):.2f} s per photo plus {rates.fixed_s:.0f} s that do not grow with "
               f"the photos, as fit '{rates.name}' of {rates.photos:,} photos measured here; a busier machine "
               "takes longer).")


def fit_expander() -> None:
    """Folder, name, LFW folds and people count -> a detached `face-model fit`, with its progress per stage."""
    from synface.fitting.jobs import fit_jobs, fit_status, launch_fit

    s = st.session_state
    for k, v in {"gen.fit.photos": str(common.DEFAULT_LFW) if common.DEFAULT_LFW.is_dir() else "",
                 "gen.fit.name": "learned", "gen.fit.people": 0}.items():
        common.default(k, v)
    with st.expander("Fit a face model from a folder"):
        st.caption("A folder of <person>/<photo> images, or an LFW copy (images/ + people.txt). dlib finds 68 points "
                   "per photo; the head is fitted to them and each person's skin colours are read from the photos. "
                   "The fit runs in the background and the model then appears in the face model list.")
        c1, c2, c3 = st.columns([3, 2, 1])
        c1.text_input("photo folder", key="gen.fit.photos", persist_state="session")
        c2.text_input("model name", key="gen.fit.name", persist_state="session",
                      help="face_models/<name>/ in the workspace: letters, digits, '.', '_' and '-'")
        c3.number_input("people (0: all)", 0, 1_000_000, step=1, key="gen.fit.people", persist_state="session",
                        help="use only the first N people (of the chosen folds), sorted by name")
        try:
            photos = str(common.readable(str(s["gen.fit.photos"]), "photo folder")) if str(s["gen.fit.photos"]).strip() else ""
        except ValueError as exc:
            st.error(str(exc))
            photos = ""
        folds = fold_picker(photos)
        if photos:
            fit_estimate(photos, int(s["gen.fit.people"]), folds)
        if st.button("Fit", key="btn.gen.fit"):
            try:
                if not photos:
                    raise ValueError("give a photo folder the app may read")
                launch_fit(photos, str(s["gen.fit.name"]).strip(), common.workspace(),
                           people=int(s["gen.fit.people"]) or None, folds=folds or None)
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

    folds = (status.get("info") or {}).get("folds")
    which = f" (LFW folds {', '.join(map(str, folds))})" if folds else ""
    st.markdown(f"**Fit `{status['name']}`** from `{status.get('photos')}`{which}: {status['state']}")
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
