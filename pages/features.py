"""Features (Figure 3): embeddings of up to four datasets under one model, UMAP, selection gallery, class stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ui import common

MAX_SETS = 4
RESULT_KEY = "features_result"  # not a widget key: holds arrays, must not be re-assigned each run
COLOUR_BASE = ["dataset", "identity", "phi"]
#: synthetic sets in blues, real ones in oranges (one shade per set, up to MAX_SETS of each), and
#: real faces drawn as diamonds: the two domains never share a hue or a marker
HUES = {"synthetic": ["#08519c", "#3182bd", "#6baed6", "#9ecae1"],
        "real": ["#a63603", "#e6550d", "#fd8d3c", "#fdae6b"]}
SYMBOLS = {"synthetic": "circle", "real": "diamond"}
NO_VALUE = "#9e9e9e"  # points without the coloured value (real faces have no phi)


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
                              progress=lambda d, t, b=bar: b.progress(min(1.0, d / max(t, 1)), text=f"{path}: {d}/{t}"))
        bar.progress(1.0, text=f"{fs.dataset}: {len(fs)} images ({'cache' if fs.from_cache else 'extracted'})")
        done.append(fs.cache_path)
    st.session_state[RESULT_KEY] = done


def _frame(cache_paths: list[str]) -> pd.DataFrame:
    from synface.analysis.features import FeatureSet

    parts = []
    for p in cache_paths:
        fs = FeatureSet.load(p)
        meta = fs.meta.copy()
        meta.insert(0, "dataset", fs.dataset)
        meta.insert(1, "domain", fs.domain)
        parts.append(meta)
    df = pd.concat(parts, ignore_index=True)
    df["row"] = np.arange(len(df))
    return df


def _dataset_colours(df: pd.DataFrame) -> dict[str, str]:
    """A hue per dataset: blues for synthetic sets, oranges for real ones, in order of appearance."""
    out: dict[str, str] = {}
    used = {"synthetic": 0, "real": 0}
    for name, domain in df[["dataset", "domain"]].drop_duplicates().itertuples(index=False):
        hues = HUES.get(domain, HUES["real"])
        out[name] = hues[used.get(domain, 0) % len(hues)]
        used[domain] = used.get(domain, 0) + 1
    return out


def _figure(df: pd.DataFrame, coords: np.ndarray, colour: str):
    import plotly.graph_objects as go

    three_d = coords.shape[1] == 3
    fig = go.Figure()
    hover = (df["dataset"] + " (" + df["domain"] + ") / " + df["identity"].astype(str)).to_numpy()
    symbols = df["domain"].map(SYMBOLS).fillna("circle").to_numpy()
    rows = df["row"].to_numpy()

    def add(idx, name: str, marker: dict) -> None:
        marker = {"size": _marker_size(len(idx)), "symbol": symbols[idx], **marker}
        args = {"x": coords[idx, 0], "y": coords[idx, 1], "mode": "markers", "name": name, "marker": marker,
                "customdata": rows[idx], "text": hover[idx], "hoverinfo": "text"}
        fig.add_trace(go.Scatter3d(z=coords[idx, 2], **args) if three_d else go.Scattergl(**args))

    if colour == "dataset":
        hues = _dataset_colours(df)
        groups = df.groupby(["dataset", "domain"], sort=False).indices.items()
        for (name, domain), idx in sorted(groups, key=lambda g: -len(g[1])):  # small sets drawn last, on top
            add(idx, f"{name} ({domain}, {len(idx)})", {"color": hues[name]})
    elif colour == "identity" or df[colour].dtype == object:
        groups = df.groupby(colour, sort=True).indices
        if len(groups) > 40:  # too many legend entries: colour by code, no legend
            codes = df[colour].astype("category").cat.codes.to_numpy()
            add(np.arange(len(df)), colour, {"color": codes, "colorscale": "Turbo"})
        else:
            for name, idx in groups.items():
                add(idx, str(name), {})
    else:
        values = pd.to_numeric(df[colour], errors="coerce").to_numpy(dtype=float)
        has = np.isfinite(values)
        if has.any():
            idx = np.flatnonzero(has)
            add(idx, colour, {"color": values[idx], "colorscale": "Viridis", "showscale": True,
                              "colorbar": {"title": colour}})
        if not has.all():  # kept visible, in grey: real faces have no phi, nor render attributes
            idx = np.flatnonzero(~has)
            real = bool((df["domain"].to_numpy()[idx] == "real").all())
            add(idx, f"real (no {colour})" if real else f"no {colour}", {"color": NO_VALUE})
    fig.update_layout(height=600, margin={"l": 10, "r": 10, "t": 30, "b": 10}, dragmode="lasso",
                      legend={"itemsizing": "constant"})
    return fig


def _marker_size(points: int) -> int:
    """Bigger markers for smaller groups: six points of a small folder must stand out among thousands."""
    return 4 if points > 500 else 7 if points > 50 else 11


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
    from synface.analysis.features import load_image_112

    from synface.analysis.features import gallery_order

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

    paths = st.session_state.get(RESULT_KEY)
    if not paths:
        st.info("Choose a model and datasets, then **Extract features**. Results are cached, so a second look is instant.")
        return
    df = _frame(paths)
    c1, c2, c3, c4 = st.columns(4)
    attrs = [c for c in df.columns if c not in ("path", "label", "partner", "row", "dataset", "domain", "identity", "phi")]
    colour = c1.selectbox("Colour by", COLOUR_BASE + attrs, key="feat.colour")
    dims = c2.radio("UMAP", ["2-D", "3-D"], horizontal=True, key="feat.dims")
    neighbours = c3.slider("Neighbours", 5, 50, 15, key="feat.nn")
    min_dist = c4.slider("Min distance", 0.0, 0.99, 0.1, key="feat.md")
    with st.spinner(f"UMAP of {len(df)} points ..."):
        coords = _umap(tuple(paths), 3 if dims == "3-D" else 2, neighbours, float(min_dist))
    fig = _figure(df, coords, colour)
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
