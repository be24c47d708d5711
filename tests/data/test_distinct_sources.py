"""Distinct source people: a learned model's set gives each identity's regions the bank people that
earlier identities used least, so identities share a region's person only once the bank runs out;
the first identity is the mosaic's own, any part of the set draws the same people, the card
counts the sharing, and the built-in head is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synface.data.errors import DataError
from synface.data.synth_model import generator_for
from synface.data.synthetic import SynthConfig, SyntheticSpec, identity_seed
from tests.support import LEARNED_MODEL


def _people(spec: SyntheticSpec, ids: int, regions: int, people: int) -> np.ndarray:
    return np.stack([spec.identity(i)[1].reshape(regions, people).argmax(1).numpy() for i in range(ids)])


def test_the_builtin_head_refuses_distinct_sources_and_the_default_fingerprint_is_unchanged() -> None:
    with pytest.raises(DataError, match="distinct_sources.*built-in head has no source people"):
        SynthConfig(ids=2, samples=1, distinct_sources=True)
    with pytest.raises(DataError, match="distinct_sources"):
        SynthConfig(ids=2, samples=1, model="m", distinct_sources="yes")  # type: ignore[arg-type]
    assert SynthConfig(ids=10, samples=5, model="m", distinct_sources=False).fingerprint() == \
        SynthConfig(ids=10, samples=5, model="m").fingerprint()
    with pytest.raises(DataError, match="distinct_sources.*at most 100,000 identities"):
        SynthConfig(ids=100_001, samples=1, model="m", distinct_sources=True)
    distinct = SynthConfig(ids=10, samples=5, model="m", distinct_sources=True)
    assert distinct.fingerprint() != SynthConfig(ids=10, samples=5, model="m").fingerprint()
    assert distinct.name == "Syn_10_5_m_distinct"


def test_distinct_people_spread_over_the_bank_and_start_with_the_mosaic(learned_model_workspace) -> None:
    gen = generator_for(LEARNED_MODEL, device="cpu", workspace=learned_model_workspace)
    model = gen.model
    R, P = model.regions, model.people
    eligible = model._eligible.cpu().numpy()  # noqa: SLF001  (what the test checks against)
    ids = 3 * P + 1  # more identities than the bank has people: every person serves about as often
    independent = SyntheticSpec(SynthConfig(ids=ids, samples=1, model=LEARNED_MODEL), gen)
    distinct = SyntheticSpec(SynthConfig(ids=ids, samples=1, model=LEARNED_MODEL, distinct_sources=True), gen)
    mine, theirs = _people(distinct, ids, R, P), _people(independent, ids, R, P)
    assert (mine[0] == theirs[0]).all()  # identity 0: the mosaic's own choice
    assert torch.equal(distinct.identity(5)[0], independent.identity(5)[0])  # the shape is the identity's own draw
    head = np.bincount(mine[:, 0], minlength=P)[eligible[0]]
    assert head.max() - head.min() <= 1  # the head region is served evenly: nobody twice before all once
    assert np.bincount(mine[:P, 0], minlength=P).max() == 1 or eligible[0].sum() < P
    for r in range(R):  # only people who may serve a region serve it
        assert eligible[r][mine[:, r]].all()
    spread = lambda people: sum(int(c[c > 1].sum()) for c in (np.bincount(people[:P, r], minlength=P) for r in range(R)))  # noqa: E731
    assert spread(mine) < spread(theirs)
    again = SyntheticSpec(distinct.config, gen)  # any identity first: the same people (drawn for the whole set)
    assert torch.equal(again.identity(ids - 1)[1], distinct.identity(ids - 1)[1])
    seeds = [identity_seed(0, i, "train") for i in range(ids)]
    shapes, people = gen.draw_distinct_identities(seeds, chunk=7)  # chunked: the same people as at once
    assert (people.numpy() == mine).all() and torch.equal(shapes[3], distinct.identity(3)[0])


def test_a_distinct_set_builds_and_its_card_counts_shared_people(learned_model_workspace, tmp_path, capsys) -> None:
    from synface.cli.main import main

    out = tmp_path / "set"
    assert main(["generate", "--ids", "4", "--samples", "1", "--model", LEARNED_MODEL, "--distinct-sources",
                 "--min-source-distance", "0", "--root", str(learned_model_workspace), "--out", str(out),
                 "--device", "cpu", "--json"]) == 0
    capsys.readouterr()
    card = json.loads((out / "dataset.json").read_text())
    assert card["config"]["distinct_sources"] is True and card["name"].endswith("_distinct")
    sources = card["sources"]
    assert sources["distinct_sources"] is True and sources["counted"] and sources["identities"] == 4
    assert sources["regions"]["head"] == {"sharing": 0, "most_per_person": 1}
    assert main(["generate", "--ids", "2", "--samples", "1", "--distinct-sources", "--out", str(tmp_path / "b"),
                 "--device", "cpu"]) == 2
    assert "built-in head has no source people" in capsys.readouterr().err


def test_shards_of_a_distinct_set_draw_the_whole_sets_people(learned_model_workspace, tmp_path) -> None:
    """A shard draws the people of its identities as the whole set deals them (the dealing runs
    over every identity, whichever part is built), and the merged card counts the whole set."""
    import pandas as pd

    from synface.data.shards import merge_shards
    from synface.data.synth_config import Shard
    from synface.data.synthetic import build_dataset

    gen = generator_for(LEARNED_MODEL, device="cpu", workspace=learned_model_workspace)
    cfg = SynthConfig(ids=14, samples=1, model=LEARNED_MODEL, distinct_sources=True, image_format="png", seed=2)
    build_dataset(cfg, tmp_path / "whole", gen, workspace=learned_model_workspace)
    for k in (1, 2):
        build_dataset(cfg, tmp_path / f"s{k}", gen, workspace=learned_model_workspace, shard=Shard(k, 2))
    merge_shards([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged", workspace=learned_model_workspace)
    columns = [c for c in pd.read_parquet(tmp_path / "whole" / "manifest.parquet").columns if c.startswith("albedo_")]
    whole = pd.read_parquet(tmp_path / "whole" / "manifest.parquet", columns=["label", *columns])
    parts = pd.concat([pd.read_parquet(tmp_path / f"s{k}" / "manifest.parquet", columns=["label", *columns])
                       for k in (1, 2)]).sort_values("label").reset_index(drop=True)
    assert np.array_equal(whole[columns].to_numpy(), parts[columns].to_numpy())
    cards = [json.loads((tmp_path / name / "dataset.json").read_text()) for name in ("whole", "merged")]
    assert cards[0]["sources"] == cards[1]["sources"] and cards[0]["sources"]["identities"] == 14
