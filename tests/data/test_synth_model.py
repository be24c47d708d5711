"""The face model of a synthetic set: configs and cards name it, resuming under another model is
refused, and min_source_distance redraws identities near a source person, deterministically."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synface.data.errors import DataError
from synface.data.synth_model import SourceCheck, generator_for, redraw_seed
from synface.data.synthetic import SynthConfig, SyntheticSpec, identity_seed
from synface.render.pipeline import RENDERER_REVISION
from tests.support import LEARNED_MODEL


def _main(argv: list[str]) -> int:
    from synface.cli.main import main

    return main(argv)


def test_fingerprints_of_configs_without_a_model_are_unchanged() -> None:
    # the values every set built before face models had names recorded: such sets must still resume
    assert SynthConfig(ids=10, samples=5).fingerprint() == "2caaa54e1d52b41f"
    assert SynthConfig(ids=7, samples=3, im=True, pose="fixed", seed=3).fingerprint() == "c577b124f3966e85"
    assert SynthConfig(ids=10, samples=5, model="some_model").fingerprint() != "2caaa54e1d52b41f"
    assert SynthConfig(ids=10, samples=5, model="m", min_source_distance=0.5).fingerprint() != \
        SynthConfig(ids=10, samples=5, model="m").fingerprint()
    assert SynthConfig(ids=3, samples=2, model="m").name == "Syn_3_2_m"  # the default name carries the model
    assert SynthConfig.from_dict(SynthConfig(ids=3, samples=2, model="m").to_dict()).model == "m"


def test_the_builtin_head_has_no_source_people() -> None:
    with pytest.raises(DataError, match="built-in head has no source people"):
        SynthConfig(ids=2, samples=1, min_source_distance=0.5)
    with pytest.raises(DataError, match="min_source_distance"):
        SynthConfig(ids=2, samples=1, model="m", min_source_distance=-1.0)
    with pytest.raises(DataError, match="face model name"):
        SynthConfig(ids=2, samples=1, model="../escape")


def test_redraw_seeds_keep_the_training_and_benchmark_streams_apart() -> None:
    for purpose in ("train", "benchmark"):
        first = identity_seed(3, 17, purpose)
        seeds = [redraw_seed(first, a) for a in range(50)]
        assert seeds[0] == first and len(set(seeds)) == 50
        assert {s % 2 for s in seeds} == {first % 2} and all(0 <= s < 2**64 for s in seeds)


def test_generate_min_source_distance_with_the_builtin_head_exits_2(tmp_path, capsys) -> None:
    rc = _main(["generate", "--ids", "2", "--samples", "1", "--min-source-distance", "0.5",
                "--out", str(tmp_path / "set"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "built-in head has no source people" in err
    assert not (tmp_path / "set").exists()


def test_generate_with_a_learned_model_names_it_and_refuses_another_model(learned_model_workspace, tmp_path,
                                                                          capsys) -> None:
    ws, out = learned_model_workspace, tmp_path / "set"
    base = ["generate", "--ids", "2", "--samples", "2", "--root", str(ws), "--out", str(out), "--device", "cpu", "--json",
            "--min-source-distance", "0"]  # every first draw kept (the default's redraws: the next test)
    assert _main([*base, "--model", LEARNED_MODEL]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["model"] == LEARNED_MODEL and record["rendered"] == 4
    card = json.loads((out / "dataset.json").read_text())
    assert card["model"] == LEARNED_MODEL and card["config"]["model"] == LEARNED_MODEL
    assert card["model_version"].startswith(f"learned-{LEARNED_MODEL}-") and card["generator_version"] == card["model_version"] + "+" + RENDERER_REVISION
    privacy = card["privacy"]
    assert privacy["identities_checked"] == 2 and privacy["redrawn"] == 0 and privacy["source_people"] == 12
    assert 0 < privacy["nearest_min"] <= privacy["nearest_median"] and 0 <= privacy["share_under_threshold"] <= 1

    assert _main([*base, "--model", "builtin"]) == 2  # resuming the set under the built-in head
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{LEARNED_MODEL}'" in err and "'builtin'" in err
    assert _main([*base, "--model", "no_such_model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no face model 'no_such_model'" in err
    assert _main([*base, "--model", LEARNED_MODEL]) == 0  # the same model resumes (nothing left to render)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rendered"] == 0


def test_generate_with_a_learned_model_keeps_the_strangers_percentile_by_default(learned_model_workspace, tmp_path,
                                                                                 capsys) -> None:
    """Privacy on by default: without --min-source-distance a learned model's set keeps every
    identity at least the card's stranger_nearest_p01 from the source people, and its card keeps
    both distributions for the Datasets page."""
    from synface.data.synth_model import privacy_floor

    ws, out = learned_model_workspace, tmp_path / "set"
    model_card = json.loads((ws / "face_models" / LEARNED_MODEL / "card.json").read_text())
    floor = model_card["stranger_nearest_p01"]
    assert privacy_floor(LEARNED_MODEL, ws) == floor > 0 and privacy_floor("builtin", ws) == 0.0
    assert _main(["generate", "--ids", "2", "--samples", "1", "--model", LEARNED_MODEL, "--root", str(ws),
                  "--out", str(out), "--device", "cpu", "--json"]) == 0
    capsys.readouterr()
    privacy = json.loads((out / "dataset.json").read_text())["privacy"]
    assert privacy["min_source_distance"] == floor and privacy["nearest_min"] >= floor
    hist = privacy["histogram"]
    assert len(hist["bins"]) == len(hist["identities"]) + 1 == len(hist["strangers"]) + 1
    assert sum(hist["identities"]) == 2 and sum(hist["strangers"]) == model_card["images_fitted"]


def test_min_source_distance_redraws_near_identities_deterministically(learned_model_workspace) -> None:
    gen = generator_for(LEARNED_MODEL, device="cpu", workspace=learned_model_workspace)
    plain = SyntheticSpec(SynthConfig(ids=4, samples=1, model=LEARNED_MODEL), gen)
    probe = SourceCheck(gen)
    first = [probe.choose(i, plain.first_seed(i), plain.draw) for i in range(4)]
    assert all(torch.equal(f[0], plain.identity(i)[0]) for i, f in enumerate(first))  # no check: the seed's draw
    distances = [probe.accepted[i][1] for i in range(4)]
    floor = float(np.median(distances))  # two of the four first draws lie below it
    config = SynthConfig(ids=4, samples=1, model=LEARNED_MODEL, min_source_distance=floor)
    a, b = SyntheticSpec(config, gen), SyntheticSpec(config, gen)
    for i in range(4):
        assert torch.equal(a.identity(i)[0], b.identity(i)[0]) and torch.equal(a.identity(i)[1], b.identity(i)[1])
    assert a.check.accepted == b.check.accepted
    assert all(dist >= floor for _, dist in a.check.accepted.values())
    redrawn = [i for i, (attempt, _) in a.check.accepted.items() if attempt > 0]
    assert sorted(redrawn) == sorted(i for i, d in enumerate(distances) if d < floor)
    for i in range(4):  # kept draws are the seed's own; redrawn ones are other people, checked again here
        same = torch.equal(a.identity(i)[0], plain.identity(i)[0])
        assert same == (i not in redrawn)
        assert SourceCheck(gen).distance(*a.identity(i)) >= floor
