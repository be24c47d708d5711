"""`generate --config FILE.json`: the whole SynthConfig in one file (what the Datasets page's
background builds pass), the same set as the options would build; bad files and options it would
ignore are refused in one line."""

from __future__ import annotations

import json

from synface.cli.main import main
from synface.data.synthetic import SynthConfig


def test_a_config_file_builds_the_set_the_options_describe(tmp_path, capsys) -> None:
    config = SynthConfig(ids=2, samples=2, seed=3, im=True, phi_grid=(0.0, 0.5), pose="fixed", expression_scale=0.5,
                         image_format="png", name="from_file")
    path = tmp_path / "set.json"
    path.write_text(json.dumps(config.to_dict()))
    assert main(["generate", "--config", str(path), "--root", str(tmp_path / "ws"), "--device", "cpu", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["name"] == "from_file" and record["images"] == 4
    card = json.loads((tmp_path / "ws" / "datasets" / "from_file" / "dataset.json").read_text())
    assert SynthConfig.from_dict(card["config"]).fingerprint() == config.fingerprint()
    assert card["config"]["image_format"] == "png" and card["config"]["phi_grid"] == [0.0, 0.5]


def test_bad_config_files_and_ignored_options_are_refused(tmp_path, capsys) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"ids": 2, "samples": 1}))
    cases = {
        "missing.json": (None, "no such file (--config)"),
        "list.json": ("[1, 2]", "one JSON object of SynthConfig fields, got list"),
        "broken.json": ("{", "not a readable JSON file"),
        "unknown.json": ('{"ids": 2, "samples": 1, "idz": 3}', "unknown key(s) ['idz']"),
        "bad.json": ('{"ids": "many", "samples": 1}', "'ids' must be a positive integer"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        assert main(["generate", "--config", str(path), "--root", str(tmp_path / "ws")]) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and str(path) in err and message in err and "\n" not in err, err
    assert main(["generate", "--config", str(good), "--ids", "3", "--seed", "4", "--root", str(tmp_path / "ws")]) != 0
    err = capsys.readouterr().err
    assert "drop --ids, --seed" in err
    assert not (tmp_path / "ws").exists()


def test_an_empty_name_is_refused_not_replaced(tmp_path, capsys) -> None:
    """`--name ""` is a mistake, not a request for the default name: refused before anything is written."""
    from tests.support import cli_error

    cli_error(capsys, ["generate", "--ids", "2", "--samples", "1", "--name", "", "--root", tmp_path], "--name is empty")
    cli_error(capsys, ["generate", "--ids", "2", "--samples", "1", "--name", "  ", "--root", tmp_path], "--name is empty")
    assert not (tmp_path / "datasets").exists()
