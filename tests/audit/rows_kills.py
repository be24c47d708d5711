"""Audit rows: kill -9 at a milestone seen on disk, then the same command (or `train --resume`)
must finish with nothing lost, nothing done twice and no temp file left."""

from __future__ import annotations

import json

from tests.audit.harness import Context, Result, Row, images_in, metrics_steps
from tests.audit.rows_inputs import tiny_train

ROWS: list[Row] = []


def _temp_files(folder) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".creating-")]


def _generated(res: Result, ctx: Context) -> str | None:
    import pandas as pd

    out = ctx.case / "o"
    images = images_in(out)
    rows = len(pd.read_parquet(out / "manifest.parquet"))
    card = json.loads((out / "dataset.json").read_text())
    if len(images) != 300 or rows != 300 or card.get("num_images", 300) != 300:
        return f"{len(images)} images, {rows} manifest rows, card {card.get('num_images')}; expected 300"
    return f"temp files left: {_temp_files(out)[:3]}" if _temp_files(out) else None


ROWS.append(Row("kill-generate", ["generate", "--ids", 30, "--samples", 10, "--device", "cpu", "--batch", 2, "--out", "{case}/o"],
                kill_when=lambda ctx: len(images_in(ctx.case / "o")) >= 60, ok=_generated, timeout=240))


def _trained(res: Result, ctx: Context) -> str | None:
    run = ctx.case / "run"
    steps = metrics_steps(run)
    status = json.loads((run / "status.json").read_text()).get("status")
    if steps != list(range(1, 7)) or status != "finished":
        return f"steps {steps}, status {status}; expected steps 1..6, finished"
    return f"temp files left: {_temp_files(run)[:3]}" if _temp_files(run) else None


ROWS.append(Row("kill-train-mid-epoch", ["train", "--preset", "cpu-quick", "--no-progress", "--run-dir", "{case}/run",
                                         *tiny_train("{fix}/syn", epochs=2, steps=3)],
                kill_when=lambda ctx: (ctx.case / "run" / "metrics.jsonl").exists() and len(metrics_steps(ctx.case / "run")) >= 2,
                rerun=["train", "--resume", "{case}/run", "--no-progress"], ok=_trained, timeout=240))


def _packed(res: Result, ctx: Context) -> str | None:
    from synface.data.recordio import RecordReader

    out = ctx.case / "o"
    with RecordReader(out / "train.rec") as reader:
        if len(reader) != 16:
            return f"{len(reader)} records, expected 16"
        for i in range(len(reader)):
            reader.read(i)
    return f"temp files left: {_temp_files(out)[:3]}" if _temp_files(out) else None


ROWS.append(Row("kill-export-rec", ["export", "{fix}/syn", "--to", "rec", "--out", "{case}/o"],
                kill_when=lambda ctx: (ctx.case / "o").exists() and any((ctx.case / "o").iterdir()), ok=_packed, timeout=240))
