"""Train page: launch short runs (synthetic set, IM, DM psi, real subset, preset), follow them live.

Training never runs in the Streamlit process: `synface.runs.queue.launch` queues a detached
`python -m synface train` that writes status.json and metrics.jsonl; a fragment re-reads those
files every 2 s and starts queued runs when a slot frees (`run_queue`). Everything shown is
read from disk, so the list survives reloads and app restarts.

Every registered verification set (each .bin, each LFW test set) is offered and chosen by default.
Launch refuses, before a run folder exists, whatever can be known to fail (`preflight`): a real
subset the set cannot give, data smaller than a batch, an evaluation set that cannot be scored or
that tests people the run trains on, checkpoints the disk cannot hold; the "I accept identity
overlap" box overrides the overlap, and the run records that it did.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import common
from synface.base.files import read_json
from synface.data.errors import DataError
from synface.data.identity_overlap import REPORT_FILE, IdentityOverlapError
from synface.runs import queue, registry
from synface.runs.run import ACTIVE_STATES, Run, RunLocked
from synface.train.config import PRESETS, ConfigError, TrainConfig
from synface.train.launch_checks import preflight
from synface.train.run_config import run_config

OTHER = "(folder path)"
NO_REAL = "(none)"
EVAL_SIDEBAR = "LFW folder (sidebar)"
EVAL_CHOSEN = "the verification sets chosen below"
NO_EVAL = "(none)"
RESUMABLE = ("stopped", "failed")


def init_state() -> None:
    for key, value in {"tr.preset": "cpu-quick", "tr.psi_mode": "none", "tr.psi": 0.8, "tr.real_ids": 0,
                       "tr.real_k": 0, "tr.epochs": 0, "tr.steps": 0, "tr.batch": 0, "tr.center_crop": 0.6,
                       "tr.name": "", "tr.data_path": "", "tr.eval": EVAL_CHOSEN,
                       "tr.allow_overlap": False}.items():
        common.default(key, value)


def synthetic_sets() -> dict[str, dict]:
    """name -> dataset card of every complete synthetic set of the workspace."""
    from synface.data.synth_set import synth_sets

    out = {}
    for synth in synth_sets(common.datasets_dir()):
        try:
            out[synth.name] = dict(synth.card(), _path=str(synth.folder))
        except DataError:
            continue
    return out


def eval_spec(choice: str, real_sets: dict) -> dict:
    """The eval_sets entry of one chosen verification set (the sidebar's LFW folder or a registered set)."""
    crop = float(st.session_state["tr.center_crop"])
    if choice == EVAL_SIDEBAR:
        path = common.lfw_path()
        if not path:
            raise ConfigError("no LFW folder set in the sidebar; choose other evaluation sets or '(none)'")
        name = "lfw-sidebar" if "lfw" in real_sets else "lfw"  # a registered 'lfw' keeps its name
        return {"path": path, "name": name, "center_crop": crop if crop < 1 else None}
    return real_sets[choice].eval_spec(center_crop=crop)


def eval_picker(real_sets: dict) -> None:
    """The verification sets a run scores: every registered one by default, newly registered ones added."""
    s = st.session_state
    registered = [n for n, r in real_sets.items() if r.can_verify]
    options = ([EVAL_SIDEBAR] if common.lfw_path() else []) + registered
    known = s.get("tr.eval_known")
    if known is None or "tr.eval_sets" not in s:
        chosen = registered or options[:1]
    else:
        chosen = [o for o in s["tr.eval_sets"] if o in options] + [o for o in registered if o not in known]
    s["tr.eval_sets"], s["tr.eval_known"] = chosen, options
    st.multiselect("verification sets", options, key="tr.eval_sets", persist_state="session",
                   help="Register more (.bin files such as CFP-FP, AgeDB-30, CALFW, CPLFW; LFW test folds) on the "
                        "Datasets page; every registered set is chosen by default.")
    st.checkbox("I accept identity overlap", key="tr.allow_overlap", persist_state="session",
                help="Launch refuses evaluation sets that test people the run trains on; ticked, it trains anyway "
                     "and the run records the overlap.")


def launch_form(sets: dict[str, dict]) -> None:
    from synface.data.realsets import list_real_sets

    st.subheader("Launch a run")
    s = st.session_state
    names = list(sets) + [OTHER]
    if not sets:
        st.warning("No synthetic set in the workspace yet: build one on the Datasets page, or give a folder path.")
    if s.get("tr.data") not in names:
        s["tr.data"] = names[0]
    c1, c2 = st.columns([2, 3])
    c1.selectbox("synthetic set", names, key="tr.data", persist_state="session")
    if s["tr.data"] == OTHER:
        c2.text_input("synthetic set folder (manifest.parquet or <identity>/<image>)", key="tr.data_path", persist_state="session")
        data_path = str(s["tr.data_path"]).strip()
    else:
        card = sets[s["tr.data"]]
        data_path = card["_path"]
        cfg = card.get("config", {})
        im = f"yes (phi grid {cfg.get('phi_grid')})" if cfg.get("im") else "no"
        c2.markdown(f"{card.get('num_identities')} identities, {card.get('num_images')} images; "
                    f"**identity mixup: {im}**")

    real_sets = {r.name: r for r in list_real_sets()}
    trainable = [n for n, r in real_sets.items() if r.train_root]
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    if s.get("tr.real") not in [NO_REAL, *trainable]:
        s["tr.real"] = NO_REAL
    c1.selectbox("real set (mixed training)", [NO_REAL, *trainable], key="tr.real", persist_state="session")
    c2.radio("domain mixup psi", ["none", "fixed", "grid"], key="tr.psi_mode", persist_state="session", horizontal=True,
             help="psi = weight of the synthetic image; grid: psi drawn from {0, 0.05, ..., 1} per step")
    c3.number_input("R_ID (0: all)", 0, 1_000_000, step=1, key="tr.real_ids", persist_state="session")
    c4.number_input("k per id (0: all)", 0, 10_000, step=1, key="tr.real_k", persist_state="session")
    if s["tr.psi_mode"] == "fixed":
        st.slider("psi", 0.0, 1.0, step=0.05, key="tr.psi", persist_state="session")

    if s.get("tr.eval") not in (EVAL_CHOSEN, NO_EVAL):
        s["tr.eval"] = EVAL_CHOSEN
    c1, c2, c3 = st.columns([2, 2, 2])
    c1.selectbox("backbone preset", list(PRESETS), key="tr.preset", persist_state="session")
    c2.selectbox("evaluation sets", [EVAL_CHOSEN, NO_EVAL], key="tr.eval", persist_state="session")
    c3.text_input("run name (optional)", key="tr.name", persist_state="session",
                  help="Part of the run's folder name: letters, digits, '.', '_' and '-' are kept, "
                       "anything else becomes '-'.")
    with st.expander("Advanced (0 = the preset's value)"):
        a1, a2, a3, a4 = st.columns(4)
        a1.number_input("epochs", 0, 1000, step=1, key="tr.epochs", persist_state="session")
        a2.number_input("steps per epoch", 0, 1_000_000, step=1, key="tr.steps", persist_state="session")
        a3.number_input("batch size", 0, 4096, step=1, key="tr.batch", persist_state="session")
        a4.number_input("eval centre crop (raw LFW: 0.6; 1: none)", 0.1, 1.0, step=0.05, key="tr.center_crop", persist_state="session")
    if s["tr.eval"] == EVAL_CHOSEN:
        eval_picker(real_sets)

    if st.button("Launch", key="btn.tr.launch", type="primary"):
        launch(data_path, real_sets)


def launch(data_path: str, real_sets: dict) -> None:
    """Validate the form into a TrainConfig and queue the run (errors as messages)."""
    s = st.session_state
    try:
        if not data_path:
            raise ConfigError("choose a synthetic set (or give its folder)")
        data_path = str(common.readable(data_path, "synthetic set folder"))
        if not Path(data_path).exists():
            raise ConfigError(f"dataset not found: {data_path}")
        values: dict = {"data": data_path}
        real = None if s["tr.real"] == NO_REAL else s["tr.real"]
        if real is not None:
            if int(s["tr.real_ids"]) or int(s["tr.real_k"]):
                values["real_ids"] = int(s["tr.real_ids"]) or None
                values["real_k"] = int(s["tr.real_k"]) or None
        mode = s["tr.psi_mode"]
        values["psi"] = float(s["tr.psi"]) if mode == "fixed" else mode
        for key, field in (("tr.epochs", "epochs"), ("tr.steps", "steps_per_epoch"), ("tr.batch", "batch_size")):
            if int(s[key]):
                values[field] = int(s[key])
        values["eval_sets"] = []
        if s["tr.eval"] == EVAL_CHOSEN:
            if not s.get("tr.eval_sets"):
                raise ConfigError("choose at least one verification set, or evaluation sets '(none)'")
            values["eval_sets"] = [eval_spec(choice, real_sets) for choice in s["tr.eval_sets"]]
        cfg = run_config(s["tr.preset"], overrides=values, real=real, allow_overlap=bool(s["tr.allow_overlap"]),
                         root=common.workspace())
        name = str(s["tr.name"]).strip() or _auto_name(data_path, cfg)
    except (ConfigError, DataError, KeyError, ValueError) as exc:
        st.error(f"Cannot launch: {exc}")
        return
    try:  # every check that can fail before training, before the run folder exists
        with st.spinner("Checking the training data, the evaluation sets and the disk ..."):
            report = preflight(cfg, common.workspace())
        run_id, pid = queue.launch(cfg, root=common.workspace(), name=name, max_running=queue.default_max_running(),
                                   checked=report)
    except (ConfigError, DataError, IdentityOverlapError, OSError, ValueError) as exc:
        st.error(f"Cannot launch: {exc}")  # the subset, the batch, a set, an overlap, the disk, the queue
        return
    st.session_state["tr.run"] = run_id
    st.success(f"Launched {run_id}" + (f" (pid {pid})" if pid else " (queued: waiting for a free slot)"))


def _auto_name(data_path: str, cfg: TrainConfig) -> str:
    name = Path(data_path).name
    if cfg.real_root:
        name += f"+{Path(cfg.real_root).name}"
    psi = cfg.psi
    if psi not in (None, "none"):
        name += f"_psi-{psi}"
    return name


def resume(run: Run) -> None:
    """Continue a stopped or failed run from checkpoints/last.pt in the background."""
    queue.resume_run(run, common.workspace())


# ----------------------------------------------------------------------------- live view


def _fmt_eta(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def curves(run: Run) -> None:
    import plotly.graph_objects as go

    train = run.read_metrics("train")
    evals = run.read_metrics("eval")
    c1, c2 = st.columns(2)
    if train:
        fig = go.Figure(go.Scatter(x=[r.get("step") for r in train], y=[r.get("loss") for r in train], mode="lines+markers"))
        fig.update_layout(title="training loss", xaxis_title="step", yaxis_title="loss", height=320,
                          margin={"l": 10, "r": 10, "t": 40, "b": 10})
        c1.plotly_chart(fig, width="stretch", key=f"chart.loss.{run.id}")
    else:
        c1.caption("No training steps logged yet.")
    if evals:
        fig = go.Figure()
        for name in sorted({e.get("set") for e in evals}, key=str):
            pts = [e for e in evals if e.get("set") == name and e.get("mean_accuracy") is not None]
            fig.add_trace(go.Scatter(x=[e.get("epoch") for e in pts], y=[100 * e["mean_accuracy"] for e in pts],
                                     mode="lines+markers", name=str(name)))
        fig.update_layout(title="verification accuracy (%)", xaxis_title="epoch", yaxis_title="accuracy (%)",
                          height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
        c2.plotly_chart(fig, width="stretch", key=f"chart.acc.{run.id}")
    else:
        c2.caption("No evaluation yet.")


def _shown_status(summary, root: Path) -> str:
    """A run's status as the table shows it: 'stopping...' until a stopped run's process has exited."""
    if summary.status not in (*ACTIVE_STATES, "stopped"):
        return summary.status
    return "stopping..." if queue.run_state(Run(summary.path), root)["stopping"] else summary.status


@st.fragment(run_every=2)
def live_view() -> None:
    """Re-read the registry, start queued runs, show the selected run; reruns every 2 s."""
    import pandas as pd

    root = common.workspace()
    with common.page_errors("The run queue"):
        problems = st.session_state.setdefault("train.queue_problems", [])  # shown until the session ends
        queue.run_queue(root, queue.default_max_running(), problems)
        for line in problems:
            st.warning(line)
    summaries = registry.list_runs(root)
    smoke = sum(r.smoke for r in summaries)
    if smoke and not st.toggle(f"Show smoke-test runs ({smoke})", key="tr.show_smoke", persist_state="session",
                               help="runs of `reproduce --scale tiny`: a few steps each, hidden by default"):
        summaries = [r for r in summaries if not r.smoke]
    if not summaries:
        st.info("No runs yet.")
        return
    table = pd.DataFrame([{"run": r.id, "status": _shown_status(r, root), "epoch": f"{r.epoch}/{r.epochs}",
                           "progress": f"{100 * r.progress:.0f}%",
                           "best acc (%)": "evaluation off" if r.evaluation == "off" else
                           "-" if r.best_accuracy is None else f"{100 * r.best_accuracy:.2f}",
                           "images/s": None if r.images_per_s is None else round(r.images_per_s),
                           "message": r.message[:80]} for r in reversed(summaries)])
    st.dataframe(table, hide_index=True, width="stretch")
    ids = [r.id for r in reversed(summaries)]
    if st.session_state.get("tr.run") not in ids:
        st.session_state["tr.run"] = ids[0]
    choice = st.selectbox("follow run", ids, key="tr.run", persist_state="session")
    run = Run(root / "runs" / choice)
    status = queue.run_state(run, root)
    state = status.get("status", "unknown")
    progress = float(status.get("progress") or 0.0)
    shown, eta = ("stopping...", "- (saving a checkpoint and exiting)") if status["stopping"] else \
        (state, _fmt_eta(status.get("eta_s")))
    st.markdown(f"**{choice}**: status **{shown}**, epoch {status.get('epoch', 0)}/{status.get('epochs', '?')}, "
                f"step {status.get('step', 0)}, ETA {eta}")
    stage = f" - {status['stage']}" if status.get("stage") else ""  # an evaluation under way
    st.progress(min(1.0, max(0.0, progress)), text=f"{100 * progress:.0f}%{stage}")
    if status.get("message"):
        st.caption(str(status["message"]))
    check = read_json(run.path / REPORT_FILE, {})
    if isinstance(check, dict) and check.get("overridden"):
        st.warning(str(check.get("summary")))
    for note in (check.get("notes") or []) if isinstance(check, dict) else []:
        st.caption(str(note))
    b1, b2, note = st.columns([1, 1, 4])
    if state in (*ACTIVE_STATES, "queued") and not status["stopping"] and b1.button("Stop", key="btn.tr.stop"):
        try:
            queue.request_stop(run)
        except ValueError as exc:  # it ended meanwhile
            st.info(str(exc))
        else:
            st.toast(f"Stop requested for {choice}; it saves a checkpoint and exits.")
    if state in RESUMABLE and run.last_checkpoint.exists():
        if b2.button("Resume", key="btn.tr.resume", disabled=not status["resumable"],
                     help=None if status["resumable"] else "the run's process has not exited yet"):
            try:
                with st.spinner("Waiting for the run's last process to exit ..."):
                    resume(run)
            except RunLocked as exc:  # a process still trains in the folder
                st.error(str(exc))
            else:
                st.toast(f"Resuming {choice}")
        if status["stopping"]:
            note.caption("Stopping: the process saves its checkpoint and exits; Resume is offered once it has.")
    curves(run)


def main() -> None:
    st.title("Train")
    st.caption(f"Runs train in background processes on **{common.device_label()}**; "
               f"at most {queue.default_max_running()} at a time, the rest wait in a queue.")
    init_state()
    launch_form(synthetic_sets())
    st.subheader("Runs")
    live_view()


common.require_access()  # also when this page is reached before app.py's navigation

with common.page_errors("The train page"):
    main()
