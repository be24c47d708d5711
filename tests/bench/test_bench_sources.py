"""`bench sources`: dlib distances of a learned model's new people grouped by the regions whose
source person they share; distinct source people leave fewer pairs sharing one."""

from __future__ import annotations

import json

import pytest

from tests.support import LEARNED_MODEL, cli_error


def test_bench_sources_groups_every_pair_by_its_shared_regions(learned_model_workspace, tmp_path, capsys) -> None:
    from PIL import Image

    from synface.cli.main import main
    from synface.generator import FaceGenerator

    real = tmp_path / "real"  # a stand-in for real aligned crops: four people, one crop each
    for k, image in enumerate(FaceGenerator(device="cpu").render(FaceGenerator(device="cpu").sample(4, 3)).images.numpy()):
        (real / f"person_{k}").mkdir(parents=True)
        Image.fromarray(image).save(real / f"person_{k}" / "0001.png")
    out = {}
    for flag in ([], ["--distinct"]):
        assert main(["bench", "sources", "--model", LEARNED_MODEL, "--workspace", str(learned_model_workspace),
                     "--identities", "10", "--device", "cpu", "--json", "--real", str(real), *flag]) == 0
        out[bool(flag)] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out[True]["real_strangers"]["people"] == 4 and out[True]["real_strangers"]["pairs"] == 6
    assert main(["bench", "sources", "--model", LEARNED_MODEL, "--workspace", str(learned_model_workspace),
                 "--identities", "10", "--device", "cpu", "--json", "--varied"]) == 0
    varied = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert varied["varied"] and varied["identities_sharing"] == out[False]["identities_sharing"]  # the same people
    assert varied["no_region_shared"]["median"] != out[False]["no_region_shared"]["median"]  # seen otherwise
    for record in out.values():
        groups = [record["no_region_shared"], record["several_regions_shared"], *record["one_region_shared"].values()]
        assert sum(g["pairs"] for g in groups) == 10 * 9 // 2  # every pair counted once
        assert all(0.0 <= g.get("under_threshold", 0.0) <= 1.0 for g in groups)
    assert out[True]["identities_sharing"]["head"] == 0  # ten identities, a bank of twelve: nobody shares a head
    assert sum(out[True]["identities_sharing"].values()) <= sum(out[False]["identities_sharing"].values())


def test_bench_sources_refuses_the_builtin_head_and_a_single_identity(capsys) -> None:
    cli_error(capsys, ["bench", "sources", "--model", "builtin", "--identities", "4", "--device", "cpu"],
              "'builtin' has no source people")
    cli_error(capsys, ["bench", "sources", "--model", LEARNED_MODEL, "--identities", "1"], "at least 2")
    cli_error(capsys, ["bench", "sources", "--model", LEARNED_MODEL, "--identities", "0"], "positive integer")
    cli_error(capsys, ["bench", "sources", "--model", LEARNED_MODEL, "--identities", "5001"], "at most 5,000")
    from synface.bench.source_sharing import bench_sources

    with pytest.raises(ValueError, match="at most 5,000"):  # the library, called directly
        bench_sources(LEARNED_MODEL, identities=100_000)
