"""`export RUN --to onnx`: the recogniser as ONNX with a dynamic batch and its preprocessing recorded;
onnxruntime's embeddings match PyTorch's (cosine >= 0.9999) on real and synthetic crops; a run without
a checkpoint, or an install without the onnx extra, is refused in one line."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from synface.cli.main import main
from synface.models.backbones import build_backbone
from synface.models.onnx_export import PREPROCESSING_KEY, export_onnx, onnx_embeddings, sidecar_path
from tests.support import LFW_ROOT, cli_error, requires_lfw

PARITY = 0.9999


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _as_input(crops: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) crops -> the model's float input at `size`, as evaluation prepares them."""
    images = [np.asarray(Image.fromarray(c).resize((size, size), Image.BOX)) if c.shape[0] != size else c for c in crops]
    return (np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)


def _parity(model: torch.nn.Module, path, crops: np.ndarray) -> float:
    x = _as_input(crops, int(model.input_size))
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(x)).numpy()
    return float(_cosines(reference, onnx_embeddings(path, x)).min())


def _trained_like(name: str, dim: int) -> torch.nn.Module:
    """A backbone with non-trivial batch-norm statistics (a few forward passes in train mode), as a
    trained model has: the export must carry them, not the initial ones."""
    torch.manual_seed(1)
    model = build_backbone(name, dim)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, model.input_size, model.input_size) * 0.7 + 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def synthetic_crops(gen) -> np.ndarray:
    return gen.render(gen.sample(12, seed=3)).images.cpu().numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _trained_like("mobilefacenet", 64)
    path = tmp_path_factory.mktemp("onnx") / "mfn.onnx"
    record = export_onnx(model, path, {"backbone": "mobilefacenet"})
    return model, path, record


def test_export_records_preprocessing_and_a_dynamic_batch(exported, synthetic_crops) -> None:
    import onnx

    model, path, record = exported
    assert record["input_size"] == 112 and record["embedding_dim"] == 64
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    pre = json.loads(meta[PREPROCESSING_KEY])
    assert pre["size"] == [112, 112] and pre["pixels"].startswith("x / 127.5 - 1") and pre["channels"] == "RGB"
    assert json.loads(sidecar_path(path).read_text())["preprocessing"] == pre
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # symbolic: any batch size
    for n in (1, 5, 12):  # other batch sizes than the export's example of 2
        assert _parity(model, path, synthetic_crops[:n]) >= PARITY


@requires_lfw
def test_onnx_matches_pytorch_on_real_crops(exported) -> None:
    """Real faces: LFW photos, centre-cropped (the 250x250 frames hold the face in their middle)."""
    model, path, _ = exported
    photos = sorted((LFW_ROOT / "images").glob("*/*.jpg"))[:16]
    crops = np.stack([np.asarray(Image.open(p).convert("RGB").crop((68, 68, 182, 182)).resize((112, 112))) for p in photos])
    assert _parity(model, path, crops) >= PARITY


def test_export_of_a_run_through_the_command_line(tmp_path, capsys, synthetic_crops) -> None:
    from synface.runs.registry import create_run

    home = tmp_path / "ws"
    cfg = {"data": str(tmp_path / "set"), "backbone": "compact", "embedding_dim": 16, "name": "small"}
    run = create_run(cfg, root=home)
    cli_error(capsys, ["export", run.id, "--to", "onnx", "--root", home], run.id, "no checkpoint to export")
    model = _trained_like("compact", 16)
    torch.save({"model": model.state_dict(), "config": cfg, "input_size": 56}, run.last_checkpoint)
    assert main(["export", run.id, "--to", "onnx", "--root", str(home)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["out"] == str(run.path / "model.onnx") and record["input_size"] == 56
    assert record["run"] == run.id and record["parity_min_cosine"] >= PARITY
    assert _parity(model, run.path / "model.onnx", synthetic_crops) >= PARITY
    cli_error(capsys, ["export", run.id, "--to", "onnx", "--root", home, "--out", tmp_path / "m.bin"], "must end in .onnx")
    cli_error(capsys, ["export", run.path, "--to", "rec"], "--to rec needs --out")


def test_missing_extra_is_named(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # what an install without the extra imports
    cli_error(capsys, ["export", "any-run", "--to", "onnx", "--root", tmp_path], "onnxscript", "'.[onnx]'")
