"""Synthetic datasets: layout, manifest, resume without duplicates, on-the-fly equality, seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from synface.data.errors import DataError
from synface.data.synth_set import SynthSet
from synface.data.synthetic import (
    OnTheFlyDataset,
    SynthConfig,
    SyntheticSpec,
    build_dataset,
    default_name,
    identity_seed,
)
from synface.generator import FaceGenerator


def test_names_follow_the_paper() -> None:
    assert default_name(SynthConfig(ids=10_000, samples=50)) == "Syn_10K_50"
    assert default_name(SynthConfig(ids=1000, samples=50, im=True)) == "Syn_1K_50_IM"
    assert "fixed-pose" in default_name(SynthConfig(ids=20, samples=5, pose="fixed"))


def test_training_and_benchmark_identity_seeds_never_meet() -> None:
    train = {identity_seed(s, i, "train") for s in range(5) for i in range(2000)}
    bench = {identity_seed(s, i, "benchmark") for s in range(5) for i in range(2000)}
    assert not train & bench


def test_bad_config_names_the_key() -> None:
    with pytest.raises(DataError, match="'ids'"):
        SynthConfig(ids=0, samples=3)
    with pytest.raises(DataError, match="'pose'"):
        SynthConfig(ids=3, samples=3, pose="sometimes")
    with pytest.raises(DataError, match="phi_grid"):
        SynthConfig(ids=3, samples=3, im=True, phi_grid=(0.5, 1.5))
    with pytest.raises(DataError, match="unknown key"):
        SynthConfig.from_dict({"ids": 3, "samples": 2, "colour": "red"})


def test_build_layout_manifest_and_card(tmp_path, gen: FaceGenerator) -> None:
    cfg = SynthConfig(ids=4, samples=3, im=True, seed=2)
    report = build_dataset(cfg, tmp_path / "set", gen)
    assert report.num_images == 12 and report.rendered == 12
    files = sorted(p.relative_to(tmp_path / "set").as_posix() for p in (tmp_path / "set").glob("*/*.jpg"))
    assert files[0] == "00000/000.jpg" and len(files) == 12
    manifest = pd.read_parquet(tmp_path / "set" / "manifest.parquet")
    assert {"path", "label", "partner", "phi", "shape_000", "light_026"} <= set(manifest.columns)
    assert ((manifest.partner != manifest.label) & (manifest.partner >= 0)).all()
    assert set(np.round(manifest.phi.astype(float), 2)) <= {round(0.05 * i, 2) for i in range(21)}
    card = SynthSet(tmp_path / "set").card()
    assert card["num_images"] == 12 and card["generator_version"] == gen.version


def test_fixed_attributes_are_held_per_identity(tmp_path, gen: FaceGenerator) -> None:
    spec = SyntheticSpec(SynthConfig(ids=3, samples=4, pose="fixed"), gen)
    coeffs, _ = spec.identity_batch(1)
    assert (coeffs.pose == coeffs.pose[0]).all()
    assert not (coeffs.light == coeffs.light[0]).all()


def test_dataset_identities_come_from_the_models_prior(gen: FaceGenerator) -> None:
    spec = SyntheticSpec(SynthConfig(ids=2000, samples=2), gen)
    names = [info.name for info in gen.model.albedo_info]
    albedo = torch.stack([spec.identity(i)[1] for i in range(2000)]).numpy()
    tone, hair = albedo[:, names.index("skin_tone")], albedo[:, names.index("hair_lightness")]
    assert np.corrcoef(tone, hair)[0, 1] == pytest.approx(-0.5, abs=0.06)


def test_killed_build_resumes_without_duplicates(tmp_path, gen: FaceGenerator) -> None:
    cfg = SynthConfig(ids=6, samples=4, seed=1)
    out = tmp_path / "set"
    calls = {"n": 0}

    def stop_after_first_batch() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    partial = build_dataset(cfg, out, gen, batch_size=8, stop=stop_after_first_batch)
    assert 0 < partial.rendered < 24 and not (out / "dataset.json").exists()
    (out / "00005").mkdir(exist_ok=True)
    (out / "00005" / ".003.jpg.tmp").write_bytes(b"half")  # a write killed mid-way
    first = {p.name: p.read_bytes() for p in out.glob("00000/*.jpg")}
    resumed = build_dataset(cfg, out, gen, batch_size=8)
    assert resumed.already_present == partial.rendered and resumed.rendered == 24 - partial.rendered
    assert len(list(out.glob("*/*.jpg"))) == 24 and not list(out.glob("*/.*.tmp"))
    assert {p.name: p.read_bytes() for p in out.glob("00000/*.jpg")} == first
    fresh = build_dataset(cfg, tmp_path / "fresh", gen)
    for p in out.glob("*/*.jpg"):
        assert p.read_bytes() == (tmp_path / "fresh" / p.relative_to(out)).read_bytes()
    assert fresh.rendered == 24


def test_a_folder_of_another_set_is_refused(tmp_path, gen: FaceGenerator) -> None:
    build_dataset(SynthConfig(ids=2, samples=1), tmp_path / "a", gen)
    with pytest.raises(DataError, match="different synthetic set"):
        build_dataset(SynthConfig(ids=2, samples=2), tmp_path / "a", gen)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        build_dataset(SynthConfig(ids=2, samples=1), tmp_path / "b", gen)


def test_on_the_fly_equals_the_png_build(tmp_path, gen: FaceGenerator) -> None:
    cfg = SynthConfig(ids=3, samples=3, im=True, image_format="png", seed=4)
    build_dataset(cfg, tmp_path / "set", gen)
    manifest = pd.read_parquet(tmp_path / "set" / "manifest.parquet")
    ds = OnTheFlyDataset(cfg, gen)
    batch = ds.get_batch([8, 0, 4])
    for j, idx in enumerate([8, 0, 4]):
        disk = np.asarray(Image.open(tmp_path / "set" / manifest.path[idx]))
        assert np.array_equal(disk, batch["images"][j].numpy())
        assert batch["labels"][j, 0] == manifest.label[idx] and batch["labels"][j, 1] == manifest.partner[idx]
        assert abs(float(batch["weights"][j, 0]) - manifest.phi[idx]) < 1e-6
    single = ds[4]
    assert np.array_equal(single["images"].numpy(), batch["images"][2].numpy())


def test_generate_cli_builds_and_resumes(tmp_path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "synface", "generate", "--ids", "3", "--samples", "2", "--im", "--seed", "5",
           "--out", str(tmp_path / "cli"), "--device", "cpu", "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    record = json.loads(first.stdout.strip().splitlines()[-1])
    assert record["rendered"] == 6 and record["name"] == "Syn_3_2_IM"
    again = json.loads(subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout.strip().splitlines()[-1])
    assert again["rendered"] == 0 and again["already_present"] == 6


def test_export_to_recordio_round_trips(tmp_path, gen: FaceGenerator) -> None:
    import subprocess
    import sys

    from synface.data.recordio import RecordReader

    build_dataset(SynthConfig(ids=3, samples=2, seed=8), tmp_path / "set", gen)
    subprocess.run([sys.executable, "-m", "synface", "export", str(tmp_path / "set"), "--to", "rec",
                    "--out", str(tmp_path / "rec")], capture_output=True, text=True, timeout=120, check=True)
    reader = RecordReader(tmp_path / "rec" / "train.rec", tmp_path / "rec" / "train.idx")
    assert reader.num_images == 6 and reader.num_identities == 3
    raw, label = reader.read(0, decode=False)
    assert raw == (tmp_path / "set" / "00000" / "000.jpg").read_bytes() and label == 0


def test_verification_benchmark_cli_writes_lfw_layout_and_bin(tmp_path) -> None:
    import subprocess
    import sys

    from synface.data.lfw import lfw_verification_pairs, read_people
    from synface.data.verification_bin import read_bin

    out = tmp_path / "bench"
    subprocess.run([sys.executable, "-m", "synface", "generate", "--verification", "--folds", "2",
                    "--pairs-per-fold", "4", "--out", str(out), "--device", "cpu", "--json"],
                   capture_output=True, text=True, timeout=300, check=True)
    pairs = lfw_verification_pairs(out)
    assert len(pairs) == 16 and pairs.num_folds == 2 and pairs.issame.sum() == 8
    folds = read_people(out / "people.txt")
    assert not {n for n, _ in folds[0]} & {n for n, _ in folds[1]}
    from_bin = read_bin(out / "benchmark.bin")
    assert len(from_bin) == 16 and list(from_bin.issame) == list(pairs.issame)


def test_a_complete_set_built_again_keeps_its_card(tmp_path, gen: FaceGenerator) -> None:
    """Nothing rendered, nothing changed: the card stays as written (a study tells a rebuilt set
    from the same one by it)."""
    cfg = SynthConfig(ids=2, samples=1)
    build_dataset(cfg, tmp_path / "set", gen)
    before = (tmp_path / "set" / "dataset.json").read_bytes()
    again = build_dataset(cfg, tmp_path / "set", gen)
    assert again.rendered == 0 and (tmp_path / "set" / "dataset.json").read_bytes() == before
