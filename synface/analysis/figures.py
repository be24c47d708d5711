"""The paper's figures as plotly figures: Figure 3's UMAP of real and synthetic features, Figure 4's
attribute chart. The Features and Attributes pages and notebooks (`synface.api`) draw the same
figures from here; no Streamlit.

Figure 3's colours: synthetic sets in blues, real ones in oranges (one shade per set), real faces
drawn as diamonds, so the two domains never share a hue or a marker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["HUES", "SYMBOLS", "feature_frame", "dataset_colours", "umap_figure", "marker_size", "attribute_figure"]

HUES = {"synthetic": ["#08519c", "#3182bd", "#6baed6", "#9ecae1"],
        "real": ["#a63603", "#e6550d", "#fd8d3c", "#fdae6b"]}
SYMBOLS = {"synthetic": "circle", "real": "diamond"}
NO_VALUE = "#9e9e9e"  # points without the coloured value (real faces have no phi)
#: more legend entries than this: colour by code, no legend
MAX_LEGEND = 40


def feature_frame(feature_sets: Sequence[Any]) -> pd.DataFrame:
    """One row per image of the feature sets (`FeatureSet`s or their cache files), in order: its
    metadata with `dataset`, `domain` and `row` (its position in the concatenated features)."""
    from synface.analysis.features import FeatureSet  # noqa: PLC0415

    parts = []
    for item in feature_sets:
        fs = FeatureSet.load(item) if isinstance(item, (str, Path)) else item
        meta = fs.meta.copy()
        meta.insert(0, "dataset", fs.dataset)
        meta.insert(1, "domain", fs.domain)
        parts.append(meta)
    df = pd.concat(parts, ignore_index=True)
    df["row"] = np.arange(len(df))
    return df


def dataset_colours(df: pd.DataFrame) -> dict[str, str]:
    """A hue per dataset: blues for synthetic sets, oranges for real ones, in order of appearance."""
    out: dict[str, str] = {}
    used = {"synthetic": 0, "real": 0}
    for name, domain in df[["dataset", "domain"]].drop_duplicates().itertuples(index=False):
        hues = HUES.get(domain, HUES["real"])
        out[name] = hues[used.get(domain, 0) % len(hues)]
        used[domain] = used.get(domain, 0) + 1
    return out


def umap_figure(df: pd.DataFrame, coords: np.ndarray, colour: str = "dataset"):
    """Figure 3: the UMAP coordinates (2 or 3 columns) of the rows of `feature_frame`, coloured by
    `colour` (dataset, identity, phi or an attribute column); each point's customdata is its row."""
    import plotly.graph_objects as go  # noqa: PLC0415

    if colour not in df.columns:
        raise ValueError(f"cannot colour by {colour!r}: the features have {', '.join(map(str, df.columns))}")
    three_d = coords.shape[1] == 3
    fig = go.Figure()
    hover = (df["dataset"] + " (" + df["domain"] + ") / " + df["identity"].astype(str)).to_numpy()
    symbols = df["domain"].map(SYMBOLS).fillna("circle").to_numpy()
    rows = df["row"].to_numpy()

    def add(idx, name: str, marker: dict) -> None:
        marker = {"size": marker_size(len(idx)), "symbol": symbols[idx], **marker}
        args = {"x": coords[idx, 0], "y": coords[idx, 1], "mode": "markers", "name": name, "marker": marker,
                "customdata": rows[idx], "text": hover[idx], "hoverinfo": "text"}
        fig.add_trace(go.Scatter3d(z=coords[idx, 2], **args) if three_d else go.Scattergl(**args))

    if colour == "dataset":
        hues = dataset_colours(df)
        groups = df.groupby(["dataset", "domain"], sort=False).indices.items()
        for (name, domain), idx in sorted(groups, key=lambda g: -len(g[1])):  # small sets drawn last, on top
            add(idx, f"{name} ({domain}, {len(idx)})", {"color": hues[name]})
    elif colour == "identity" or not pd.api.types.is_numeric_dtype(df[colour]):
        groups = df.groupby(colour, sort=True).indices
        if len(groups) > MAX_LEGEND:
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


def marker_size(points: int) -> int:
    """Bigger markers for smaller groups: six points of a small folder must stand out among thousands."""
    return 4 if points > 500 else 7 if points > 50 else 11


def attribute_figure(df: pd.DataFrame):
    """Figure 4: accuracy per re-drawn factor, without and with IM (`synface.analysis.tables.figure4`)."""
    import plotly.graph_objects as go  # noqa: PLC0415

    fig = go.Figure()
    for series in ("no IM", "IM"):
        if f"{series} acc" in df:
            fig.add_trace(go.Bar(name=series, x=df["varied"], y=df[f"{series} acc"],
                                 error_y={"type": "data", "array": df[f"{series} std"]}))
    fig.update_layout(barmode="group", yaxis_title="LFW accuracy (%)", xaxis_title="factor(s) re-drawn per image",
                      height=450, margin={"t": 30})
    return fig
