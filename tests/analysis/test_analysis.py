"""Analysis: feature extraction and its cache, class statistics, UMAP, tables from run folders, the pages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synface.analysis import tables
from synface.runs.run import Run
from synface.analysis.class_stats import class_statistics, class_table
from synface.analysis.features import (
    extract_features,
    list_checkpoints,
    list_datasets,
    resolve_dataset,
)
from synface.data.errors import DataError
from tests.support import REPO  # noqa: E402


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from synface.data.synthetic import SynthConfig, build_dataset

    out = tmp_path_factory.mktemp("ws") / "datasets" / "Syn_4_3_IM"
    build_dataset(SynthConfig(ids=4, samples=3, im=True), out)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from synface.models.backbones import build_backbone

    torch.manual_seed(0)
    net = build_backbone("compact", 64)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    torch.save({"model": net.state_dict(), "config": {"backbone": "compact", "embedding_dim": 64},
                "input_size": net.input_size}, path)
    return path


def test_features_shapes_metadata_and_cache(tiny_set, checkpoint, tmp_path):
    calls = []
    fs = extract_features(checkpoint, tiny_set, max_images=None, progress=lambda d, t: calls.append((d, t)),
                          root=tmp_path)
    assert fs.features.shape == (12, 64) and fs.features.dtype == np.float32
    assert np.allclose(np.linalg.norm(fs.features, axis=1), 1, atol=1e-5)
    assert list(fs.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3] and fs.dataset == "Syn_4_3_IM"
    assert {"path", "identity", "phi", "yaw_deg", "expression", "light_ambient"} <= set(fs.meta.columns)
    assert fs.meta["phi"].between(0, 1).all() and calls[-1] == (12, 12) and not fs.from_cache
    cache = Path(fs.cache_path)
    assert cache.parent == tmp_path / "features" and cache.suffix == ".npz"
    again = extract_features(checkpoint, tiny_set, max_images=None, progress=lambda d, t: 1 / 0, root=tmp_path)
    assert again.from_cache and np.array_equal(again.features, fs.features)
    assert again.meta["identity"].tolist() == fs.meta["identity"].tolist()
    part = extract_features(checkpoint, tiny_set, max_images=5, root=tmp_path)  # whole identities kept
    assert len(part) == 6 and part.cache_path != fs.cache_path
    # an ImageFolder view of the same images, and a module instead of a path
    from synface.models.checkpoint import load_checkpoint_model

    net, _ = load_checkpoint_model(checkpoint)
    view = tmp_path / "folder"
    view.mkdir()
    for ident in ("00000", "00001"):
        (view / ident).symlink_to(tiny_set / ident)
    folder = extract_features(net, view, max_images=None, root=tmp_path)
    assert folder.features.shape == (6, 64) and folder.meta["identity"].tolist()[:1] == ["00000"]
    assert np.allclose(folder.features, fs.features[:6], atol=1e-5)  # same images, same model
    with pytest.raises(DataError):
        extract_features(checkpoint, tmp_path / "missing", root=tmp_path)


def test_resolve_and_list(tiny_set, tmp_path):
    assert resolve_dataset(tiny_set).kind == "synthetic"
    lfw = tmp_path / "lfw" / "images" / "A_B"
    lfw.mkdir(parents=True)
    (tmp_path / "lfw" / "pairs.txt").write_text("1\t1\n")
    assert resolve_dataset(tmp_path / "lfw").kind == "lfw"
    with pytest.raises(DataError):
        resolve_dataset(tmp_path / "nothing")
    names = [d["name"] for d in list_datasets(tiny_set.parent.parent)]
    assert names == ["Syn_4_3_IM"] and list_checkpoints(tmp_path) == []


def test_class_stats_on_constructed_features():
    rng = np.random.default_rng(0)
    a, b = np.zeros(8), np.zeros(8)
    a[0], b[1] = 1, 1  # orthogonal class centres: inter-class cosine ~ 0
    x = np.concatenate([a + 0.01 * rng.normal(size=(20, 8)), b + 0.01 * rng.normal(size=(30, 8))])
    y = np.array([0] * 20 + [1] * 30)
    s = class_statistics(x, y)
    assert s["intra_mean"] > 0.99 and abs(s["inter_mean"]) < 0.05 and s["separation"] > 0.9
    assert s["classes"] == 2 and s["images"] == 50 and s["intra_pairs"] == 190 + 435
    assert s["d_prime"] > 10
    # sampled path on a bigger set: same answer within sampling error, reproducible by seed
    c = np.eye(16)[rng.integers(0, 16, 3000)] + 0.05 * rng.normal(size=(3000, 16))
    lab = np.argmax(c, 1)
    s1 = class_statistics(c, lab, max_pairs=5000, seed=1)
    assert s1 == class_statistics(c, lab, max_pairs=5000, seed=1)
    assert s1["intra_pairs"] == 5000 and s1["intra_mean"] > 0.9 and abs(s1["inter_mean"]) < 0.05
    single = class_statistics(np.eye(4), np.arange(4))  # one image per class: no intra pairs
    assert np.isnan(single["intra_mean"]) and single["inter_pairs"] == 6
    assert list(class_table({"x": s})["dataset"]) == ["x"]


@pytest.mark.slow  # the first UMAP call in a process JIT-compiles (~20 s on a free CPU, more when shared)
def test_umap_shapes():
    from synface.analysis.umap_embed import embed_umap

    rng = np.random.default_rng(0)
    x = np.repeat(np.eye(4, 16), 15, axis=0) + 0.1 * rng.normal(size=(60, 16))
    y = embed_umap(x, 2, n_neighbors=5, n_epochs=30)
    assert y.shape == (60, 2) and np.isfinite(y).all()
    assert embed_umap(x[:4], 3).shape == (4, 3)  # tiny input: PCA fallback
    with pytest.raises(ValueError):
        embed_umap(np.full((10, 3), np.nan))


def _fake_run(root: Path, name: str, study: str, cell: dict, seed: int, evals: dict[str, list[float]],
              status: str = "finished") -> Path:
    path = root / "runs" / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"name": name, "seed": seed}))
    (path / "status.json").write_text(json.dumps({"status": status}))
    (path / "eval.json").write_text(json.dumps({
        s: {"fold_accuracies": f, "mean_accuracy": float(np.mean(f)), "std_accuracy": float(np.std(f))}
        for s, f in evals.items()}))
    Run(path).tag_study(study, cell, key=f"k-{name}", seed=seed, scale="cpu")
    return path


def test_tables_from_fake_runs(tmp_path):
    for seed, (a, b) in enumerate([(0.70, 0.74), (0.72, 0.76)]):
        _fake_run(tmp_path, f"t2a{seed}", "table2", {"ids": 100, "samples": 10, "im": False}, seed,
                  {"LFW": [a, a + 0.02]})
        _fake_run(tmp_path, f"t2b{seed}", "table2", {"ids": 100, "samples": 10, "im": True}, seed,
                  {"LFW": [b, b + 0.02]})
    _fake_run(tmp_path, "t1s", "table1", {"train": "Syn", "train_set": "Syn_1"}, 0, {"LFW": [0.6, 0.62], "SynBench": [0.9, 0.92]})
    _fake_run(tmp_path, "t1r", "table1", {"train": "Real", "train_set": "Real"}, 0, {"LFW": [0.8, 0.8], "SynBench": [0.7, 0.7]})
    _fake_run(tmp_path, "f4", "figure4", {"varied": "pose", "im": True}, 0, {"LFW": [0.5, 0.6]})
    t2 = tables.table2(tmp_path)
    row = t2.iloc[0]
    assert (row["ids"], row["samples"], row["seeds"]) == (100, 10, 2)
    assert row["no IM acc"] == pytest.approx(72.0) and row["IM acc"] == pytest.approx(76.0)
    assert row["IM gain"] == pytest.approx(4.0)
    assert row["no IM std"] == pytest.approx(np.std([70, 72, 72, 74]))
    t1 = tables.table1(tmp_path)
    assert set(t1["train"]) == {"Syn", "Real"} and "SynBench acc" in t1
    assert tables.table3(tmp_path).empty and len(tables.figure4(tmp_path)) == 1
    assert tables.table2(tmp_path, scale="paper").empty
    md = tables.to_markdown(t2)
    assert "| ids | samples | no IM | IM | seeds | IM gain |" in md and "72.00 ± 1.41" in md
    from synface.analysis.verdicts import table_verdicts
    from synface.studies.report import trend_lines

    assert any("holds" in s for s in trend_lines("table1", t1, table_verdicts("table1", tmp_path)))


# ----------------------------------------------------------------------------- pages


def _app(page: str, monkeypatch, home: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SYNFACE_HOME", str(home))
    monkeypatch.chdir(REPO)
    return AppTest.from_file(str(REPO / "pages" / page), default_timeout=60)


@pytest.mark.parametrize("page", ["features.py", "attributes.py", "results.py"])
def test_pages_render_with_empty_workspace(page, monkeypatch, tmp_path):
    at = _app(page, monkeypatch, tmp_path).run()
    assert not at.exception, at.exception
    assert len(at.title) == 1


def test_features_page_bad_path_is_an_error(monkeypatch, tmp_path):
    at = _app("features.py", monkeypatch, tmp_path).run()
    at.text_input(key="feat.other").set_value(str(tmp_path / "no_such_set")).run()
    at.button(key="feat_go").click().run()
    assert not at.exception, at.exception
    assert at.error and "not found" in at.error[0].value


def test_features_page_extracts_and_plots(tiny_set, checkpoint, monkeypatch, tmp_path):
    at = _app("features.py", monkeypatch, tmp_path).run()
    at.text_input(key="feat.other").set_value(str(tiny_set)).run()
    at.button(key="feat_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert len(at.dataframe) >= 1  # the class statistics table
    assert any("Syn_4_3_IM" in str(df.value) for df in at.dataframe)


def test_the_feature_gallery_takes_turns_by_dataset():
    from synface.analysis.features import gallery_order

    datasets = ["big"] * 40 + ["small"] * 3
    rows = list(range(43))  # a box around everything: the big set's rows come first in dataset order
    order = gallery_order(datasets, rows)
    assert sorted(order) == rows and order[:6] == [0, 40, 1, 41, 2, 42]
    assert {datasets[r] for r in order[:32]} == {"big", "small"}
    assert gallery_order(datasets, []) == []
