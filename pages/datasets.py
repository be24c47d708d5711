"""Datasets page: configure, preview and build synthetic sets; browse them; register real sets.

Small sets build inside the script run with a progress bar (a few seconds). Bigger ones (or any,
with "in the background") build as a background job, `python -m synface generate --config ...`
(`synface.data.jobs`): it survives reruns, page switches and app restarts, every session sees the
same job instead of starting a duplicate, and the page follows it from a fragment. Builds are
resumable (`build_dataset` skips images already on disk), so a stopped build continues where it
stopped when started again. Real sets register as a background job too (`python -m synface real
add`). A set's face model is a choice (the built-in head or a learned model of the workspace); a
learned model's sets can keep every identity a minimum distance from the model's source people,
and their cards report how near the identities come.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import streamlit as st

from ui import common, privacy
from synface.base.names import child_path
from synface.data import jobs as data_jobs
from synface.data.errors import DataError
from synface.data.synth_set import SynthSet
from synface.data.synthetic import (
    ATTRIBUTES,
    OnTheFlyDataset,
    SynthConfig,
    build_dataset,
)
from synface.generator import SHARED_RENDER_LOCK

#: builds up to this many images run in the script run; bigger ones as a background job
INLINE_BUILD_LIMIT = 600
#: a learned model's build checks identities against its source people (about half a second
#: each on a laptop CPU): more identities than this build in the background
INLINE_CHECK_LIMIT = 24
PREVIEW_IDS, PREVIEW_SAMPLES = 3, 5


# ----------------------------------------------------------------------------- config


def init_state() -> None:
    for key, value in {"ds.ids": 100, "ds.samples": 10, "ds.seed": 0, "ds.im": False, "ds.phi_range": (0.0, 1.0),
                       "ds.phi_step": 0.05, "ds.purpose": "train", "ds.format": "jpg", "ds.name": "",
                       "ds.real_path": "", "ds.real_name": "", "ds.real_align": True, "ds.model": "builtin",
                       "ds.background": False, "ds.context": "plain", "ds.context_per_id": False, "ds.distinct": False,
                       "ds.camera_match": True}.items():
        common.default(key, value)
    for attr in ATTRIBUTES:
        common.default(f"ds.{attr}", "vary")
        common.default(f"ds.{attr}_scale", 1.0)


def phi_grid(lo: float, hi: float, step: float) -> tuple[float, ...]:
    n = int(round((hi - lo) / step))
    return tuple(sorted({round(min(hi, lo + i * step), 3) for i in range(n + 1)} | {round(hi, 3)}))


def config_from_state() -> SynthConfig:
    """The SynthConfig the widgets describe (DataError with the key on a bad value)."""
    s = st.session_state
    lo, hi = s["ds.phi_range"]
    values = dict(ids=int(s["ds.ids"]), samples=int(s["ds.samples"]), seed=int(s["ds.seed"]), im=bool(s["ds.im"]),
                  phi_grid=phi_grid(float(lo), float(hi), float(s["ds.phi_step"])), purpose=s["ds.purpose"],
                  image_format=s["ds.format"], name=str(s["ds.name"]).strip(), model=str(s["ds.model"]),
                  min_source_distance=float(s["ds.min_dist"]) if s["ds.model"] != "builtin" else 0.0,
                  distinct_sources=bool(s["ds.distinct"]) and s["ds.model"] != "builtin")
    if s["ds.model"] != "builtin" and s["ds.context"] != "plain":
        values.update(context=str(s["ds.context"]), contexts_per_identity=bool(s["ds.context_per_id"]),
                      min_context_distance=float(s["ds.min_dist"]), camera_match=bool(s["ds.camera_match"]))
    for attr in ATTRIBUTES:
        values[attr] = s[f"ds.{attr}"]
        values[f"{attr}_scale"] = float(s[f"ds.{attr}_scale"])
    return SynthConfig(**values)


@st.cache_data(max_entries=32, show_spinner="Rendering a preview ...")
def preview(config_json: str) -> tuple[np.ndarray, list[str]]:
    """A few images of the configured set, rendered on the fly (nothing written); a set of that
    name already built lends its stored checks, so its redrawn rows look as built."""
    config = SynthConfig.from_dict(json.loads(config_json))
    ids = min(PREVIEW_IDS, config.ids)
    ks = min(PREVIEW_SAMPLES, config.samples)
    indices = [i * config.samples + k for i in range(ids) for k in range(ks)]
    folder = child_path(common.datasets_dir(), config.name, "dataset name")
    with SHARED_RENDER_LOCK:
        batch = OnTheFlyDataset(config, common.get_generator(config.model), workspace=common.workspace(),
                                folder=folder if folder.is_dir() else None).get_batch(indices)
    labels, weights = batch["labels"].numpy(), batch["weights"].numpy()
    captions = []
    for (a, b), (wa, _) in zip(labels, weights):
        captions.append(f"id {a}" if b < 0 else f"id {a} x {b}, phi={wa:.2f}")
    return common.tile(batch["images"].numpy(), cols=ks), captions


def model_controls() -> None:
    """The face model of the set, and (learned models) the minimum distance to their source people."""
    names = common.model_names()
    if st.session_state["ds.model"] not in names:
        st.session_state["ds.model"] = "builtin"
    c1, c2 = st.columns([2, 1])
    c1.selectbox("face model", names, key="ds.model", persist_state="session",
                 help="builtin: the procedural head; learned models are fitted from photographs on the Generator page")
    model = st.session_state["ds.model"]
    if model != "builtin":
        from synface.data.synth_model import privacy_floor

        floor = privacy_floor(model, common.workspace())
        if st.session_state.get("ds.min_dist_model") != model:  # privacy on by default, for each model chosen
            st.session_state["ds.min_dist"], st.session_state["ds.min_dist_model"] = floor, model
        c2.number_input("min source distance", 0.0, 2.0, step=0.001, format="%.3f", key="ds.min_dist",
                        persist_state="session",
                        help="redraw every identity closer than this (dlib descriptor distance) to a person of the "
                             f"model's source photos. Default {floor:.3f}: the model card's strangers' 1st percentile "
                             "(only 1% of real strangers come closer to a source person). 0 keeps every draw. The "
                             "card reports the distances either way.")
        if float(st.session_state["ds.min_dist"]) < floor:
            c2.caption(f"Below the default {floor:.3f}: identities may come closer to a real source person "
                       "than 99% of real strangers do.")
        c1.checkbox("distinct source people", key="ds.distinct", persist_state="session",
                    help="each identity's facial regions come from the source people that earlier identities used "
                         "least: identities share a region's person only when the set outgrows the model's bank")
        c1.radio("context", ["plain", "photo", "background"], key="ds.context", persist_state="session",
                 horizontal=True,
                 help="photo: each face replaces the face of one of the model's source photos (their hair, ears, "
                      "clothes and scene stay); background: the whole head over the photo; plain: the procedural "
                      "background. A composite closer than the min source distance to its photo's person is "
                      "redrawn into another photo.")
        if st.session_state["ds.context"] != "plain":
            c1.checkbox("one context photo per identity", key="ds.context_per_id", persist_state="session")
            c1.checkbox("match the photo's camera", key="ds.camera_match", persist_state="session",
                        help="the drawn face takes its photo's colour, blur, grain and JPEG level, with a soft "
                             "edge, so the seam between face and photo is no shortcut; off: faces as rendered")
            c1.caption("A context set contains real hair, ears, clothes and backgrounds of the source people: "
                       "share it as you would share the photos. 'plain' keeps none.")


def build_section() -> None:
    st.subheader("Build a synthetic set")
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("identities", 1, 1_000_000, step=1, key="ds.ids", persist_state="session")
    c2.number_input("samples per identity", 1, 10_000, step=1, key="ds.samples", persist_state="session")
    c3.number_input("seed", 0, 2**31 - 1, step=1, key="ds.seed", persist_state="session")
    c4.selectbox("purpose", ["train", "benchmark"], key="ds.purpose", persist_state="session",
                 help="benchmark sets use identity seeds disjoint from every training set")
    c1, c2, c3 = st.columns([1, 2, 1])
    c1.toggle("identity mixup (IM)", key="ds.im", persist_state="session")
    c2.slider("phi grid range", 0.0, 1.0, step=0.05, key="ds.phi_range", persist_state="session", disabled=not st.session_state["ds.im"])
    c3.selectbox("phi step", [0.05, 0.1, 0.25, 0.5], key="ds.phi_step", persist_state="session", disabled=not st.session_state["ds.im"])
    cols = st.columns(len(ATTRIBUTES))
    for col, attr in zip(cols, ATTRIBUTES):
        col.radio(attr, ["vary", "fixed"], key=f"ds.{attr}", persist_state="session", horizontal=True,
                  help="vary: drawn per image; fixed: drawn once per identity and held")
        col.slider(f"{attr} scale", 0.0, 3.0, step=0.1, key=f"ds.{attr}_scale", persist_state="session")
    c1, c2 = st.columns([2, 1])
    c1.text_input("name (empty: paper-style name)", key="ds.name", persist_state="session",
                  help="The set's folder under datasets/: letters, digits, '.', '_' and '-' (up to 100).")
    c2.selectbox("image format", ["jpg", "png"], key="ds.format", persist_state="session")
    model_controls()

    try:
        config = config_from_state()
    except DataError as exc:
        st.error(str(exc))
        return
    out = child_path(common.datasets_dir(), config.name, "dataset name")  # the config has checked the name too
    st.markdown(f"**{config.name}**: {config.ids} identities x {config.samples} = {config.num_images} images"
                + (f", IM phi grid {list(config.phi_grid)}" if config.im else "") + f" -> `{out}`")
    grid, captions = preview(json.dumps(config.to_dict()))
    mixed = [c for c in captions if "phi" in c]
    st.image(grid, width="stretch",
             caption="Preview rendered on the fly (nothing written): rows = identities, columns = samples"
                     + (f"; mixed samples: {', '.join(mixed[:6])}" if mixed else ""))

    job = data_jobs.build_status(config.name, common.workspace())
    if SynthSet(out).is_complete():
        st.success(f"{config.name} is built (see the list below).")
        return
    if job["alive"]:
        common.follow_job(data_jobs.BUILD, config.name, f"Building **{config.name}** in the background",
                          stages=[data_jobs.build_stage(config.name)], stop_key="btn.ds.stop")
        return
    inline = config.num_images <= INLINE_BUILD_LIMIT and (config.model == "builtin" or config.ids <= INLINE_CHECK_LIMIT)
    background = st.toggle("in the background", key="ds.background", persist_state="session", disabled=not inline,
                           help="a background build goes on while you use other pages; bigger sets always "
                                "build in the background") or not inline
    if st.button("Build", key="btn.ds.build", type="primary"):
        if not background:
            build_inline(config, out)
        else:
            data_jobs.start_build(config, out, common.workspace(), common.generator_device())
            st.rerun()
    elif job["state"] == "failed":
        st.error(f"The last build of {config.name} failed: {job_error(job)}")
    elif job["state"] == "stopped":
        done, total = data_jobs.images_done(job)
        st.info(f"The build of {config.name} was stopped at {done} / {total} images; "
                f"Build resumes it where it stopped.")


def job_error(job: dict) -> str:
    """A failed job's error line (without 'error: '), else its last lines."""
    error = job.get("error") or ""
    return error.removeprefix("error: ") or job.get("tail") or f"exit code {job.get('exit_code')}"


def build_inline(config: SynthConfig, out: Path) -> None:
    """A small set built in this script run, with a progress bar."""
    bar = st.progress(0.0, text="building ...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(1, total), text=f"{done} / {total} images")

    def check_progress(done: int, total: int) -> None:
        bar.progress(done / max(1, total), text=f"source-distance check: {done} / {total} identities")

    report = build_dataset(config, out, common.get_generator(config.model), progress=progress,
                           workspace=common.workspace(), check_progress=check_progress)
    st.success(f"Built {report.name}: {report.num_images} images in {report.seconds:.1f} s "
               f"({report.images_per_s:.0f} images/s)")


# ----------------------------------------------------------------------------- browsing


def built_sets() -> tuple[list[dict], list[Path]]:
    """Cards of complete sets and folders of interrupted builds in the workspace."""
    root = common.datasets_dir()
    cards, partial = [], []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            synth = SynthSet(folder)
            if synth.is_complete():
                try:
                    card = synth.card()
                except DataError:
                    partial.append(folder)
                    continue
                card["_path"] = str(folder)
                cards.append(card)
            elif synth.is_building():
                partial.append(folder)
    return cards, partial


def sample_grid(folder: Path, ids: int = 6, per_id: int = 2) -> np.ndarray | None:
    """Images of the first identities of a built set, 3 identities per row."""
    from synface.data.imageio import read_rgb

    images = []
    for ident in sorted(p for p in folder.iterdir() if p.is_dir())[:ids]:
        for f in sorted(f for f in ident.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))[:per_id]:
            with contextlib.suppress(DataError):  # a damaged image is left out of the preview
                images.append(np.asarray(read_rgb(f).resize((112, 112))))
    return common.tile(np.stack(images), cols=min(len(images), 3 * per_id)) if images else None


def browse_section() -> None:
    import pandas as pd

    st.subheader("Synthetic sets in the workspace")
    cards, partial = built_sets()
    for folder in partial:
        st.caption(f"Interrupted build: `{folder.name}` (build it again with the same settings to resume).")
    if not cards:
        st.info(f"No synthetic sets yet in `{common.datasets_dir()}`.")
        return
    rows = [{"name": c["name"], "identities": c.get("num_identities"), "images": c.get("num_images"),
             "IM": c.get("config", {}).get("im"), "pose": c.get("config", {}).get("pose"),
             "expression": c.get("config", {}).get("expression"),
             "illumination": c.get("config", {}).get("illumination"), "seed": c.get("seed"),
             "model": c.get("model") or c.get("config", {}).get("model", "builtin"),
             "under pair threshold": privacy.share((c.get("privacy") or {}).get("share_under_threshold")),
             "generator": c.get("generator_version"), "created": c.get("created")} for c in cards]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    names = [c["name"] for c in cards]
    common.default("ds.browse", names[0])
    if st.session_state["ds.browse"] not in names:
        st.session_state["ds.browse"] = names[0]
    choice = st.selectbox("inspect", names, key="ds.browse", persist_state="session")
    card = cards[names.index(choice)]
    c1, c2 = st.columns([3, 2])
    grid = sample_grid(Path(card["_path"]))
    if grid is not None:
        c1.image(grid, caption="first identities, 2 samples each", width="stretch")
    with c2.expander("dataset card (dataset.json)"):
        st.json({k: v for k, v in card.items() if not k.startswith("_")}, expanded=False)
    if card.get("privacy"):
        privacy.privacy_section(card["privacy"])


# ----------------------------------------------------------------------------- real sets


def lfw_fold_picker(path: str) -> list[int] | None:
    """An LFW copy with people.txt: which folds train (0-based; [] a test set only). None otherwise."""
    from synface.data.realsets import lfw_fold_count

    folds = lfw_fold_count(path)
    if folds is None:
        st.caption("No people.txt: every identity of the folder trains, and a run that also scores its pairs "
                   "is refused at launch.")
        return None
    options = list(range(1, folds + 1))
    if not set(st.session_state.get("ds.real_train_folds") or []) <= set(options):
        st.session_state["ds.real_train_folds"] = []
    chosen = st.multiselect(f"people.txt folds for training (of {folds})", options, key="ds.real_train_folds",
                            persist_state="session",
                            help="Their people train; the pairs of the other folds test, identity-disjoint.")
    rest = [f for f in options if f not in chosen]
    if not chosen:
        st.caption("No fold chosen: a test set only (every pairs fold scores).")
    elif not rest:
        st.caption("Every fold trains: the set has no test pairs left.")
    else:
        st.caption(f"Folds {', '.join(map(str, chosen))} train; the pairs of folds {', '.join(map(str, rest))} test.")
    return [f - 1 for f in chosen]


def real_section() -> None:
    import pandas as pd

    from synface.data.realsets import FORMATS, default_set_name, detect_format, list_real_sets

    st.subheader("Real sets")
    st.caption("A folder (<identity>/<image>, or an LFW copy with pairs.txt), an insightface .bin (CFP-FP, AgeDB-30, "
               "CALFW, CPLFW, ...), or a RecordIO train.rec. Image folders are aligned to the ArcFace template into the "
               "workspace. Every .bin and every LFW copy with test pairs is offered to each run on the Train page.")
    c1, c2, c3 = st.columns([3, 1, 1])
    c1.text_input("path", key="ds.real_path", persist_state="session", placeholder="/data/lfw")
    c2.text_input("name (optional)", key="ds.real_name", persist_state="session")
    c3.toggle("align", key="ds.real_align", persist_state="session")
    path = str(st.session_state["ds.real_path"]).strip()
    if path:
        train_folds = None
        try:
            path = str(common.readable(path, "real set path"))
            fmt = detect_format(path)
            st.caption(f"Detected: {FORMATS[fmt]}")
            if fmt == "lfw":
                train_folds = lfw_fold_picker(path)
        except (DataError, ValueError) as exc:
            st.error(f"Cannot use this path: {exc}")
            fmt = None
        if fmt and st.button("Register", key="btn.ds.register"):
            name = str(st.session_state["ds.real_name"]).strip() or default_set_name(path)
            try:
                data_jobs.start_register(path, name, align=bool(st.session_state["ds.real_align"]),
                                         train_folds=train_folds, workspace=common.workspace())
            except (DataError, OSError, ValueError) as exc:
                st.error(f"Cannot register {path}: {exc}")
            else:
                st.session_state["ds.real_job"] = name
                st.rerun()
    registration(path)
    sets = list_real_sets()
    if sets:
        st.dataframe(pd.DataFrame([{"name": s.name, "format": s.format, "identities": s.identities, "images": s.images,
                                    "pairs": s.pairs, "training folds": _folds(s.train_folds),
                                    "test folds": "-" if not s.can_verify or s.format != "lfw" else
                                    "all" if s.test_folds is None else _folds(s.test_folds),
                                    "verification set": s.can_verify, "aligned copy": s.aligned or "-",
                                    "source": s.source} for s in sets]), hide_index=True, width="stretch")
        browse_real(sets)
    else:
        st.info("No real sets registered yet.")


def browse_real(sets: list) -> None:
    """A few faces of a registered real set: its first identities (folders) or first pairs (.bin)."""
    names = [s.name for s in sets]
    if st.session_state.get("ds.real_browse") not in names:
        st.session_state["ds.real_browse"] = names[0]
    choice = st.selectbox("inspect a real set", names, key="ds.real_browse", persist_state="session")
    entry = sets[names.index(choice)]
    try:
        grid, caption = real_samples(entry)
    except (DataError, OSError, ValueError) as exc:
        st.warning(f"Cannot show {choice}: {exc}")
        return
    if grid is None:
        st.caption(f"{choice}: no images to show ({entry.format}).")
    else:
        st.image(grid, caption=caption, width="stretch")


def real_samples(entry) -> tuple[np.ndarray | None, str]:
    """(grid, caption) of a real set's first faces: 6 identities x 2 images, or 6 pairs of a .bin."""
    from synface.data.eval_sets import load_pairs

    if entry.format == "bin":
        pairs = load_pairs(entry.source)
        shown = min(6, len(pairs))
        images = [np.asarray(pairs.load_image(i, side).convert("RGB").resize((112, 112)))
                  for i in range(shown) for side in (0, 1)]
        same = ", ".join("same" if pairs.issame[i] else "different" for i in range(shown))
        return (common.tile(np.stack(images), cols=4) if images else None), f"first {shown} pairs: {same}"
    folder = entry.aligned or entry.train_root
    if folder is None and entry.format == "lfw":
        folder = str(Path(entry.source) / "images") if (Path(entry.source) / "images").is_dir() else entry.source
    if folder is None or not Path(folder).is_dir():
        return None, ""
    what = "aligned copy" if entry.aligned else "training people" if entry.train_root else "images"
    return sample_grid(Path(folder)), f"first identities of the {what}, 2 images each"


def registration(path: str) -> None:
    """The registrations running in the background, and how this session's last one of `path` ended."""
    from synface.base import jobs
    from synface.data.realsets import get_real_set

    for job in jobs.list_jobs(data_jobs.REGISTER, common.workspace()):
        if job["alive"]:
            common.follow_job(data_jobs.REGISTER, job["key"], f"Registering **{job['key']}** from "
                              f"`{job['info'].get('path')}`", stop_key=f"btn.ds.register.stop.{job['key']}")
    name = st.session_state.get("ds.real_job")
    job = data_jobs.register_status(name, common.workspace()) if name else None
    if job is None or job["alive"] or job["info"].get("path") != path:
        return
    if job["state"] == "failed":
        st.error(f"Cannot register {job['info'].get('path')}: {job_error(job)}")
    elif job["state"] == "stopped":
        st.info(f"The registration of {name} was stopped; Register resumes its alignment where it stopped.")
    elif job["state"] == "finished":
        try:
            entry = get_real_set(name, common.workspace())
        except (DataError, KeyError, ValueError) as exc:
            st.error(f"Registered {name}, but it does not read back: {exc}")
            return
        msg = f"Registered {entry.describe()}"
        if entry.align_report:
            r = entry.align_report
            msg += f"; aligned {r.get('detector', 0)} by detector, {r.get('fallback', 0)} by fallback"
        st.success(msg)


def _folds(folds: list[int] | None) -> str:
    return "-" if folds is None else ", ".join(str(f + 1) for f in folds) or "none"


def main() -> None:
    st.title("Datasets")
    init_state()
    build, browse, real = st.tabs(["Build", "Browse", "Real sets"])
    with build:
        with common.page_errors("Building"):
            build_section()
    with browse:
        with common.page_errors("Browsing"):
            browse_section()
    with real:
        with common.page_errors("Real sets"):
            real_section()


common.require_access()  # also when this page is reached before app.py's navigation

with common.page_errors("The datasets page"):
    main()
