"""Sharded generation: `generate --shard K/N` slices a set by identity range, seeded as the whole set;
`generate --merge` joins the shards into the set one process builds (manifest byte for byte, images
pixel for pixel); `--workers W` does both with local processes. Bad shards are refused, named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synface.cli.main import main
from synface.data.errors import DataError
from synface.data.shards import merge_shards, read_shards
from synface.data.synth_config import Shard
from synface.data.synth_set import SynthSet
from synface.data.synthetic import SynthConfig, build_dataset
from tests.support import cli_error

#: IM on, so partners cross shard boundaries; fixed pose, so per-identity streams matter too
CONFIG = dict(ids=9, samples=2, seed=5, im=True, phi_grid=(0.0, 0.3, 1.0), pose="fixed")


def _images(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p).convert("RGB"))
            for p in sorted(folder.glob("*/*.jpg"))}


def _same_set(a: Path, b: Path) -> None:
    assert (a / "manifest.parquet").read_bytes() == (b / "manifest.parquet").read_bytes()
    left, right = _images(a), _images(b)
    assert sorted(left) == sorted(right) and len(left) == CONFIG["ids"] * CONFIG["samples"]
    for rel, pixels in left.items():
        assert np.array_equal(pixels, right[rel]), rel
    card_a, card_b = (json.loads((f / "dataset.json").read_text()) for f in (a, b))
    for key in ("name", "config", "num_identities", "num_images", "generator_version", "model", "layout", "seed"):
        assert card_a[key] == card_b[key], key


@pytest.fixture(scope="module")
def built(tmp_path_factory, gen):
    """The whole set, and its 4 shards built one by one (the last one first: order does not matter)."""
    base = tmp_path_factory.mktemp("shards")
    config = SynthConfig(**CONFIG)
    build_dataset(config, base / "whole", gen)
    shards = [base / f"part{k}" for k in range(1, 5)]
    for k in (4, 2, 1, 3):
        report = build_dataset(config, shards[k - 1], gen, shard=Shard(k, 4))
        assert report.num_images == len(Shard(k, 4).identities(config.ids)) * config.samples
    return base, shards


def test_four_shards_merged_are_the_unsharded_set(built, tmp_path) -> None:
    base, shards = built
    assert all(SynthSet(s).is_shard() and not SynthSet(s).is_complete() for s in shards)
    assert [json.loads((s / "shard.json").read_text())["shard"]["first_identity"] for s in shards] == [0, 2, 4, 6]
    report = merge_shards(list(reversed(shards)), tmp_path / "merged")  # any order
    assert report.num_images == 18 and report.extra["merged_shards"] == 4
    _same_set(base / "whole", tmp_path / "merged")
    card = json.loads((tmp_path / "merged" / "dataset.json").read_text())
    assert [s["index"] for s in card["shards"]] == [1, 2, 3, 4]
    # a merge run again (a resumed one) keeps what is there and gives the same set
    merge_shards(shards, tmp_path / "merged")
    _same_set(base / "whole", tmp_path / "merged")


def test_merge_through_the_command_line(built, tmp_path, capsys) -> None:
    base, shards = built
    assert main(["generate", "--merge", *map(str, shards), "--out", str(tmp_path / "m"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["images"] == 18 and record["merged_shards"] == 4
    _same_set(base / "whole", tmp_path / "m")


def test_bad_shards_are_refused_by_name(built, tmp_path, capsys, gen) -> None:
    base, shards = built
    out = tmp_path / "out"
    cli_error(capsys, ["generate", "--ids", "4", "--samples", "1", "--shard", "5/4"], "--shard", "5/4", "between 1 and N")
    cli_error(capsys, ["generate", "--ids", "4", "--samples", "1", "--shard", "0/0"], "0/0", "at least 1")
    cli_error(capsys, ["generate", "--ids", "4", "--samples", "1", "--shard", "two"], "expected K/N")
    cli_error(capsys, ["generate", "--ids", "3", "--samples", "1", "--shard", "1/4", "--root", tmp_path],
              "4 shards of a set of 3 identities")
    line = cli_error(capsys, ["generate", "--merge", shards[0], shards[1], shards[3], "--out", out], "missing shard", "3/4")
    assert "identities 4-5" in line
    cli_error(capsys, ["generate", "--merge", *shards, shards[1], "--out", out], "overlapping shards", str(shards[1]))
    cli_error(capsys, ["generate", "--merge", *shards, base / "whole", "--out", out], str(base / "whole"),
              "whole set, not a shard")
    other = SynthConfig(**{**CONFIG, "seed": 6})
    build_dataset(other, tmp_path / "other3", gen, shard=Shard(3, 4))
    cli_error(capsys, ["generate", "--merge", shards[0], shards[1], tmp_path / "other3", shards[3], "--out", out],
              "'seed'", str(tmp_path / "other3"))
    import shutil

    gpu = shutil.copytree(shards[2], tmp_path / "gpu3")  # as if rendered on a GPU: other pixels
    card = json.loads((gpu / "shard.json").read_text())
    (gpu / "shard.json").write_text(json.dumps({**card, "device": "cuda"}))
    cli_error(capsys, ["generate", "--merge", shards[0], shards[1], gpu, shards[3], "--out", out], "'device'", "cuda")
    halves = SynthConfig(**CONFIG)
    build_dataset(halves, tmp_path / "half1", gen, shard=Shard(1, 2))  # identities 0-3 overlap 2/4's 2-3
    cli_error(capsys, ["generate", "--merge", tmp_path / "half1", *shards[1:], "--out", out], "overlapping shards",
              "shard 1/2", "shard 2/4")
    cli_error(capsys, ["generate", "--merge", *shards, "--ids", "3", "--out", out], "drop --ids")
    cli_error(capsys, ["generate", "--ids", "4", "--samples", "1", "--shard", "1/2", "--workers", "2"], "drop one")
    assert not out.exists()
    with pytest.raises(DataError, match="shard 1/4 of this set, not shard 2/4"):  # a shard folder resumes only itself
        build_dataset(SynthConfig(**CONFIG), shards[0], gen, shard=Shard(2, 4))
    with pytest.raises(DataError, match="needs the shard folders"):
        read_shards([])


def test_two_local_workers_build_the_same_set(built, tmp_path, capsys) -> None:
    base, _ = built
    out = tmp_path / "w2"
    args = ["generate", "--ids", "9", "--samples", "2", "--seed", "5", "--im", "--phi-grid", "0,0.3,1", "--pose", "fixed",
            "--workers", "2", "--out", str(out), "--device", "cpu", "--batch", "4", "--json"]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["images"] == 18 and record["merged_shards"] == 2
    _same_set(base / "whole", out)
    assert not (tmp_path / ".w2.shards").exists()  # the worker shards go once merged
