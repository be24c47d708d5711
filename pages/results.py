"""Results: every run of the workspace to filter, compare (ROC, curves, config), archive, delete and
export; below, Tables 1-3 and Figure 4 assembled from reproduce's runs."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import common

TITLES = {
    "table1": "Table 1: cross-domain (trained on synthetic or real, tested on LFW and the synthetic benchmark)",
    "table2": "Table 2: identities x samples per identity, without and with identity mixup",
    "table3": "Table 3: synthetic only, real subset only, and both with domain mixup",
    "figure4": "Figure 4: which factors vary per image",
    "context": "Faces in context photos: plain vs context photos, learned vs built-in, DigiFace augmentation",
}
FLASH = "res.flash"  # a message that survives the rerun after an action
SEL_KEPT, SEL_VISIBLE = "res.sel.kept", "res.sel.visible"  # the runs chosen for comparison, and those offered


def _keep_known(key: str, options: list[str]) -> list[str]:
    """Drop from a multiselect's state the values no longer offered (a run deleted or archived since):
    a stale value must neither crash the widget nor linger unseen. Returns what was dropped."""
    old = st.session_state.get(key)
    if not isinstance(old, list):
        return []
    st.session_state[key] = [v for v in old if v in options]
    return [v for v in old if v not in options]


def filters(frame):
    """One multiselect per filter column (empty = every value); the status filter starts at 'finished'."""
    from synface.analysis.run_results import FILTERS, filter_frame, filter_options

    options = filter_options(frame)
    if "finished" in options["status"]:
        common.default("res.f.status", ["finished"])
    cols = st.columns(4)
    chosen = {}
    for i, (col, label) in enumerate(FILTERS.items()):
        _keep_known(f"res.f.{col}", options[col])
        chosen[col] = cols[i % 4].multiselect(label, options[col], key=f"res.f.{col}", placeholder="all",
                                              persist_state=common.PERSIST)
    return filter_frame(frame, chosen)


def roc_chart(roc) -> None:
    """TAR against FAR on a log axis, as the step function it is: below the first false accept the TAR
    is the one with no false accept, so FAR = 0 points are drawn at the left edge."""
    import plotly.graph_objects as go

    from synface.analysis.run_results import FARS

    positive = roc.loc[roc["fpr"] > 0, "fpr"]
    left = min([*FARS, *positive.nsmallest(1)]) / 10
    fig = go.Figure()
    for (run_id, eval_set), pts in roc.groupby(["run_id", "eval_set"], sort=False):
        fig.add_trace(go.Scatter(x=pts["fpr"].clip(lower=left), y=pts["tpr"], mode="lines", line_shape="hv",
                                 name=f"{run_id} · {eval_set}"))
    for far in FARS:
        fig.add_vline(x=far, line_dash="dot", line_color="grey")
    fig.update_layout(title="ROC", xaxis_title="false accept rate (log; dotted: " + ", ".join(f"{f:g}" for f in FARS)
                      + ")", yaxis_title="true accept rate", xaxis_type="log", yaxis_range=[0, 1.02], height=420,
                      showlegend=True, legend={"orientation": "h", "y": -0.25},  # which run, even when alone
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    st.plotly_chart(fig, width="stretch", key="res.roc")
    st.caption("A set with n impostor pairs measures no FAR below 1/n (the table's FAR floor): left of it the "
               "curve is the TAR with no false accept at all, and so is any TAR@FAR below the floor.")


def curve_charts(loss, acc) -> None:
    import plotly.graph_objects as go

    c1, c2 = st.columns(2)
    fig = go.Figure()
    for run_id, pts in loss.groupby("run_id", sort=False):
        fig.add_trace(go.Scatter(x=pts["step"], y=pts["loss"], mode="lines", name=run_id))
    fig.update_layout(title="training loss", xaxis_title="step", yaxis_title="loss", height=340,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    c1.plotly_chart(fig, width="stretch", key="res.loss")
    fig = go.Figure()
    for (run_id, eval_set), pts in acc.groupby(["run_id", "eval_set"], sort=False):
        fig.add_trace(go.Scatter(x=pts["epoch"], y=pts["acc"], mode="lines+markers", name=f"{run_id} · {eval_set}"))
    fig.update_layout(title="verification accuracy (%)", xaxis_title="epoch", yaxis_title="accuracy (%)",
                      height=340, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    c2.plotly_chart(fig, width="stretch", key="res.acc")


def _remember_selection() -> None:
    """on_change of the run picker: what was chosen among the visible runs replaces their part of
    the remembered choice; runs a filter hides stay chosen and come back when it is lifted."""
    visible = set(st.session_state.get(SEL_VISIBLE, []))
    kept = [r for r in st.session_state.get(SEL_KEPT, []) if r not in visible]
    st.session_state[SEL_KEPT] = kept + list(st.session_state.get("res.sel", []))


def compare(frame, listed: list[str], root, views) -> None:
    """ROC of the chosen runs; side by side (scores, config differences, curves) for two or more.
    `frame` holds the filtered rows, `listed` every run id the page lists, `views` the runs as read."""
    from synface.analysis.run_results import config_diff, display_frame, metric_curves, roc_frame, tar_frame

    ids = list(dict.fromkeys(frame["run_id"].iloc[::-1]))  # newest first
    if SEL_KEPT not in st.session_state:  # the two newest runs with scores
        st.session_state[SEL_KEPT] = [r for r in ids if (frame[frame["run_id"] == r]["evaluation"] == "on").any()][:2]
    kept = st.session_state[SEL_KEPT]
    gone = [r for r in kept if r not in listed]
    if gone:
        st.caption(f"No longer in the workspace's list (deleted or archived): {', '.join(gone)}")
    st.session_state[SEL_KEPT] = kept = [r for r in kept if r in listed]
    st.session_state[SEL_VISIBLE] = ids
    st.session_state["res.sel"] = [r for r in kept if r in ids]
    chosen = st.multiselect("Runs to compare", ids, key="res.sel", on_change=_remember_selection,
                            help="ROC curves for every chosen run; two or more are also compared side by side. "
                                 "Runs the filters hide stay chosen and come back when the filters allow them.")
    if not chosen:
        st.info("Choose runs above to see their ROC curves and compare them.")
        return
    roc = roc_frame(chosen, root, views=views)
    if roc.empty:
        st.info("None of the chosen runs has an evaluation with a ROC (evaluation off, or not evaluated yet).")
    else:
        roc_chart(roc)
    tars = tar_frame(chosen, root, views=views)
    if not tars.empty:  # sets scored at many FARs (IJB-B/C: 1e-6 .. 1e-1)
        st.markdown("**TAR at FAR** (%), for the sets that report it at every FAR (IJB-B/C 1:1 verification)")
        st.dataframe(tars, hide_index=True, key="res.tars")
    if len(chosen) < 2:
        st.caption("Choose a second run to compare configurations and curves side by side.")
        return
    st.subheader("Side by side")
    rows = frame[frame["run_id"].isin(chosen)]
    st.dataframe(display_frame(rows), hide_index=True, key="res.side")
    diff = config_diff(chosen, root, views=views)
    if diff.empty:
        st.caption("Their configurations are the same (apart from the name).")
    else:
        st.markdown("**Configuration differences** (only the keys that differ)")
        st.dataframe(diff, hide_index=True, key="res.diff")
        st.download_button("Download CSV", diff.to_csv(index=False).encode(), "config_diff.csv", "text/csv",
                           key="res_dl_diff")
    curve_charts(*metric_curves(chosen, root, views=views))


def manage(frame, root) -> None:
    """Archive / unarchive, delete (with a confirmation) and export one run."""
    from synface.analysis.run_export import eval_set_names, export_checkpoint, export_embeddings
    from synface.runs.manage import archive_run, delete_run, unarchive_run
    from synface.runs.registry import find_run

    ids = list(dict.fromkeys(frame["run_id"].iloc[::-1]))
    if st.session_state.get("res.act.run") not in ids:
        st.session_state.pop("res.act.run", None)
    run_id = st.selectbox("Run", ids, key="res.act.run")
    archived = bool(frame[frame["run_id"] == run_id]["archived"].any())
    b1, b2, b3 = st.columns([1, 2, 1])
    if b1.button("Unarchive" if archived else "Archive", key="btn.res.archive"):
        with common.page_errors(f"Archiving {run_id}"):
            (unarchive_run if archived else archive_run)(run_id, root)
            st.session_state[FLASH] = f"{'Unarchived' if archived else 'Archived'} {run_id}."
            st.rerun()
    sure = b2.checkbox(f"Yes, delete {run_id} (its folder only; datasets stay)", key="res.act.sure")
    if b3.button("Delete", key="btn.res.delete", disabled=not sure, type="primary"):
        with common.page_errors(f"Deleting {run_id}"):
            path = delete_run(run_id, root)
            st.session_state.pop("res.act.sure", None)
            st.session_state[FLASH] = f"Deleted {path}; the datasets it used are untouched."
            st.rerun()

    run = find_run(run_id, root)
    names = eval_set_names(run)
    out_dir = root / "exports"
    if not run.last_checkpoint.is_file():
        st.caption("This run has no checkpoint yet, so there is nothing to export.")
        return
    e1, e2, e3 = st.columns([2, 1, 1])
    chosen_set = e1.selectbox("Embed evaluation set", names, key="res.exp.set") if names else None
    fmt = e2.radio("Format", [".npz", ".parquet"], key="res.exp.fmt", horizontal=True)
    if e3.button("Export embeddings", key="btn.res.emb", disabled=chosen_set is None,
                 help=None if names else "Evaluation is off for this run: no set to embed "
                                         "(python -m synface runs export RUN --pairs PATH embeds any set)."):
        with common.page_errors("Exporting embeddings"):
            bar = st.progress(0.0, text="embedding ...")
            info = export_embeddings(run, out_dir / f"{run.id}-{_slug(chosen_set)}{fmt}", root, eval_set=chosen_set,
                                     progress=lambda d, t: bar.progress(d / max(t, 1), text=f"embedding {d}/{t} images"))
            st.session_state.setdefault("res.exports", []).append(info["path"])
    if st.button("Export checkpoint (backbone, config)", key="btn.res.ckpt"):
        with common.page_errors("Exporting the checkpoint"):
            info = export_checkpoint(run, out_dir / f"{run.id}.pt", root)
            st.session_state.setdefault("res.exports", []).append(info["path"])
    for i, path in enumerate(dict.fromkeys(st.session_state.get("res.exports", []))):
        p = Path(path)
        if p.is_file():
            st.download_button(f"Download {p.name}", p.read_bytes(), p.name, key=f"res_dl_exp_{i}")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name)) or "set"


def runs_section() -> list:
    """The runs table, comparison and management; returns the runs as read (each run's files once
    per rerun: the tables below use them too)."""
    from synface.analysis.run_results import display_frame, results_frame
    from synface.analysis.run_views import load_runs

    root = common.workspace()
    if st.session_state.get(FLASH):
        st.success(st.session_state.pop(FLASH))
    st.caption("Every training run of the workspace, one row per evaluation set: accuracy ± std over the set's "
               "folds and TAR@FAR from the last evaluation (eval.json). Empty filters keep every value.")
    c1, c2 = st.columns(2)
    show_archived = c1.toggle("Show archived runs", key="res.archived", persist_state=common.PERSIST)
    show_smoke = c2.toggle("Show smoke-test runs", key="res.smoke", persist_state=common.PERSIST,
                           help="runs of `reproduce --scale tiny` (a few steps, a few test pairs): hidden by default; "
                                "the paper tables at scale tiny read them either way")
    views = load_runs(root, include_archived=show_archived)
    frame = results_frame(views=views, include_smoke=show_smoke)
    if frame.empty:
        st.info("No runs yet: start one on the Train page or with `python -m synface train`.")
        return views
    shown = filters(frame)
    st.caption(f"{shown['run_id'].nunique()} of {frame['run_id'].nunique()} runs")
    st.dataframe(display_frame(shown), hide_index=True, key="res.runs")
    st.download_button("Download CSV", shown.to_csv(index=False).encode(), "runs.csv", "text/csv", key="res_dl_runs")
    if shown.empty:
        return views
    st.subheader("Compare")
    compare(shown, list(frame["run_id"].unique()), root, views)
    with st.expander("Archive, delete or export a run"):
        manage(frame, root)
    return views


def table_block(name: str, title: str, scale: str | None, own_dir, shipped_dir, model: str = "builtin",
                rows=None) -> None:
    """One paper table of face model `model` (from `rows`, the runs' study rows): the frame with its
    CSV, then the reproduce report's figure and text (the shipped reports are the built-in head's)."""
    from synface.analysis.tables import build_table, study_key

    st.subheader(title)
    with common.page_errors(name):
        df = build_table(name, scale=scale, model=model, rows=rows)
        if df.empty:
            st.info("No finished runs for this table yet.")
        else:
            st.dataframe(df, hide_index=True)
            st.download_button("Download CSV", df.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                               key=f"res_dl_{name}")
            common.verdicts(name, scale, model, rows)
        # the user's own reproduce report first; else the one shipped with the repository (the
        # built-in head's); either only at the scale chosen, which its title line names
        from synface.studies.report import report_scale

        stem = study_key(name, model)
        candidates = [(own_dir, "your reproduce run")] + ([(shipped_dir, "shipped with the repository")]
                                                          if stem == name else [])
        found = [(folder, label, report_scale(folder / f"{stem}.md")) for folder, label in candidates
                 if (folder / f"{stem}.png").is_file()]
        found = [(folder, label, at) for folder, label, at in found if scale is None or at == scale]
        if not found:
            return
        folder, label, at = found[0]
        label = f"{label}, scale {at or 'unknown'}"
        png, md = folder / f"{stem}.png", folder / f"{stem}.md"
        if png.is_file():
            st.image(str(png), caption=f"{png} ({label})")
        if md.is_file():
            with st.expander(f"Report ({label})"):
                st.markdown(md.read_text(encoding="utf-8"))


def tables_section(views=None) -> None:
    """Tables 1-3 and Figure 4 (with their verdicts) from `views`, the runs the runs tab read (read
    here when that tab failed)."""
    from synface.analysis.tables import study_rows
    from synface.studies.plan import SCALES, scale_label
    from synface.studies.report import results_dir

    st.caption("Accuracy (%) on the test pairs: mean ± std over folds x training seeds, from each run's eval.json. "
               "Fill the tables with `python -m synface reproduce <table> --scale cpu --lfw DIR`. Archived and "
               "deleted runs are not counted.")
    lfw = common.lfw_path() or None
    names = [*sorted(SCALES, key=lambda s: (s != "cpu", s)), "any"]
    scale = st.selectbox("Scale", names, key="res.scale",
                         format_func=lambda s: "any" if s == "any" else scale_label(s, lfw))
    model = common.study_model_picker("res.model")
    own_dir, shipped_dir = results_dir(common.workspace()), common.REPO_ROOT / "results"
    chosen = None if scale == "any" else scale
    rows = study_rows(common.workspace(), chosen, views)
    for name, title in TITLES.items():
        if name == "context" and model in (None, "", "builtin"):  # a learned model's study only
            st.caption(f"{title}: choose a learned face model above (`python -m synface reproduce context --model NAME`).")
            continue
        table_block(name, title, chosen, own_dir, shipped_dir, model, rows)


def main() -> None:
    st.title("Results")
    runs_tab, tables_tab = st.tabs(["Your runs", "Paper tables (Tables 1-3, Figure 4)"])
    views = None
    with runs_tab, common.page_errors("The runs table"):
        views = runs_section()
    with tables_tab, common.page_errors("The paper tables"):
        tables_section(views)


common.require_access()  # also when this page is reached before app.py's navigation

with common.page_errors("Results"):
    main()
