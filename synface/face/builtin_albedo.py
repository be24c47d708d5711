"""Reflectance of the built-in head as a mask library: three matrix products per batch.

Why this shape: painting eyes, brows, lips and hair per vertex with nonlinear functions of the
coefficients costs ~100 elementwise passes over (B, V, 3) and caps rendering far below the
1,000 images/s target. Instead every painted feature is precomputed at start-up as fixed
per-vertex masks, with a few variants where a coefficient moves a boundary (hairline height and
recession, brow thickness, eyelid closure); coefficients choose piecewise-linear weights over the
variants. Then

    albedo = skin * S * (1 - coverage) + paint
    S        = 1 + sum_k a_k(coeffs, channel) g_k(vertex)      (tone fields, darkening)
    coverage = sum_j w_j(coeffs) m_j(vertex)                   (hair, brows, lips, eyes, mouth)
    paint    = sum_j w_j(coeffs) colour_j(coeffs) m_j(vertex)

Masks of one group are made exclusive by layering them at start-up (`_layer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from synface.base.exact import basis_product, stable_erf
from synface.face.geometry_fields import (
    EYE_X,
    EYE_Y,
    MOUTH_Y,
    NOSE_TIP_Y,
    gauss,
    hairline_lat,
    pair,
    smoothstep,
)
from synface.face.model import basis_tensor

SKIN_PALETTE = np.array(
    [  # very light ... very dark, display-referred (sRGB) reflectance
        [0.97, 0.85, 0.78],
        [0.92, 0.74, 0.62],
        [0.83, 0.63, 0.49],
        [0.70, 0.50, 0.36],
        [0.56, 0.38, 0.26],
        [0.44, 0.29, 0.20],
        [0.34, 0.22, 0.15],
    ]
)
HAIR_PALETTE = np.array([[0.05, 0.04, 0.035], [0.16, 0.10, 0.06], [0.36, 0.23, 0.13], [0.62, 0.47, 0.28], [0.85, 0.72, 0.48]])
IRIS_PALETTE = np.array([[0.18, 0.10, 0.05], [0.35, 0.22, 0.10], [0.30, 0.35, 0.20], [0.25, 0.40, 0.55]])

ALBEDO_SEMANTIC = (
    ("skin_tone", "skin from very light (-3) to very dark (+3)"),
    ("skin_redness", "redder or more olive skin"),
    ("skin_yellowness", "warmer or cooler skin"),
    ("lip_colour", "paler or redder lips"),
    ("lip_darkness", "darker lips"),
    ("iris_darkness", "dark brown to light irises"),
    ("iris_hue", "brown-green to blue irises"),
    ("brow_darkness", "lighter or darker brows"),
    ("brow_thickness", "thin or thick brows"),
    ("hair_lightness", "black to blond hair"),
    ("hair_redness", "redder hair"),
    ("hair_grey", "greying hair (age cue)"),
    ("hair_density", "bald to full hair"),
    ("hairline_height", "hairline lower or higher"),
    ("hairline_recession", "receding temples"),
    ("beard_shadow", "beard and stubble shadow (sex cue)"),
    ("cheek_blush", "cheek colour"),
    ("under_eye", "darker under the eyes"),
    ("wrinkles", "age lines on the forehead and around the eyes"),
    ("sclera_tint", "whiter or duller eye whites"),
)
N_ALBEDO_RANDOM = 20
N_ALBEDO = len(ALBEDO_SEMANTIC) + N_ALBEDO_RANDOM
#: coefficient name -> column (the evaluator reads coefficients by name, never by position)
ALBEDO_INDEX = {name: i for i, (name, _) in enumerate(ALBEDO_SEMANTIC)}

HAIR_HEIGHTS = (-3.0, 0.0, 3.0)
HAIR_RECESSIONS = (-0.5, 1.0, 3.0)
BROW_THICKNESS = (-3.0, 0.0, 3.0)
BLINK_LEVELS = (0.0, 0.5, 1.0)
BLINK_EXPR = (5, 6)  # expression indices of the image-left and image-right eye
JAW_OPEN_EXPR = 0


def _layer(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Effective masks of layers painted bottom to top: each is hidden by the ones above it."""
    out = []
    for i, m in enumerate(masks):
        e = m.copy()
        for above in masks[i + 1 :]:
            e *= 1 - above
        out.append(e)
    return out


@dataclass
class MaskLibrary:
    """Fixed per-vertex fields (numpy) and the bookkeeping of which coefficient drives which."""

    tone: np.ndarray  # (K, V) multiplicative skin fields
    masks: np.ndarray  # (J, V) paint masks
    slices: dict[str, slice]  # name -> rows of `masks`
    tone_slices: dict[str, slice]
    random_dirs: np.ndarray  # (R, 3)


def build_mask_library(ref: dict[str, np.ndarray], random_fields: np.ndarray) -> MaskLibrary:
    X, Y, F = ref["X"], ref["Y"], ref["front"]
    lat, lon = ref["lat"], ref["lon"]
    rng = np.random.default_rng(99)
    strands = rng.random(len(X))
    masks: list[np.ndarray] = []
    slices: dict[str, slice] = {}

    def add(name: str, items: list[np.ndarray]) -> None:
        slices[name] = slice(len(masks), len(masks) + len(items))
        masks.extend(items)

    # eyes: for each eye and blink level, layered sclera, iris, pupil, lash line
    for side_name, side in (("eye_left", -1.0), ("eye_right", 1.0)):
        for level in BLINK_LEVELS:
            ex = (X - side * EYE_X) / 0.105
            ey = (Y - EYE_Y) / 0.05
            almond = ex**2 + (ey / (1 - 0.25 * (ex * side))) ** 2
            lid = 1.0 - 2.1 * level
            sig = lambda t: 1 / (1 + np.exp(-np.clip(t, -60, 60)))  # noqa: E731
            opening = sig((1 - almond) * 12) * sig((lid - ey) * 12) * F
            r = np.sqrt(((X - side * EYE_X) / 0.042) ** 2 + ((Y - EYE_Y) / 0.042) ** 2)
            iris = sig((1 - r) * 10) * opening
            pupil = sig((0.42 - r) * 20) * opening * 0.9
            lash_y = np.minimum(lid, np.sqrt(np.clip(1 - ex**2, 0, None)))
            lash = np.exp(-0.5 * ((ey - lash_y) / 0.32) ** 2) * sig((1.15 - np.abs(ex)) * 10) * F * 0.92
            add(f"{side_name}_{level}", _layer([opening, iris, pupil, lash]))
    eye_cover = sum(masks[s.start] + masks[s.start + 1] + masks[s.start + 2] + masks[s.start + 3]
                    for name, s in slices.items() if name.endswith("_0.0"))
    # brows (variants of thickness)
    bx = np.abs(X)
    arc = 0.29 + 0.035 * np.exp(-0.5 * ((bx - 0.3) / 0.09) ** 2) - 0.02 * (bx - 0.3)
    brow_items = []
    for t in BROW_THICKNESS:
        thick = np.clip(0.03 + 0.007 * t, 0.014, 0.05)
        brow = np.exp(-0.5 * ((Y - arc) / thick) ** 2) * smoothstep(0.07, 0.12, bx) * (1 - smoothstep(0.43, 0.5, bx)) * F
        brow_items.append(np.clip(brow * (1 - eye_cover), 0, 1))
    add("brows", brow_items)
    brow_mid = brow_items[1]
    # hair: grid of hairline height x recession; plain and strand-modulated copies
    for h in HAIR_HEIGHTS:
        for rcs in HAIR_RECESSIONS:
            hl = hairline_lat(lon, h, rcs)
            m = smoothstep(-0.012 * math.pi, 0.03 * math.pi, hl - lat) * (1 - brow_mid) * (1 - eye_cover)
            add(f"hair_{h}_{rcs}", [m, m * strands])
    # lips and the mouth interior (opened by the jaw)
    # upper lip thinner than the lower one; both meet at the mouth line
    lip_u = smoothstep(MOUTH_Y - 0.005, MOUTH_Y + 0.01, Y) * (1 - smoothstep(MOUTH_Y + 0.045, MOUTH_Y + 0.065, Y + 0.5 * X**2))
    lip_l = (1 - smoothstep(MOUTH_Y - 0.01, MOUTH_Y + 0.005, Y)) * smoothstep(MOUTH_Y - 0.1, MOUTH_Y - 0.075, Y - 0.8 * X**2)
    width = 1 - smoothstep(0.17, 0.265, np.abs(X))
    lips = np.clip(lip_u + lip_l, 0, 1) * width * F
    gap = np.exp(-0.5 * ((Y - (MOUTH_Y - 0.012)) / 0.016) ** 2) * (1 - smoothstep(0.16, 0.24, np.abs(X))) * F
    teeth = smoothstep(MOUTH_Y - 0.006, MOUTH_Y + 0.004, Y) * gap * 0.8
    lips_l, gap_l, teeth_l = _layer([lips, gap, teeth])
    add("lips", [lips_l])
    add("mouth", [gap_l, teeth_l])
    # multiplicative skin fields: random tone fields, blush, under-eye, wrinkles, beard, nostrils
    tone: list[np.ndarray] = []
    tone_slices: dict[str, slice] = {}

    def add_tone(name: str, items: list[np.ndarray]) -> None:
        tone_slices[name] = slice(len(tone), len(tone) + len(items))
        tone.extend(items)

    add_tone("random", list(random_fields))
    add_tone("blush", [pair(X, Y, 0.36, -0.25, 0.1, 0.09) * F])
    add_tone("under_eye", [pair(X, Y, EYE_X, EYE_Y - 0.08, 0.07, 0.025) * F])
    wr = (0.5 + 0.5 * np.cos((Y - 0.5) * 90)) * smoothstep(0.38, 0.45, Y) * (1 - smoothstep(0.6, 0.68, Y)) * (np.abs(X) < 0.4)
    wr = wr + pair(X, Y, EYE_X + 0.16, EYE_Y, 0.03, 0.04) * (0.5 + 0.5 * np.cos(Y * 120))
    add_tone("wrinkles", [wr * F])
    beard = smoothstep(-0.45, -0.6, Y) * (1 - smoothstep(0.55, 0.7, np.abs(X))) * F + gauss(X, Y, 0, -0.555, 0.2, 0.02) * F * 0.7
    add_tone("beard", [np.clip(beard, 0, 1) * (1 - lips)])
    add_tone("nostrils", [pair(X, Y, 0.045, NOSE_TIP_Y - 0.075, 0.022, 0.012) * F])
    # Shading that a local lighting model misses (occlusion in the sockets, the mouth line, the
    # chin's shadow on the neck): painted in, as photographs show it.
    sockets = pair(X, Y, EYE_X - 0.01, EYE_Y + 0.035, 0.11, 0.05) + 0.6 * pair(X, Y, EYE_X + 0.02, EYE_Y - 0.045, 0.09, 0.025)
    lip_line = gauss(X, Y, 0, MOUTH_Y, 0.2, 0.011) * (1 - smoothstep(0.2, 0.27, np.abs(X))) + 0.6 * gauss(X, Y, 0, MOUTH_Y - 0.115, 0.12, 0.018)
    under_chin = smoothstep(-0.9, -1.05, Y) * (1 - smoothstep(-1.6, -2.0, Y))
    add_tone("occlusion", [np.clip(sockets * F, 0, 1), lip_line * F, under_chin])
    dirs = rng.normal(size=(len(random_fields), 3)) * 0.2 + 1.0
    return MaskLibrary(np.stack(tone), np.stack(masks), slices, tone_slices, dirs)


# ---------------------------------------------------------------------------------------------
# Evaluation (torch)
# ---------------------------------------------------------------------------------------------
def _phi(x: torch.Tensor) -> torch.Tensor:
    """Standard normal CDF: a prior coefficient -> uniform position in a palette."""
    return 0.5 * (1 + stable_erf(x / math.sqrt(2)))


def _palette(palette: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear colour at position in [0, 1]: (B,) -> (B, 3)."""
    k = palette.shape[0] - 1
    p = position.clamp(0, 1) * k
    i0 = p.floor().long().clamp(max=k - 1)
    t = (p - i0.float()).unsqueeze(1)
    return palette[i0] * (1 - t) + palette[i0 + 1] * t


def hat_weights(value: torch.Tensor, knots: tuple[float, ...]) -> torch.Tensor:
    """(B,) -> (B, len(knots)) piecewise-linear interpolation weights (clamped at the ends)."""
    k = torch.tensor(knots, dtype=value.dtype, device=value.device)
    v = value.clamp(k[0], k[-1]).unsqueeze(1)
    idx = torch.bucketize(v.squeeze(1), k).clamp(1, len(knots) - 1)
    lo, hi = k[idx - 1], k[idx]
    t = ((v.squeeze(1) - lo) / (hi - lo)).unsqueeze(1)
    w = torch.zeros(value.shape[0], len(knots), dtype=value.dtype, device=value.device)
    w.scatter_(1, (idx - 1).unsqueeze(1), 1 - t)
    w.scatter_add_(1, idx.unsqueeze(1), t)
    return w


class AlbedoEvaluator:
    """Turns (albedo, expression) coefficients into per-vertex reflectance with three GEMMs."""

    def __init__(self, library: MaskLibrary, device: torch.device) -> None:
        self.lib = library
        self.tone = basis_tensor(library.tone).to(device)  # (K, V)
        self.masks = basis_tensor(library.masks).to(device)  # (J, V)
        self.dirs = torch.from_numpy(library.random_dirs).float().to(device)  # (R, 3)
        self.skin = torch.tensor(SKIN_PALETTE, dtype=torch.float32, device=device)
        self.hair = torch.tensor(HAIR_PALETTE, dtype=torch.float32, device=device)
        self.iris = torch.tensor(IRIS_PALETTE, dtype=torch.float32, device=device)
        self.device = device

    @staticmethod
    def named(c: torch.Tensor) -> dict[str, torch.Tensor]:
        """Coefficient columns by name, so reordering ALBEDO_SEMANTIC cannot mislabel one."""
        return {name: c[:, i] for name, i in ALBEDO_INDEX.items()}

    def skin_colour(self, c: torch.Tensor) -> torch.Tensor:
        coef = self.named(c)
        base = _palette(self.skin, _phi(coef["skin_tone"]))
        red, yellow = coef["skin_redness"], coef["skin_yellowness"]
        tint = torch.stack([0.015 * red + 0.008 * yellow, -0.006 * red + 0.006 * yellow, -0.012 * yellow], 1)
        return (base * (1 + 2 * tint)).clamp(0.02, 1.0)

    def hair_colour(self, c: torch.Tensor) -> torch.Tensor:
        coef = self.named(c)
        colour = _palette(self.hair, _phi(coef["hair_lightness"] - 0.8))
        red = coef["hair_redness"].clamp(min=0)
        colour = colour * torch.stack([1 + 0.15 * red, 1 - 0.03 * red, 1 - 0.1 * red], 1)
        t = ((coef["hair_grey"].unsqueeze(1) - 0.5) / 2.0).clamp(0, 1)
        grey = t * t * (3 - 2 * t)
        return colour * (1 - grey) + grey * 0.72

    def parts(self, c: torch.Tensor, expr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """skin (B,3), tone scale S (B,3,V), coverage (B,V), paint (B,3,V):
        albedo = clamp(skin * S * (1 - coverage) + paint, 0, 1)."""
        B = c.shape[0]
        lib = self.lib
        coef = self.named(c)
        skin = self.skin_colour(c)  # (B,3)
        # --- tone fields: a (B, 3, K) ---
        K = self.tone.shape[0]
        a = torch.zeros(B, 3, K, device=c.device)
        rs = lib.tone_slices["random"]
        rnd = c[:, len(ALBEDO_SEMANTIC) : len(ALBEDO_SEMANTIC) + (rs.stop - rs.start)]
        a[:, :, rs] = (rnd.unsqueeze(1) * (0.015 + 0.012 * (self.dirs.T.unsqueeze(0) - 1.0)))
        blush = (0.05 + 0.04 * coef["cheek_blush"]).clamp(0, 0.2)
        a[:, :, lib.tone_slices["blush"].start] = -blush.unsqueeze(1) * torch.tensor([0.0, 0.35, 0.3], device=c.device)
        a[:, :, lib.tone_slices["under_eye"].start] = -(0.12 + 0.06 * coef["under_eye"]).clamp(0, 0.4).unsqueeze(1)
        wr = ((coef["wrinkles"] + 1) / 2).clamp(0, 1)
        a[:, :, lib.tone_slices["wrinkles"].start] = -(0.06 * wr * wr * (3 - 2 * wr)).unsqueeze(1)
        bt = ((coef["beard_shadow"] - 0.3) / 1.5).clamp(0, 1)
        beard = 0.45 * bt * bt * (3 - 2 * bt)
        a[:, :, lib.tone_slices["beard"].start] = -beard.unsqueeze(1) * torch.tensor([0.55, 0.55, 0.5], device=c.device)
        a[:, :, lib.tone_slices["nostrils"].start] = -0.75
        occ = lib.tone_slices["occlusion"].start
        a[:, :, occ] = -0.28
        a[:, :, occ + 1] = -0.55
        a[:, :, occ + 2] = -0.35
        S = basis_product(a.reshape(B * 3, K), self.tone).add_(1.0).view(B, 3, -1)  # (B,3,V)
        # --- paint: weights w (B, J) and colours col (B, J, 3) ---
        J = self.masks.shape[0]
        w = torch.zeros(B, J, device=c.device)
        col = torch.zeros(B, J, 3, device=c.device)
        sclera = (torch.tensor([0.80, 0.78, 0.74], device=c.device) * (1 - 0.06 * coef["sclera_tint"].unsqueeze(1).clamp(-2, 2)))
        iris = _palette(self.iris, _phi(coef["iris_darkness"]) * 0.6 + _phi(coef["iris_hue"]) * 0.4)
        pupil = iris * 0.1
        lash = torch.tensor([0.06, 0.05, 0.045], device=c.device).expand(B, 3)
        eye_cols = torch.stack([sclera, iris, pupil, lash], 1)  # (B,4,3)
        for side_name, ei in (("eye_left", BLINK_EXPR[0]), ("eye_right", BLINK_EXPR[1])):
            hw = hat_weights(expr[:, ei].clamp(0, 1), BLINK_LEVELS)
            for li, level in enumerate(BLINK_LEVELS):
                s = lib.slices[f"{side_name}_{level}"]
                w[:, s] = hw[:, li : li + 1]
                col[:, s] = eye_cols
        hair = self.hair_colour(c)
        s = lib.slices["brows"]
        w[:, s] = hat_weights(coef["brow_thickness"], BROW_THICKNESS) * (0.93 + 0.05 * coef["brow_darkness"].unsqueeze(1)).clamp(0.6, 1.0)
        col[:, s] = torch.minimum(hair * 0.7, skin * 0.4).unsqueeze(1)  # brows always darker than skin
        density = _phi(coef["hair_density"] + 1.6)
        hh = hat_weights(coef["hairline_height"], HAIR_HEIGHTS)
        hr = hat_weights(coef["hairline_recession"], HAIR_RECESSIONS)
        for i, h in enumerate(HAIR_HEIGHTS):
            for j, rcs in enumerate(HAIR_RECESSIONS):
                s = lib.slices[f"hair_{h}_{rcs}"]
                weight = hh[:, i] * hr[:, j] * density
                w[:, s.start] = weight
                col[:, s.start] = hair * 0.75
                col[:, s.start + 1] = hair * 0.5
                w[:, s.start + 1] = weight
        s = lib.slices["lips"]
        lip = skin * torch.stack([0.88 + 0.06 * coef["lip_colour"], 0.52 - 0.04 * coef["lip_colour"], 0.54 - 0.03 * coef["lip_colour"]], 1)
        w[:, s] = 1.0
        col[:, s] = (lip * (0.85 - 0.07 * coef["lip_darkness"].unsqueeze(1)).clamp(0.5, 1.0)).unsqueeze(1)
        s = lib.slices["mouth"]
        ot = ((expr[:, JAW_OPEN_EXPR] - 0.25) / 0.5).clamp(0, 1)
        w[:, s] = (ot * ot * (3 - 2 * ot)).unsqueeze(1)
        col[:, s.start] = torch.tensor([0.18, 0.05, 0.05], device=c.device)
        col[:, s.start + 1] = torch.tensor([0.85, 0.82, 0.74], device=c.device)
        # hair strands: the second copy only adds colour, not coverage
        cover_w = w.clone()
        for name, s in lib.slices.items():
            if name.startswith("hair_"):
                cover_w[:, s.start + 1] = 0.0
        # two GEMMs rather than one over (B,4,J): both outputs come out contiguous, so the renderer
        # reads them without a copy
        paint = basis_product((w.unsqueeze(2) * col).permute(0, 2, 1).reshape(B * 3, J), self.masks).view(B, 3, -1)
        return skin, S, basis_product(cover_w, self.masks), paint

    def __call__(self, c: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        skin, S, coverage, paint = self.parts(c, expr)
        out = skin.unsqueeze(2) * S * (1 - coverage.clamp(0, 1).unsqueeze(1)) + paint
        return out.clamp(0, 1).permute(0, 2, 1)
