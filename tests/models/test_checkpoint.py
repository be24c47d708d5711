"""Checkpoints (synface/models/checkpoint.py): a save loads back as it was, a load runs no code from
the file (weights_only), and every way a file fails to be a checkpoint is a ValueError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synface.models.backbones import build_backbone
from synface.models.checkpoint import load_checkpoint, load_checkpoint_model, save_checkpoint

MARKER = "ran.txt"


def _touch(path: str) -> None:
    Path(path).write_text("code from the checkpoint ran")


class Payload:
    """Unpickling this would call _touch: what a malicious checkpoint does."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return _touch, (str(self.path),)


def test_a_saved_checkpoint_loads_back_as_it_was(tmp_path) -> None:
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "config": {"backbone": "compact"},
             "history": [0.5, 0.25]}
    path = tmp_path / "last.pt"
    save_checkpoint(state, path)
    back = load_checkpoint(path, require=("model", "epoch"))
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["epoch"] == 3 and back["config"] == {"backbone": "compact"} and back["history"] == [0.5, 0.25]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left beside it


def test_a_pickle_of_anything_but_tensors_and_containers_is_refused_unrun(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": Payload(tmp_path / MARKER)}, path)
    with pytest.raises(ValueError, match="not a checkpoint of plain tensors and containers") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "weights_only=False" not in str(info.value)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("content, needle", [(b"", "empty or cut short"), (b"not a zip or a pickle", "cannot load")])
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, content, needle) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=needle) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_files_folders_and_keys(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="is a folder"):
        load_checkpoint(tmp_path)
    path = tmp_path / "weights.pt"
    save_checkpoint({"model": {}}, path)
    with pytest.raises(ValueError, match="lacks 'optimizer': not a resumable synface training checkpoint"):
        load_checkpoint(path, require=("model", "optimizer"))


def test_a_trained_backbone_comes_back_with_its_weights_and_size(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_backbone("compact", 32).eval()
    path = tmp_path / "best.pt"
    save_checkpoint({"model": model.state_dict(), "config": {"backbone": "compact", "embedding_dim": 32},
                     "input_size": 56}, path)
    loaded, cfg = load_checkpoint_model(path)
    x = torch.rand(2, 3, 56, 56) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.input_size == 56 and loaded.embedding_dim == 32 and not loaded.training
    assert cfg["backbone"] == "compact"


@pytest.mark.parametrize("config, needle", [
    ({"backbone": "resnet9000"}, "names no known backbone"),
    ({"backbone": "compact", "embedding_dim": 0}, "'embedding_dim' must be a positive integer"),
    ({"backbone": "compact", "embedding_dim": 16}, "the weights do not fit CompactNet"),
])
def test_a_checkpoint_whose_config_does_not_fit_is_named(tmp_path, config, needle) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint({"model": build_backbone("compact", 32).state_dict(), "config": config}, path)
    with pytest.raises(ValueError, match=needle) as info:
        load_checkpoint_model(path)
    assert str(path) in str(info.value)
