"""Training system: config checking, datasets/DM labels, loss goes down, exact resume, NaN stop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from synface.train.config import (
    ConfigError,
    config_from_dict,
    load_config,
    parse_overrides,
)
from synface.train.data import EpochSampler, build_train_data
from synface.train.heads import MarginHead
from synface.train.loop import load_checkpoint, train
from synface.train.mixup import domain_mix, psi_for_step


def make_synthetic(root: Path, ids: int = 5, per: int = 6, size: int = 112, mix: bool = True, seed: int = 0) -> Path:
    """Coloured-pattern identities in the builder's layout (manifest + dataset.json)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(ids):
        base = rng.uniform(0, 255, 3)
        folder = root / f"{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per):
            arr = np.empty((size, size, 3), np.uint8)
            arr[:] = base
            band = (i * 17) % (size - 24)
            arr[band:band + 24] = 255 - base
            arr = np.clip(arr + rng.normal(0, 12, arr.shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"{k:03d}.jpg")
            partner = (i + 1) % ids if (mix and k % 2) else -1
            rows.append({"path": f"{i:05d}/{k:03d}.jpg", "label": i, "partner": partner,
                         "phi": 0.75 if partner >= 0 else 1.0})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet")
    (root / "dataset.json").write_text(json.dumps({"num_identities": ids}))
    return root


def make_real(root: Path, ids: int = 4, per: int = 5) -> Path:
    make_synthetic(root, ids, per, size=100, mix=False, seed=7)
    (root / "manifest.parquet").unlink()
    (root / "dataset.json").unlink()
    return root


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("syn"))


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    return make_real(tmp_path_factory.mktemp("real"))


def tiny(data: Path, **extra) -> dict:
    cfg = {"data": str(data), "backbone": "compact", "embedding_dim": 64, "epochs": 2, "batch_size": 8,
           "lr": 0.05, "milestones": [10], "log_every": 1, "augment": "standard", "seed": 3}
    cfg.update(extra)
    return cfg


def weights_of(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return {**{f"m.{k}": v for k, v in ckpt["model"].items()}, **{f"h.{k}": v for k, v in ckpt["head"].items()}}


# ----------------------------------------------------------------------------- config


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="'lr_sheduler' is unknown; did you mean 'lr_schedule'"):
        config_from_dict({"data": "x", "lr_sheduler": "step"})
    with pytest.raises(ConfigError, match="'batch_size' must be a positive integer, got -3"):
        config_from_dict({"data": "x", "batch_size": -3})
    with pytest.raises(ConfigError, match="'amp'"):
        config_from_dict({"data": "x", "amp": "fp8"})
    with pytest.raises(ConfigError, match="'psi'"):
        config_from_dict({"data": "x", "real_root": "y", "psi": 1.5})
    with pytest.raises(ConfigError, match=r"eval_sets\[0\]\.folds"):
        config_from_dict({"data": "x", "eval_sets": [{"path": "lfw", "fold": [0, 1]}]})
    path = tmp_path / "c.yaml"
    path.write_text("preset: cpu-quick\ndata: somewhere\nlr: 1e-3\n")
    cfg = load_config(path, parse_overrides(["epochs=3", "milestones=[2]"]))
    assert (cfg.backbone, cfg.epochs, cfg.lr, cfg.milestones) == ("compact", 3, 1e-3, [2])
    paper = load_config(preset="paper", overrides={"data": "x"})
    assert (paper.backbone, paper.batch_size, paper.milestones, paper.head_s, paper.head_m) == (
        "iresnet50", 512, [24, 30, 36], 30.0, 0.5)


def test_bad_config_fails_before_anything_is_created(tmp_path, synthetic):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match="'epochs'"):
        train({**tiny(synthetic), "epochs": 0}, run_dir)
    with pytest.raises(ConfigError, match="'data'"):
        train(tiny(tmp_path / "missing"), run_dir)
    assert not run_dir.exists()


# ----------------------------------------------------------------------------- data and DM


def test_synthetic_soft_labels_and_dm_batches(synthetic, real):
    cfg = config_from_dict(tiny(synthetic, real_root=str(real), real_ids=3, real_k=4, psi="grid"))
    data = build_train_data(cfg, 56)
    assert data.paired and data.num_synthetic_classes == 5 and data.num_classes == 8
    # every synthetic item is seen once per epoch; real items cycle to the synthetic length
    keys = list(data.sampler)
    assert len(keys) == (30 // 8) * 8 and len({k[0] for k in keys}) == len(keys)
    batch = [data.dataset[k] for k in keys[:8]]
    xs, ys, ws, xr, yr = (torch.stack(t) for t in zip(*batch))
    assert xs.shape == (8, 3, 56, 56) and xs.min() >= -1 and xs.max() <= 1
    assert ys.shape == (8, 2) and torch.allclose(ws.sum(1), torch.ones(8))
    assert bool(((yr >= 5) & (yr < 8)).all()), "real labels are offset by the synthetic class count"
    psi = psi_for_step("grid", cfg.seed, 0, 0)
    assert psi == psi_for_step("grid", cfg.seed, 0, 0) and round(psi * 20) == psi * 20
    x, y, w = domain_mix(xs, ys, ws, xr, yr, 0.3)
    assert y.shape == (8, 3) and w.shape == (8, 3)
    assert torch.allclose(w.sum(1), torch.ones(8)) and torch.equal(y[:, 2], yr)
    assert torch.allclose(w[:, 2], torch.full((8,), 0.7))
    assert torch.allclose(x, 0.3 * xs + 0.7 * xr)
    loss, _ = MarginHead(16, 8)(torch.randn(8, 16), y, w)
    assert torch.isfinite(loss)


def test_sampler_is_a_function_of_seed_and_epoch():
    a, b = EpochSampler(20, 4, seed=1), EpochSampler(20, 4, seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    b.set_epoch(2, skip_steps=2)
    assert list(b) == list(a)[8:]
    r0, r1 = EpochSampler(20, 4, seed=1, rank=0, world_size=2), EpochSampler(20, 4, seed=1, rank=1, world_size=2)
    r0.set_epoch(2)
    r1.set_epoch(2)
    assert sorted(list(r0) + list(r1)) == sorted(a)


# ----------------------------------------------------------------------------- training


def test_tiny_run_lowers_loss_and_resume_is_exact(tmp_path, synthetic):
    cfg = tiny(synthetic, epochs=2, batch_size=4, steps_per_epoch=3, keep_epoch_checkpoints=True)
    full = train(cfg, tmp_path / "full")
    assert full["status"] == "finished" and full["epochs_completed"] == 2 and full["global_step"] == 6
    assert full["epoch_losses"][-1] < full["epoch_losses"][0]
    assert (tmp_path / "full" / "checkpoints" / "epoch_001.pt").exists()
    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {"train", "status"} <= {r["type"] for r in records}
    assert json.loads((tmp_path / "full" / "status.json").read_text())["status"] == "finished"

    # stop once after epoch 1 (boundary) and once mid-epoch 2, resuming each time
    steps = {"n": 0}
    stops = iter([3, 5])
    target = {"at": next(stops)}

    def tick(done: int, total: int) -> None:
        steps["n"] = done

    def should_stop() -> bool:
        return steps["n"] == target["at"]

    part = tmp_path / "part"
    first = train(cfg, part, progress=tick, stop_flag=should_stop)
    assert first["status"] == "stopped" and first["global_step"] == 3
    assert json.loads((part / "status.json").read_text())["status"] == "stopped"
    target["at"] = next(stops)
    second = train(cfg, part, resume=True, progress=tick, stop_flag=should_stop)
    assert second["status"] == "stopped" and second["global_step"] == 5
    final = train(cfg, part, resume=True)
    assert final["status"] == "finished" and final["global_step"] == full["global_step"]
    a, b = weights_of(tmp_path / "full"), weights_of(part)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_nan_loss_fails_and_keeps_last_good_checkpoint(tmp_path, synthetic, monkeypatch):
    calls = {"n": 0}
    forward = MarginHead.forward

    def poisoned(self, emb, labels, weights=None):
        calls["n"] += 1
        loss, logits = forward(self, emb, labels, weights)
        return (loss * float("nan") if calls["n"] > 4 else loss), logits

    monkeypatch.setattr(MarginHead, "forward", poisoned)
    run_dir = tmp_path / "nan"
    out = train(tiny(synthetic, epochs=3, batch_size=4, steps_per_epoch=3), run_dir)
    assert out["status"] == "failed" and "nan" in out["message"] and "last.pt" in out["message"]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "nan" in status["message"]
    last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["type"] == "status" and last["status"] == "failed"
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["epoch_step"] == 0 and ckpt["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_eval_during_training_and_eval_cli(tmp_path, synthetic):
    import argparse

    from synface.cli import eval as eval_cli
    from synface.data.verification_bin import write_bin

    # a .bin verification set built from the synthetic images: pairs of the same / other identity
    paths = sorted(synthetic.glob("*/*.jpg"))
    by_id: dict[str, list[Path]] = {}
    for p in paths:
        by_id.setdefault(p.parent.name, []).append(p)
    ids = sorted(by_id)
    images, issame = [], []
    for n in range(20):
        a = ids[n % len(ids)]
        same = n % 2 == 0
        b = a if same else ids[(n + 1) % len(ids)]
        images += [by_id[a][0].read_bytes(), by_id[b][1 + n % 4].read_bytes()]
        issame.append(same)
    bin_path = tmp_path / "toy.bin"
    write_bin(bin_path, images, issame)
    run_dir = tmp_path / "ev"
    out = train(tiny(synthetic, epochs=1, eval_sets=[{"path": str(bin_path), "name": "toy"}]), run_dir)
    assert out["status"] == "finished" and "toy" in out["eval"]
    assert 0 <= out["eval"]["toy"]["mean_accuracy"] <= 1
    assert "roc" in json.loads((run_dir / "eval.json").read_text())["toy"]

    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers(dest="verb"))
    out_json = tmp_path / "res.json"
    args = parser.parse_args(["eval", "--checkpoint", str(run_dir / "checkpoints" / "last.pt"),
                              "--bin", str(bin_path), "--json", "--out", str(out_json)])
    assert args.func(args) == 0
    res = json.loads(out_json.read_text())
    assert res["folds"] == 10 and "roc" in res and (tmp_path / "res.roc.csv").exists()


def test_cli_train_creates_a_run_and_rejects_bad_keys(tmp_path, synthetic, capsys):
    from synface.cli.train import main
    from synface.runs.registry import list_runs

    base = ["--preset", "cpu-quick", "--set", f"data={synthetic}", "--set", "epochs=1", "--set", "batch_size=4",
            "--set", "steps_per_epoch=2", "--set", "embedding_dim=32", "--root", str(tmp_path), "--no-progress"]
    assert main(base + ["--set", "lr_sheduler=poly"]) == 2
    assert "did you mean 'lr_schedule'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert main(base + ["--name", "cli", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[-1])
    assert result["status"] == "finished" and Path(out[0]).name.endswith("-cli")
    (row,) = list_runs(tmp_path)
    assert row.status == "finished" and row.name == "cli"
    assert main(["--resume", row.id, "--root", str(tmp_path), "--no-progress"]) == 0  # nothing left: finishes at once


@pytest.mark.parametrize("preset", ["standard", "digiface", "digiface-published", "none"])
def test_augment_presets_keep_shape_range_and_are_seeded(preset):
    from synface.train.augment import build_augment

    aug = build_augment(preset)
    x = torch.rand(3, 56, 56) * 2 - 1
    outs = [aug(x, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    for y in outs:
        assert y.shape == x.shape and y.min() >= -1 - 1e-5 and y.max() <= 1 + 1e-5
    assert torch.equal(outs[0], outs[1])
