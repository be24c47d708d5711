"""Attributes (Figure 4): which per-image variation (pose, expression, illumination) matters, with and without IM."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import common


@st.fragment(run_every=5)
def _job(scale: str, model: str) -> None:
    from synface.studies.jobs import reproduce_status

    status = reproduce_status("figure4", scale, model=model)
    if not status.get("pid"):
        return
    if status.get("alive"):
        st.info(f"reproduce figure4 --scale {scale} --model {model} is running (pid {status['pid']}); the chart fills in as runs finish.")
        common.show_job(status, stop_key="btn.attr.reproduce.stop")  # its Stop button (finished runs stay)
    else:
        st.caption(f"Last background job (pid {status['pid']}) has ended.")
    if status.get("tail"):
        st.code(status["tail"], language=None)


def main() -> None:
    from synface.analysis.tables import figure4
    from synface.api import attribute_figure
    from synface.studies.jobs import launch_reproduce
    from synface.studies.plan import SCALES, make_plan, scale_label

    st.title("Attributes")
    st.caption("Figure 4: each factor re-drawn per image while the others are held per identity "
               "('none' holds all, 'all' re-draws all), trained without and with identity mixup.")
    lfw = common.lfw_path()
    known = lfw if lfw and Path(lfw).is_dir() else None
    scale = st.selectbox("Scale", list(SCALES), key="attr.scale", format_func=lambda s: scale_label(s, known))
    model = common.study_model_picker("attr.model")
    df = figure4(root=common.workspace(), scale=scale, model=model)
    if df.empty:
        st.info("No Figure 4 runs finished at this scale yet.")
    else:
        st.plotly_chart(attribute_figure(df))
        st.dataframe(df, hide_index=True)
        common.verdicts("figure4", scale, model)
    if not lfw or not Path(lfw).is_dir():
        st.warning("Set an LFW folder in the sidebar to plan or queue the missing runs.")
        return
    plan = make_plan("figure4", scale, lfw, root=common.workspace(), model=model)
    est = plan.estimate()
    todo = est["training"] > 0 or est["datasets"] > 0
    with st.expander(f"Plan: {len(plan.runs)} runs, about {est['total'] / 60:.0f} min still to run"):
        st.code(plan.describe(), language=None)
    if todo and st.button("Queue the missing runs", type="primary", key="attr_queue",
                          help="Starts `python -m synface reproduce figure4` in the background: it builds the "
                               "datasets first, then trains and evaluates each missing run (resumable)."):
        status = launch_reproduce("figure4", scale, lfw, root=common.workspace(), model=model)
        st.success(f"Started (pid {status.get('pid')}); log: {status.get('log')}")
    _job(scale, model)


common.require_access()  # also when this page is reached before app.py's navigation

with common.page_errors("Attributes"):
    main()
