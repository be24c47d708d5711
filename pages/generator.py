"""Generator page: two identities, identity mixup (phi), pose / expression / light sliders.

Every slider feeds the coefficients straight into `FaceGenerator.render`, so one move costs one
render (tens of ms). The phi strip (the paper's Figure 2) and the attribute grid are cached by
their inputs and only re-render when those change. The face model is a choice: the built-in head
or a learned model of the workspace (with its identity editor, and a way to fit a new model from
a folder of photos: `ui/face_models.py`).
"""

from __future__ import annotations

import random

import numpy as np
import streamlit as st

from ui import common, face_models
from ui.live_face import (
    build_coeffs, context_renderer, identity_coeffs, live_image, live_in_context, model_of, strip_in_context,
)
from synface.api import PHI_STRIP, attribute_grid as grid_faces, image_grid, mixup_strip
from synface.face.coeffs import FaceCoeffs
from synface.face.controls import FaceControls, hex_to_rgb, rgb_to_hex
from synface.generator import SHARED_RENDER_LOCK
LIVE_SIZE = 336
#: slider ranges wider than the prior's, so exaggerated values are possible and visibly clamped
POSE_RANGES = {"yaw": (-120, 120), "pitch": (-90, 90), "roll": (-90, 90)}
EXPR_MARGIN = 0.5
ROLL_NOTE = ("Roll leaves the image unchanged: every face is aligned to the ArcFace template as real photos are, "
             "which turns the eyes level again. The 3-D view shows the roll.")
ATTRIBUTE_GROUPS = ["Pose", "Expression", "Illumination"]
NEUTRAL = FaceControls()
# friendly light defaults = the generator's neutral light (frontal, slightly from above)
LIGHT_DEFAULTS = {"gen.light_yaw": int(NEUTRAL.light_yaw_deg), "gen.light_pitch": int(NEUTRAL.light_pitch_deg),
                  "gen.intensity": NEUTRAL.intensity, "gen.ambient": NEUTRAL.ambient,
                  "gen.colour": rgb_to_hex(NEUTRAL.colour)}


def model_name() -> str:
    """The face model chosen on this page ("builtin" until the picker has drawn)."""
    return str(st.session_state.get("gen.model") or "builtin")


def page_generator():
    return common.get_generator(model_name())


def model_key(gen) -> str:
    """Names the model and its version in the cached renders' inputs."""
    return f"{model_name()}|{gen.version}"


def expr_infos() -> tuple:
    return tuple(page_generator().model.expr_info)


def init_state() -> None:
    """Initial slider values (once per session; later values come from session state)."""
    for key, value in {"gen.seed_a": 1, "gen.seed_b": 2, "gen.phi": 0.5, "gen.yaw": 0, "gen.pitch": 0,
                       "gen.roll": 0, "gen.grid_seed": 0, "gen.grid_identity": "A", "gen.attr_group": "Pose",
                       "gen.smooth": True, "gen.show3d": False, **LIGHT_DEFAULTS}.items():
        common.default(key, value)
    for info in expr_infos():
        common.default(f"gen.expr.{info.name}", 0.0)


# ----------------------------------------------------------------------------- callbacks


def randomise(key: str) -> None:
    st.session_state[key] = random.randint(0, 99_999)


def reset_attributes() -> None:
    for axis in POSE_RANGES:
        st.session_state[f"gen.{axis}"] = 0
    for info in expr_infos():
        st.session_state[f"gen.expr.{info.name}"] = 0.0
    st.session_state.update(LIGHT_DEFAULTS)


def attributes_from_seed() -> None:
    """Set the sliders to attributes drawn from the prior, rounded to the sliders' steps and ranges."""
    controls = FaceControls.from_attributes(page_generator().sample_attributes(1, random.randint(0, 99_999)))
    yaw, pitch, roll = (round(v) for v in controls.pose_deg)
    st.session_state.update({"gen.yaw": yaw, "gen.pitch": pitch, "gen.roll": roll})
    for info, value in zip(expr_infos(), controls.expr):
        st.session_state[f"gen.expr.{info.name}"] = round(value, 2)
    st.session_state.update({
        "gen.light_yaw": int(np.clip(round(controls.light_yaw_deg), -90, 90)),
        "gen.light_pitch": int(np.clip(round(controls.light_pitch_deg), -60, 80)),
        "gen.intensity": float(np.clip(round(controls.intensity, 2), 0.0, 1.5)),
        "gen.ambient": float(np.clip(round(controls.ambient, 2), 0.0, 1.5)),
        "gen.colour": rgb_to_hex(controls.colour),
    })


# ----------------------------------------------------------------------------- coefficients


def current_controls() -> FaceControls:
    """The sliders' values (hashable: the cached renders' input)."""
    s = st.session_state
    return FaceControls(
        pose_deg=tuple(float(s[f"gen.{a}"]) for a in POSE_RANGES),
        expr=tuple(float(s[f"gen.expr.{i.name}"]) for i in expr_infos()),
        light_yaw_deg=float(s["gen.light_yaw"]), light_pitch_deg=float(s["gen.light_pitch"]),
        intensity=float(s["gen.intensity"]), ambient=float(s["gen.ambient"]), colour=hex_to_rgb(s["gen.colour"]))


@st.cache_data(max_entries=64, show_spinner=False)
def phi_strip(key: str, ident_a: tuple, ident_b: tuple) -> np.ndarray:
    """Figure 2: the mixed identity for phi = 0, 0.1, ..., 1 (frontal, neutral)."""
    gen = common.get_generator(model_of(key))
    a, b = identity_coeffs(key, ident_a), identity_coeffs(key, ident_b)
    with SHARED_RENDER_LOCK:  # the notebook's call (synface.api), on the server's shared generator
        faces = mixup_strip(a, b, PHI_STRIP, gen)
    return image_grid(faces, cols=len(PHI_STRIP))


@st.cache_data(max_entries=64, show_spinner=False)
def attribute_grid(key: str, ident_a: tuple, ident_b: tuple, phi: float, grid_seed: int) -> np.ndarray:
    """The current identity with 12 attribute draws from the prior (2 x 6)."""
    gen = common.get_generator(model_of(key))
    a, b = identity_coeffs(key, ident_a), identity_coeffs(key, ident_b)
    with SHARED_RENDER_LOCK:
        faces = grid_faces(a, b, phi, n=12, seed=grid_seed, generator=gen)
    return image_grid(faces, cols=6)


def mesh_figure(coeffs: FaceCoeffs):
    """Rotatable 3-D view of the posed, shaded mesh (y up, viewer on +z)."""
    import plotly.graph_objects as go

    mesh = page_generator().mesh(coeffs)
    v = mesh.vertices[0].cpu().numpy()
    f = mesh.faces.cpu().numpy()
    rgb = (mesh.colours[0].cpu().numpy() * 255).round().astype(int)
    colours = [f"rgb({r},{g},{b})" for r, g, b in rgb]
    fig = go.Figure(go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                              vertexcolor=colours, flatshading=False, hoverinfo="skip",
                              lighting={"ambient": 1.0, "diffuse": 0.0, "specular": 0.0, "fresnel": 0.0}))
    axis = {"visible": False}
    fig.update_layout(height=480, margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      scene={"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "data",
                             "camera": {"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 0, "y": 0, "z": 2.0}}})
    return fig


# ----------------------------------------------------------------------------- layout


def attribute_controls() -> None:
    """Pose, expression or illumination sliders (one group at a time) beside the live image."""
    # Only the chosen group's sliders are drawn: fewer widgets per slider move (their values
    # persist while hidden).
    group = st.segmented_control("attributes", ATTRIBUTE_GROUPS, key="gen.attr_group", persist_state="session",
                                 label_visibility="collapsed") or ATTRIBUTE_GROUPS[0]
    if group == "Pose":
        for axis, (lo, hi) in POSE_RANGES.items():
            st.slider(f"{axis} (degrees)", lo, hi, step=1, key=f"gen.{axis}", persist_state="session",
                      help=ROLL_NOTE if axis == "roll" else None)
        if st.session_state.get("gen.roll"):
            st.caption(ROLL_NOTE)
    elif group == "Expression":
        for info in expr_infos():
            st.slider(info.name.replace("_", " "), float(info.low - EXPR_MARGIN), float(info.high + EXPR_MARGIN),
                      step=0.05, key=f"gen.expr.{info.name}", persist_state="session", help=info.description)
    else:
        st.slider("light direction: yaw", -90, 90, step=1, key="gen.light_yaw", persist_state="session")
        st.slider("light direction: pitch", -60, 80, step=1, key="gen.light_pitch", persist_state="session")
        st.slider("intensity", 0.0, 1.5, step=0.05, key="gen.intensity", persist_state="session")
        st.slider("ambient", 0.0, 1.5, step=0.05, key="gen.ambient", persist_state="session")
        st.color_picker("colour", key="gen.colour", persist_state="session")
    c1, c2 = st.columns(2)
    c1.button("Random attributes", key="btn.gen.attrs", on_click=attributes_from_seed)
    c2.button("Reset attributes", key="btn.gen.reset", on_click=reset_attributes)


@st.fragment
def live_view(key: str, ident_a: tuple, ident_b: tuple) -> None:
    """The phi slider, the attribute sliders and the live image: a fragment, so a slider move
    re-runs (and re-sends) only this part of the page, not the strip and the grid below."""
    s = st.session_state
    seed_a, seed_b = ident_a[1], ident_b[1]
    left, right = st.columns([3, 4])
    with right:
        st.slider("phi (weight of A)", 0.0, 1.0, step=0.01, key="gen.phi", persist_state="session")
        attribute_controls()
        st.toggle("3-D view (rotatable)", key="gen.show3d", persist_state="session")
        mode = context_controls(key)
    phi = float(s["gen.phi"])
    controls = current_controls()
    row = None
    if mode == "plain":
        image, notes = live_image(key, ident_a, ident_b, phi, controls)
    else:
        image, row, notes = live_in_context(key, ident_a, ident_b, phi, controls, mode, int(s["gen.context_seed"]))
    with left:
        st.image(common.upscale(image, LIVE_SIZE, smooth=bool(s["gen.smooth"])),
                 caption=f"phi = {phi:.2f} (A = {seed_a}, B = {seed_b}), 112 x 112 shown at {LIVE_SIZE} px",
                 output_format="JPEG")
        st.toggle("smooth upscaling (bicubic)", key="gen.smooth", persist_state="session")
        if notes:
            st.warning("Outside the prior's range, clamped: " + "; ".join(notes))
        else:
            st.caption("All values inside the prior's range.")
        if row is not None:
            context_photo(key, mode, row)
    if s["gen.show3d"]:
        coeffs, _ = build_coeffs(key, ident_a, ident_b, phi, controls)
        st.plotly_chart(mesh_figure(coeffs), width="stretch", key="chart.gen_mesh")
    # The strip below the fragment is drawn in the live face's context photo: a new photo (or none)
    # re-runs the whole page once.
    if s.get("gen._context_row") != row:
        s["gen._context_row"] = row
        st.rerun(scope="app")
    # The attribute grid below the fragment follows phi only in 'current mix' mode; then a phi
    # move re-runs the whole page (body() records the phi the grid was drawn with).
    if s["gen.grid_identity"] == "current mix" and s.get("gen._grid_phi", phi) != phi:
        s["gen._grid_phi"] = phi
        st.rerun(scope="app")


def context_controls(key: str) -> str:
    """The context switch (learned models fitted with context photos): 'plain', or the live face
    drawn into one of the model's source photos. Returns the mode in use."""
    s = st.session_state
    common.default("gen.context", "plain")
    common.default("gen.context_seed", 0)
    if model_of(key) == "builtin":
        st.caption("Context photos: choose a learned face model (the built-in head has no source photos).")
        return "plain"
    st.radio("context", ["plain", "photo", "background"], key="gen.context", persist_state="session",
             horizontal=True, help="photo: the face replaces a source photo's face (its hair, ears and scene stay); "
                                   "background: the whole head over the photo. The context is chosen near the pose "
                                   "sliders; its own pose, expression and light are used")
    mode = str(s["gen.context"])
    if mode == "plain":
        return mode
    try:
        context_renderer(key, mode)
    except ValueError as exc:  # a model fitted before contexts existed (DataError names the refit)
        st.warning(f"No context photos: {exc}")
        return "plain"
    st.number_input("context draw (seed)", 0, 2**31 - 1, step=1, key="gen.context_seed", persist_state="session")
    return mode


def context_photo(key: str, mode: str, row: int) -> None:
    """The context photo, small, beside the face: a real source photo of the model's fit."""
    photo = context_renderer(key, mode).context_view(row, 112)
    if photo is None:
        st.warning(f"Context photo #{row} is gone or changed since the fit: the face is drawn on the plain "
                   "background instead.")
        return
    st.image(photo, caption=f"context photo #{row} (a source photo: its hair, ears and scene are a real "
                            "person's; the face is the synthetic one)", width=112)


def model_picker() -> None:
    """The face model selectbox (the built-in head and the workspace's learned models)."""
    names = common.model_names()
    common.default("gen.model", "builtin")
    if st.session_state["gen.model"] not in names:  # a model deleted since, or another workspace
        st.session_state["gen.model"] = "builtin"
    st.selectbox("face model", names, key="gen.model", persist_state="session",
                 help="builtin: the procedural head (no photos). Learned models are fitted from photographs "
                      "(see 'Fit a face model from a folder' below, or `python -m synface face-model fit`).")


def main() -> None:
    st.title("Generator")
    c1, c2 = st.columns([2, 5])
    with c1:
        model_picker()
    if model_name() == "builtin":
        gen = page_generator()  # the start-up warm-up's generator (its own spinner while that finishes)
    else:
        with st.spinner(f"Loading face model {model_name()} ..."):
            gen = page_generator()
    learned = model_name() != "builtin"
    c2.caption(f"Rendering on **{common.device_label()}** - generator {gen.version}. "
               "Identity mixup: identity = phi * A + (1 - phi) * B; phi = 1 gives A.")
    init_state()
    c1, c2, _ = st.columns([2, 2, 3])
    with c1:
        st.number_input("identity A (seed)", 0, 2**31 - 1, step=1, key="gen.seed_a", persist_state="session")
        st.button("randomise A", key="btn.gen.rand_a", on_click=randomise, args=("gen.seed_a",))
    with c2:
        st.number_input("identity B (seed)", 0, 2**31 - 1, step=1, key="gen.seed_b", persist_state="session")
        st.button("randomise B", key="btn.gen.rand_b", on_click=randomise, args=("gen.seed_b",))

    s = st.session_state
    seed_a, seed_b = int(s["gen.seed_a"]), int(s["gen.seed_b"])
    key = model_key(gen)
    if learned:
        for which, seed in (("A", seed_a), ("B", seed_b)):
            face_models.sync(which, gen, key, seed)
        face_models.identity_editor(gen, randomise)
        ident_a, ident_b = face_models.identity("A", gen, seed_a), face_models.identity("B", gen, seed_b)
    else:
        ident_a, ident_b = ("seed", seed_a), ("seed", seed_b)
    live_view(key, ident_a, ident_b)

    st.subheader("Identity mixup strip (Figure 2)")
    mode, row = str(s.get("gen.context", "plain")), s.get("gen._context_row")
    if learned and row is not None:
        strip = image_grid(strip_in_context(key, ident_a, ident_b, tuple(PHI_STRIP), mode, int(row)),
                           cols=len(PHI_STRIP))
        where = f"in context photo #{row}, at its pose, expression and light"
    else:
        strip, where = phi_strip(key, ident_a, ident_b), "frontal, neutral"
    st.image(strip, width="stretch", output_format="JPEG",
             caption="phi = " + ", ".join(f"{p:.1f}" for p in PHI_STRIP) + f"  (left: B, right: A; {where})")
    st.subheader("Same identity, varied attributes")
    cols = st.columns([1, 2, 2])
    cols[0].number_input("attribute seed", 0, 2**31 - 1, step=1, key="gen.grid_seed", persist_state="session")
    cols[1].radio("identity", ["A", "B", "current mix"], key="gen.grid_identity", persist_state="session", horizontal=True,
                  help="'current mix' follows the phi slider (12 renders per move instead of one)")
    phi = float(s["gen.phi"])
    s["gen._grid_phi"] = phi
    grid_phi = {"A": 1.0, "B": 0.0}.get(s["gen.grid_identity"], phi)
    st.image(attribute_grid(key, ident_a, ident_b, grid_phi, int(s["gen.grid_seed"])), width="stretch",
             output_format="JPEG",
             caption=f"identity phi = {grid_phi:.2f}; pose, expression and illumination drawn from the prior")
    face_models.fit_expander()
    face_models.damaged_models_expander()


common.require_access()  # also when this page is reached before app.py's navigation

with common.page_errors("The generator page"):
    main()
