"""Evaluation progress (issue 18 item 4): a readable stage in status.json while a set is decoded
and embedded, throttled writes, and an ETA that counts the evaluations still ahead."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from synface.data.verification_bin import write_bin
from synface.eval.progress import EvalCost, EvalTicker, eval_rounds
from synface.eval.run_eval import EvalSet, evaluate, load_pairs


def _jpeg(colour: np.ndarray, rng: np.random.Generator, size: int = 112) -> bytes:
    arr = np.clip(colour + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Path, Path]:
    """A 4-identity training set (manifest layout) and a 20-pair .bin of the same colours."""
    root = tmp_path_factory.mktemp("evprog")
    rng = np.random.default_rng(0)
    colours = rng.uniform(0, 255, (4, 3))
    rows = []
    for i, colour in enumerate(colours):
        (root / "syn" / f"{i:05d}").mkdir(parents=True)
        for k in range(4):
            (root / "syn" / f"{i:05d}" / f"{k}.jpg").write_bytes(_jpeg(colour, rng))
            rows.append({"path": f"{i:05d}/{k}.jpg", "label": i, "partner": -1, "phi": 1.0})
    pd.DataFrame(rows).to_parquet(root / "syn" / "manifest.parquet")
    (root / "syn" / "dataset.json").write_text(json.dumps({"num_identities": 4}))
    images, issame = [], []
    for n in range(20):
        a, same = n % 4, n % 2 == 0
        b = a if same else (a + 1) % 4
        images += [_jpeg(colours[a], rng), _jpeg(colours[b], rng)]
        issame.append(same)
    write_bin(root / "toy.bin", images, issame)
    return root / "syn", root / "toy.bin"


def test_eval_rounds_follow_the_training_schedule():
    assert eval_rounds(0, 3, 1) == 3
    assert eval_rounds(0, 5, 2) == 3  # after epochs 2, 4 and the last (5)
    assert eval_rounds(4, 5, 2) == 1 and eval_rounds(5, 5, 2) == 0
    assert eval_rounds(1, 4, 4) == 1


def test_ticker_throttles_writes_and_names_the_stage():
    now = [0.0]
    writes: list[dict] = []
    cli: list[tuple] = []
    cost = EvalCost()
    ticker = EvalTicker("lfw", lambda **f: writes.append(f), cost, eta_after_s=100.0, embed_estimate_s=60.0,
                        cli=lambda *a: cli.append(a), interval_s=1.0, clock=lambda: now[0])
    for done in range(64, 6001, 64):  # decoding 6,000 images, 0.01 s per 64
        now[0] += 0.01
        ticker.decoding(min(done, 6000), 6000)
    ticker.decoding(6000, 6000)
    decode_writes = [w for w in writes if "decoding" in w["stage"]]
    assert decode_writes[0]["stage"] == "evaluating lfw: decoding 64/6,000 images"
    assert decode_writes[-1]["stage_progress"] == 1.0
    assert len(decode_writes) <= 4  # about 0.94 s of ticks: the first, at most one a second, the end
    for done in range(200, 6001, 200):  # embedding, 0.5 s per 200 images
        now[0] += 0.5
        ticker.embedding(done, 6000)
    embed_writes = [w for w in writes if "decoding" not in w["stage"]]
    assert embed_writes[0]["stage"] == "evaluating lfw: 200/6,000 images"
    assert 10 <= len(embed_writes) <= 17  # 15 s of ticks, one write a second at most
    mid = embed_writes[len(embed_writes) // 2]
    done = int(mid["stage"].split(": ")[1].split("/")[0].replace(",", ""))
    assert mid["stage_progress"] == pytest.approx(done / 6000, abs=1e-4)
    assert mid["eta_s"] == pytest.approx(100 + 0.5 / 200 * (6000 - done), abs=0.2)  # this set's rest + what follows
    assert embed_writes[-1]["eta_s"] == pytest.approx(100.0)
    assert cost.embed_s["lfw"] == pytest.approx(15.0 / 6000) and "lfw" in cost.decode_s
    assert ("eval lfw (decoding)", 6000, 6000) in cli and cli[-1] == ("eval lfw", 6000, 6000)


def test_cost_counts_decoding_once_and_embedding_every_round(toy):
    _, bin_path = toy
    es = EvalSet("toy", load_pairs(bin_path))
    cost = EvalCost()
    cost.decode_s["toy"], cost.embed_s["toy"] = 0.01, 0.002
    n = es.num_images
    assert cost.seconds([es], 112, 3, None) == pytest.approx(n * 0.01 + 3 * n * 0.002)
    assert cost.seconds([es], 112, 3, None, decoded=True) == pytest.approx(3 * n * 0.002)
    assert cost.seconds([es], 112, 0, None) == 0
    fresh = EvalCost()  # nothing measured: decoding timed on a few images, embedding from training
    assert fresh.seconds([es], 112, 2, train_images_per_s=100.0) > 2 * n * (2 / 3) / 100
    fresh.seed([{"type": "eval", "set": "toy", "images": 80, "embed_seconds": 1.6, "decode_seconds": 0.8}])
    assert fresh.embed_s["toy"] == pytest.approx(0.02) and fresh.decode_s["toy"] == pytest.approx(0.01)


def test_evaluate_reports_decoding_then_embedding(toy):
    from synface.models.backbones import build_backbone

    _, bin_path = toy
    torch.manual_seed(0)
    net = build_backbone("compact", 32)
    es = EvalSet("toy", load_pairs(bin_path))
    decode, embed = [], []
    evaluate(net, es, batch_size=40, progress=lambda d, t: embed.append((d, t)),
             decode_progress=lambda d, t: decode.append((d, t)))
    assert decode[-1] == (40, 40) and embed[-1] == (40, 40) and es.is_cached(net.input_size)
    # progress alone: one bar over both phases on a fresh set, embedding only once decoded
    fresh, combined = EvalSet("toy", load_pairs(bin_path)), []
    evaluate(net, fresh, batch_size=40, progress=lambda d, t: combined.append((d, t)))
    assert combined[-1] == (80, 80) and [d for d, _ in combined] == sorted(d for d, _ in combined)
    again: list = []
    evaluate(net, fresh, batch_size=40, progress=lambda d, t: again.append((d, t)))
    assert again[-1] == (40, 40)


def test_training_shows_evaluation_in_status_and_eta(toy, tmp_path, monkeypatch):
    from synface.runs.run import Run
    from synface.train.loop import train

    syn, bin_path = toy
    writes: list[dict] = []
    original = Run.write_status

    def spy(self, **fields):
        writes.append(dict(fields))
        return original(self, **fields)

    monkeypatch.setattr(Run, "write_status", spy)
    cli: list[tuple] = []
    cfg = {"data": str(syn), "backbone": "compact", "embedding_dim": 32, "epochs": 1, "batch_size": 8,
           "log_every": 1, "eval_every": 1, "eval_sets": [{"path": str(bin_path), "name": "toy"}], "seed": 1}
    out = train(cfg, tmp_path / "run", eval_progress=lambda *a: cli.append(a))
    assert out["status"] == "finished"
    stages = [w for w in writes if w.get("stage")]
    assert any(w["stage"] == "evaluating toy: decoding 40/40 images" for w in stages)
    assert any(w["stage"] == "evaluating toy: 40/40 images" and w["stage_progress"] == 1.0 for w in stages)
    # the last training step's ETA is the evaluation still ahead, not zero
    last_step = [w for w in writes if w.get("status") == "running" and w.get("step") == out["global_step"]]
    assert last_step and last_step[-1]["eta_s"] > 0
    final = json.loads((tmp_path / "run" / "status.json").read_text())
    assert final["stage"] is None and final["status"] == "finished"
    record = Run(tmp_path / "run").read_metrics("eval")[0]
    assert record["images"] == 40 and record["embed_seconds"] > 0 and record["decode_seconds"] > 0
    assert ("eval toy (decoding)", 40, 40) in cli and ("eval toy", 40, 40) in cli
