"""The privacy section of a learned face model's dataset card, as the Datasets page shows it.

A set drawn from a learned model may come near the real people whose photos the model was learned
from. The card measures each identity's distance to its nearest source person; this explains it
with the two yardsticks a reader needs (the genuine-pair threshold, and how near real strangers
come to the same people) and draws both distributions side by side.
"""

from __future__ import annotations

import streamlit as st


def share(value) -> str | None:
    return None if not isinstance(value, (int, float)) else f"{100 * value:.0f}%"


def privacy_section(privacy: dict) -> None:
    """A learned model's set: how near its people come to the real source people, against the two
    yardsticks (the genuine-pair threshold, real strangers' 1st percentile), with both distributions."""
    st.markdown("**How near do this set's people come to the real people the model was learned from?**")
    threshold, p01 = privacy.get("threshold"), privacy.get("stranger_nearest_p01")
    floor = privacy.get("min_source_distance") or 0
    lines = [
        f"Each identity's nearest source person, by dlib descriptor distance ({privacy.get('identities_checked')} of "
        f"{privacy.get('identities')} identities checked, {privacy.get('source_people')} source people).",
        f"- **Pair threshold {threshold}**: two photos closer than this read as one person. "
        f"{share(privacy.get('share_under_threshold'))} of the identities lie under it, and so do "
        f"{share(privacy.get('strangers_under_threshold'))} of real strangers (each source person against the "
        "others)" + (": with this many source people almost anybody is within the threshold of somebody, so this "
                     "yardstick alone says little." if (privacy.get("strangers_under_threshold") or 0) >= 0.5 else "."),
        f"- **Real strangers' 1st percentile {p01}**: only 1% of real strangers come closer than this to a source "
        f"person. {share(privacy.get('share_under_stranger_p01'))} of the identities do.",
        f"- Minimum source distance of this build: {floor:g}" + (
            f" ({privacy.get('redrawn', 0)} identities redrawn)." if floor else " (nothing redrawn)."),
    ]
    st.markdown("\n".join(lines))
    hist = privacy.get("histogram")
    if isinstance(hist, dict) and hist.get("bins"):
        import plotly.graph_objects as go

        bins = hist["bins"]
        mids = [round((a + b) / 2, 3) for a, b in zip(bins[:-1], bins[1:])]
        fig = go.Figure()
        for name, key in (("this set's identities", "identities"), ("real strangers", "strangers")):
            counts = hist.get(key) or []
            total = max(1, sum(counts))
            fig.add_trace(go.Bar(x=mids, y=[100 * c / total for c in counts], name=name, opacity=0.7))
        for value, label in ((threshold, "pair threshold"), (p01, "strangers' 1st percentile")):
            if isinstance(value, (int, float)):
                fig.add_vline(x=value, line_dash="dash", annotation_text=label)
        fig.update_layout(barmode="overlay", height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                          xaxis_title="distance to the nearest source person", yaxis_title="% of each group")
        st.plotly_chart(fig, width="stretch", key="chart.ds.privacy")
    else:
        st.caption("This card was written before cards kept the distributions; rebuild the set to see them.")
