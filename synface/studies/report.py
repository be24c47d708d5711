"""A study's report: its table as Markdown, CSV, HTML and PNG, with the paper's trend checked."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from synface.analysis import tables
from synface.analysis.verdicts import LEVEL, Verdict, table_verdicts
from synface.base.files import open_regular
from synface.base.workspace import workspace_root
from synface.face.builtin import GENERATOR_MODEL_VERSION
from synface.studies.plan import SCALES, Plan
from synface.studies.staleness import current_rows


#: What a report at each reduced scale can and cannot say (the paper scale needs no caveat).
CAVEATS = {
    "cpu": "Small-scale reproduction: absolute accuracies are far below the paper's (small sets, a compact 56x56 "
           "network, minutes of CPU training); only the direction of the differences is comparable.",
    "gpu": "GPU-scale reproduction: the paper's IResNet-50 at 112x112 with AMP, but sets a fraction of the paper's "
           "size and 2 epochs instead of 40; absolute accuracies stay below the paper's, the directions are comparable.",
    "tiny": "Smoke test: a few training steps scored on a handful of test pairs. It checks that every stage runs, "
            "not the paper; its verdicts are expected to be 'not resolved'.",
}


def trend_lines(name: str, df, verdicts: list[Verdict]) -> list[str]:
    """Whether the paper's trends hold: one line per verdict, each with its difference, 95% CI and
    holds / reversed / not resolved (`verdicts` from synface.analysis.verdicts.table_verdicts)."""
    if df.empty:
        return ["No finished runs: no trend to check."]
    lines = [v.line() for v in verdicts]
    return lines or ["Not enough finished cells to check the paper's trend."]


def seeds_lines(verdicts: list[Verdict]) -> list[str]:
    """How many seeds would resolve each of the paper's effects at the spread these runs measured."""
    lines = [line for v in verdicts if (line := v.seeds_line()) is not None]
    return lines or ["The paper gives no figure for these comparisons, so no effect size to plan seeds for."]


def _plot_series(name: str, df) -> tuple[list[str], list[tuple[str, list[float], list[float]]], str]:
    """(group labels, [(series name, values, errors)], title) of a table's grouped bar chart."""
    if df.empty:
        return [], [], name
    if name == "table1":
        groups = [str(s) for s in df["train_set"]]
        sets = [c[:-4] for c in df.columns if c.endswith(" acc")]
        return groups, [(s, df[f"{s} acc"].tolist(), df[f"{s} std"].tolist()) for s in sets], "Table 1: cross-domain accuracy (%)"
    if name in ("table3", "context"):
        groups = [str(m) for m in df["method"]]
        title = ("Table 3: synthetic, real and domain mixup, LFW accuracy (%)" if name == "table3"
                 else "Faces in context photos: plain vs context, LFW accuracy (%)")
        return groups, [(tables.LFW_SET, df[f"{tables.LFW_SET} acc"].tolist(), df[f"{tables.LFW_SET} std"].tolist())], title
    if name == "table2":
        groups = [f"{i} ids x {s}" for i, s in zip(df["ids"], df["samples"])]
        title = "Table 2: identities x samples, LFW accuracy (%)"
    else:
        groups = [str(v) for v in df["varied"]]
        title = "Figure 4: factors varied per image, LFW accuracy (%)"
    series = [(s, df[f"{s} acc"].tolist(), df[f"{s} std"].tolist()) for s in ("no IM", "IM") if f"{s} acc" in df]
    return groups, series, title


def plot_png(groups: list[str], series: list[tuple[str, list[float], list[float]]], title: str, path: str | Path,
             size: tuple[int, int] = (900, 500)) -> None:
    """A grouped bar chart with error bars, drawn with PIL (no browser or kaleido needed)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    from synface.base.files import atomic_path  # noqa: PLC0415

    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, 20, 40, 90
    draw.text((left, 12), title, fill="black")
    vals = [v + (e if e == e else 0) for _, vs, es in series for v, e in zip(vs, es) if v == v]
    lo = 50.0 if all(v >= 50 for v in vals) else 0.0
    hi = max([lo + 1.0, *vals])
    hi = min(100.0, np.ceil(hi / 5) * 5) if hi <= 100 else hi
    y = lambda v: top + (h - top - bottom) * (1 - (v - lo) / max(hi - lo, 1e-9))  # noqa: E731
    for t in np.linspace(lo, hi, 6):
        draw.line([(left, y(t)), (w - right, y(t))], fill=(225, 225, 225))
        draw.text((8, y(t) - 6), f"{t:.0f}", fill="black")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    n_g, n_s = max(1, len(groups)), max(1, len(series))
    slot = (w - left - right) / n_g
    bar = slot * 0.8 / n_s
    for gi, g in enumerate(groups):
        x0 = left + gi * slot + slot * 0.1
        for si, (_, vs, es) in enumerate(series):
            v, e = vs[gi], es[gi]
            if v != v:  # NaN: missing cell
                continue
            xa = x0 + si * bar
            draw.rectangle([xa, y(max(v, lo)), xa + bar - 2, y(lo)], fill=colours[si % len(colours)])
            if e == e and e > 0:
                cx = xa + bar / 2 - 1
                draw.line([(cx, y(min(v + e, hi))), (cx, y(max(v - e, lo)))], fill="black", width=2)
            draw.text((xa, y(max(v, lo)) - 12), f"{v:.1f}", fill="black")
        draw.text((x0, h - bottom + 8), g[:24], fill="black")
    for si, (s, _, _) in enumerate(series):
        draw.rectangle([left + si * 140, h - 30, left + si * 140 + 12, h - 18], fill=colours[si % len(colours)])
        draw.text((left + si * 140 + 18, h - 31), s, fill="black")
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def plot_html(groups: list[str], series: list[tuple[str, list[float], list[float]]], title: str, path: str | Path) -> bool:
    """The same chart as a self-contained plotly HTML (plotly.js embedded: works offline); False,
    writing nothing, where plotly is not installed (a bare GPU machine), so a long study still
    ends with its report."""
    try:
        import plotly.graph_objects as go  # noqa: PLC0415
    except ImportError:
        return False

    from synface.base.files import atomic_path  # noqa: PLC0415

    fig = go.Figure([go.Bar(name=s, x=groups, y=vs, error_y={"type": "data", "array": es}) for s, vs, es in series])
    fig.update_layout(title=title, barmode="group", yaxis_title="accuracy (%)")
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
    return True


def results_dir(root: str | Path | None = None) -> Path:
    """Where reports go by default: the workspace, never the repository's shipped results/."""
    return workspace_root(root) / "results"


_SCALE_LINE = re.compile(r"\(scale `([A-Za-z0-9_-]+)`\)")


def report_scale(md: str | Path) -> str | None:
    """The scale a written report (`<stem>.md`) was made at, from its title line; None when the
    file is missing or does not say. Why: every scale writes the same file names, so a page must
    not show a smoke test's figure as another scale's."""
    try:  # a regular file only: a FIFO named like a report must not hang the page
        with open_regular(md, follow_links=True) as f:
            first = f.readline(500).decode("utf-8")
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    found = _SCALE_LINE.search(first)
    return found.group(1) if found else None


def write_report(plan: Plan, out_dir: str | Path, elapsed_s: float | None = None) -> dict[str, Path]:
    """results/<name>.md, .csv, .html (where plotly is installed) and .png from the registry (the plan's
    scale only); the markdown checks the paper's trends with confidence intervals."""
    from synface.base.files import atomic_path, sweep_temp_files  # noqa: PLC0415

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(out_dir)  # of a report a kill interrupted
    rows, stale = current_rows(plan.root, plan.scale)
    df = tables.build_table(plan.name, plan.root, plan.scale, model=plan.model, rows=rows)
    stem = plan.study  # table2 for the built-in head, table2-<model> for a learned one
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("md", "csv", "html", "png")}
    df.to_csv(paths["csv"], index=False)
    groups, series, title = _plot_series(plan.name, df)
    if not plot_html(groups, series, title, paths["html"]):
        del paths["html"]
    plot_png(groups, series, title, paths["png"])
    verdicts = table_verdicts(plan.name, plan.root, plan.scale, model=plan.model, rows=rows)
    sc = SCALES[plan.scale]
    lines = [f"# {title.split(':')[0]} (scale `{plan.scale}`)", "",
             f"Accuracy in % as mean ± std over the test folds of {plan.seeds} training seed(s) pooled "
             f"(the `seeds` column is the number of finished seeds per cell). Verification is k-fold over the test "
             f"pairs' own folds (threshold chosen on the other folds).", "", tables.to_markdown(df),
             "## Does the paper's trend hold?", "",
             f"Each line gives the difference between two conditions in accuracy points with its {LEVEL:.0%} "
             "confidence interval (Student t over the matched training seed x test fold pairs; Welch's unpaired "
             "interval where the line says so), and a verdict against the paper's direction: holds (the interval "
             "lies on the paper's side of 0), reversed (on the other side) or not resolved at this scale (it "
             "contains 0). Folds of one seed share a trained model, so these intervals lean narrow.", ""]
    if stale:
        lines += [f"_Left out: {len(stale)} finished run(s) trained on an earlier build of their set (rebuilt since): "
                  f"{', '.join(stale[:6])}{' ...' if len(stale) > 6 else ''}. `reproduce` archives and retrains each "
                  "when its cell runs._", ""]
    lines += [f"- {t}" for t in trend_lines(plan.name, df, verdicts)]
    lines += ["", "## How many seeds would resolve the paper's effect?", ""]
    lines += [f"- {t}" for t in seeds_lines(verdicts)]
    lines += ["", "## Setup", ""]
    lines += [f"- {n}" for n in plan.notes]
    lines += [f"- training preset `{sc.preset}`, overrides {sc.train}; backbone "
              f"`{plan.runs[0].config['backbone'] if plan.runs else '-'}`, {plan.runs[0].config['epochs'] if plan.runs else '-'} epochs",
              "- datasets: " + ", ".join(f"{d.name} ({d.images} images)" for d in plan.datasets),
              f"- face model `{plan.model}`, generator `{plan.model_version or GENERATOR_MODEL_VERSION}` "
              "(synthetic sets refuse to resume under another version)"]
    if elapsed_s is not None:
        lines.append(f"- wall time of this reproduce call: {elapsed_s / 60:.1f} min")
    lines += ["", f"![{plan.name}]({stem}.png)", ""]
    if "html" in paths:
        lines += [f"Interactive chart: [{stem}.html]({stem}.html)", ""]
    if plan.scale in CAVEATS:
        lines.append(f"_{CAVEATS[plan.scale]}_")
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths
