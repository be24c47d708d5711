"""Features (Figure 3): embeddings of up to four datasets under one model, UMAP, selection gallery, class stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ui import common

MAX_SETS = 4
RESULT_KEY = "features_result"  # not a widget key: holds arrays, must not be re-assigned each run
COLOUR_BASE = ["dataset", "identity", "phi"]


@st.cache_data(show_spinner=False, max_entries=8)
def _umap(cache_paths: tuple[str, ...], n_components: int, n_neighbors: int, min_dist: float) -> np.ndarray:
    from synface.analysis.features import FeatureSet
    from synface.analysis.umap_embed import embed_umap

    feats = np.concatenate([FeatureSet.load(p).features for p in cache_paths])
    return embed_umap(feats, n_components, n_neighbors, min_dist, seed=0)


@st.cache_data(show_spinner=False, max_entries=16)
def _stats(cache_path: str) -> dict:
    from synface.analysis.class_stats import class_statistics
    from synface.analysis.features import FeatureSet

    fs = FeatureSet.load(cache_path)
    return class_statistics(fs.features, fs.labels)


def _controls() -> tuple[object, list[str], int] | None:
    from synface.analysis.features import DLIB, list_checkpoints, list_datasets

    ckpts = list_checkpoints()
    models = {"dlib descriptor (reference model trained on real photos)": DLIB}
    models.update({f"{c['name']} ({c['id']}, {c['status']})": c["path"] for c in ckpts})
    model_label = st.selectbox("Model", list(models), key="feat.model",
                               help="A training run's last checkpoint, or dlib's real-face descriptor.")
    # one entry per source: a registered copy of the sidebar's LFW folder stands for it
    options = {d["label"]: d["path"] for d in list_datasets(lfw=common.lfw_path())}
    chosen = st.multiselect(f"Datasets (up to {MAX_SETS})", list(options), key="feat.sets", max_selections=MAX_SETS)
    other = st.text_input("Another dataset folder (optional)", key="feat.other",
                          help="A synthetic set, an ImageFolder of aligned crops, or an LFW-layout folder.")
    paths = [options[c] for c in chosen]
    if other.strip():
        try:
            paths.append(str(common.readable(other, "dataset folder")))
        except ValueError as exc:
            st.error(str(exc))
    max_images = st.number_input("Images per dataset (whole identities are kept)", 50, 20000, 1000, 50, key="feat.max")
    if not ckpts:
        st.caption("No training checkpoints yet: train a model on the Train page, or use the dlib reference.")
    if not st.button("Extract features", type="primary", key="feat_go"):
        return None
    if not paths:
        st.warning("Choose at least one dataset.")
        return None
    if len(paths) > MAX_SETS:
        st.warning(f"Using the first {MAX_SETS} datasets.")
    return models[model_label], paths[:MAX_SETS], int(max_images)


def _extract(model: object, paths: list[str], max_images: int) -> None:
    from synface.analysis.features import extract_features

    done = []
    for path in paths:
        bar = st.progress(0.0, text=f"Embedding {path} ...")
        fs = extract_features(model, path, max_images,
                              progress=lambda d, t, b=bar, p=path: b.progress(min(1.0, d / max(t, 1)), text=f"{p}: {d}/{t}"))
        bar.progress(1.0, text=f"{fs.dataset}: {len(fs)} images ({'cache' if fs.from_cache else 'extracted'})")
        done.append(fs.cache_path)
    st.session_state[RESULT_KEY] = done


def _selected_rows(event, fig) -> list[int]:
    rows: list[int] = []
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, list):
            cd = cd[0] if cd else None
        if cd is None and p.get("curve_number") is not None:
            trace = fig.data[p["curve_number"]]
            cd = trace.customdata[p["point_index"]]
        if cd is not None:
            rows.append(int(cd))
    return rows


GALLERY = 32


def _gallery(df: pd.DataFrame, rows: list[int]) -> None:
    from synface.analysis.features import gallery_order, load_image_112

    ordered = gallery_order(df["dataset"].to_numpy(), rows)
    pages = max(1, -(-len(ordered) // GALLERY))
    c1, c2 = st.columns([3, 1])
    c1.markdown(f"**{len(rows)} selected**, {GALLERY} per page, taking turns by dataset")
    if int(st.session_state.get("feat.gallery_page", 1)) > pages:  # a smaller selection than the last one
        st.session_state["feat.gallery_page"] = 1
    page = int(c2.number_input(f"page (of {pages})", 1, pages, key="feat.gallery_page")) if pages > 1 else 1
    shown = df.iloc[ordered[(page - 1) * GALLERY: page * GALLERY]]
    images = []
    for path in shown["path"]:
        try:
            images.append(load_image_112(path, lfw_crop=True))
        except Exception:  # noqa: BLE001 - a vanished file shows as grey
            images.append(np.full((112, 112, 3), 128, np.uint8))
    cols = 8
    st.image(common.tile(np.stack(images), cols), caption=" | ".join(shown["identity"].astype(str).head(8)) + " ...",
             width="stretch")
    st.dataframe(shown.drop(columns=["row"]), hide_index=True)


def _results() -> None:
    from synface.analysis.class_stats import class_table
    from synface.api import feature_frame, umap_figure

    paths = st.session_state.get(RESULT_KEY)
    if not paths:
        st.info("Choose a model and datasets, then **Extract features**. Results are cached, so a second look is instant.")
        return
    df = feature_frame(paths)
    c1, c2, c3, c4 = st.columns(4)
    attrs = [c for c in df.columns if c not in ("path", "label", "partner", "row", "dataset", "domain", "identity", "phi")]
    colour = c1.selectbox("Colour by", COLOUR_BASE + attrs, key="feat.colour")
    dims = c2.radio("UMAP", ["2-D", "3-D"], horizontal=True, key="feat.dims")
    neighbours = c3.slider("Neighbours", 5, 50, 15, key="feat.nn")
    min_dist = c4.slider("Min distance", 0.0, 0.99, 0.1, key="feat.md")
    with st.spinner(f"UMAP of {len(df)} points ..."):
        coords = _umap(tuple(paths), 3 if dims == "3-D" else 2, neighbours, float(min_dist))
    fig = umap_figure(paths, colour=colour, coords=coords)  # Figure 3, as a notebook draws it
    if dims == "2-D":
        event = st.plotly_chart(fig, on_select="rerun", selection_mode=("box", "lasso"), key="feat_plot")
        rows = _selected_rows(event, fig)
        if rows:
            _gallery(df, rows)
        else:
            st.caption("Draw a box or lasso on the plot to see those faces.")
    else:
        st.plotly_chart(fig)
        st.caption("Selection works in the 2-D view.")
    st.subheader("Intra- vs inter-class similarity")
    st.caption("Mean cosine between two images of one identity (intra) and of two identities (inter). "
               "The paper's finding: synthetic identities vary less (higher intra) than real people.")
    from synface.analysis.features import FeatureSet

    stats = {FeatureSet.load(p).dataset: _stats(p) for p in paths}
    st.dataframe(class_table(stats), hide_index=True)


def main() -> None:
    st.title("Features")
    st.caption("Figure 3: where synthetic and real faces land in a recogniser's embedding space.")
    from synface.analysis.umap_embed import warmup_umap

    warmup_umap()  # idempotent; compiles UMAP in the background while features are extracted
    with common.page_errors("Feature extraction"):
        request = _controls()
        if request is not None:
            st.session_state.pop(RESULT_KEY, None)
            _extract(*request)
    with common.page_errors("Feature view"):
        _results()


common.require_access()  # also when this page is reached before app.py's navigation

with common.page_errors("Features"):
    main()
