"""Launch checks that need the training layer: the checkpoints' disk space, before a run folder exists."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from synface.train.config import config_from_dict
from synface.train.launch_checks import checkpoint_bytes, preflight
from tests.train.test_train import make_synthetic, tiny


def test_checkpoint_size_counts_weights_momentum_and_the_classes():
    from synface.models.backbones import build_backbone

    cfg = config_from_dict(tiny("unused", epochs=3))
    params = sum(p.numel() for p in build_backbone(cfg.backbone, cfg.embedding_dim).parameters())
    small, big = checkpoint_bytes(cfg, 10), checkpoint_bytes(cfg, 10_000)
    assert small >= 2 * 2 * 4 * params  # last.pt and the copy replacing it, weights and momentum in fp32
    assert big - small >= 2 * 2 * 4 * cfg.embedding_dim * 9_990  # the class matrix grows with the classes
    kept = config_from_dict(tiny("unused", epochs=3, keep_epoch_checkpoints=True))
    assert checkpoint_bytes(kept, 10) == small // 2 * 5  # one more file per epoch


def test_a_launch_whose_checkpoints_do_not_fit_is_refused_before_its_folder(tmp_path, monkeypatch):
    data = make_synthetic(tmp_path / "syn", ids=4, per=4)
    cfg = tiny(data, batch_size=4)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ValueError, match=r"the run's checkpoints \(compact, 4 classes\) needs about .* has only "
                                         r"1000 B free"):
        preflight(cfg, tmp_path / "ws")
    assert not (tmp_path / "ws" / "runs").exists()
