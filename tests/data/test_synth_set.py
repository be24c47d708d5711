"""A synthetic set's folder, card and manifest read in one place, each damaged file named."""

from __future__ import annotations

import pandas as pd
import pytest

from synface.data.errors import DataError
from synface.data.synth_set import SynthSet, synth_sets


def _set(folder, card: str | None = '{"name": "s", "num_identities": 3, "model": "m1"}') -> SynthSet:
    folder.mkdir(parents=True)
    pd.DataFrame({"path": ["0/a.jpg"], "label": [0], "partner": [-1], "phi": [1.0]}).to_parquet(
        folder / "manifest.parquet")
    if card is not None:
        (folder / "dataset.json").write_text(card)
    return SynthSet(folder)


def test_a_complete_set_reads_its_card_and_manifest(tmp_path):
    synth = _set(tmp_path / "s")
    assert synth.is_complete() and synth.has_manifest() and not synth.is_building()
    assert synth.card()["name"] == "s" and synth.identity_count() == 3 and synth.face_model() == "m1"
    assert list(synth.read_manifest(("path", "label")).columns) == ["path", "label", "partner", "phi"]


def test_damaged_or_missing_files_are_named(tmp_path):
    partial = _set(tmp_path / "partial", card=None)
    with pytest.raises(DataError, match="is not a complete synthetic set"):
        partial.card()
    assert partial.card_or_empty() == {}
    for name, text, message in (("bad", "{no", "not valid JSON"), ("list", "[1]", "not a JSON object"),
                                ("count", '{"num_identities": "many"}', "bad dataset.json")):
        synth = _set(tmp_path / name, card=text)
        with pytest.raises(DataError, match=message) as info:
            synth.identity_count()
        assert str(synth.card_path) in str(info.value)
    with pytest.raises(DataError, match=r"manifest lacks columns \['gamma'\]"):
        partial.read_manifest(("path", "gamma"))
    (tmp_path / "partial" / "manifest.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read manifest"):
        partial.read_manifest()
    partial.state_path.write_text("[]")
    with pytest.raises(DataError, match="build state is not a JSON object"):
        partial.read_state()
    assert partial.is_building()


def test_the_sets_of_a_folder_are_the_complete_ones(tmp_path):
    _set(tmp_path / "b")
    _set(tmp_path / "a")
    _set(tmp_path / "unfinished", card=None)
    (tmp_path / "loose.txt").write_text("x")
    assert [s.name for s in synth_sets(tmp_path)] == ["a", "b"]
    assert synth_sets(tmp_path / "missing") == []
