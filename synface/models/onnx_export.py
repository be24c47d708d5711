"""A trained recogniser as an ONNX file: what leaves the tool for a deployment or another framework.

The graph is the backbone alone (images in, raw embeddings out) with a dynamic batch dimension, as
insightface's exported recognisers are; what a user must do around it (alignment, pixel scaling,
the mirror-sum and the normalisation this tool's evaluation applies) is recorded in the file's
metadata (`metadata_props`, key PREPROCESSING_KEY) and in a JSON file beside it, so the model is
never used with other preprocessing by accident.

Export needs the optional packages of the `onnx` extra (onnx, onnxscript: torch's exporter writes
through them; onnxruntime checks the result): `pip install -e '.[onnx]'`. Without them the export
is refused with that one line.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from synface.base.extras import require_extra
from synface.base.files import atomic_path, write_bytes

if TYPE_CHECKING:
    from synface.models.backbones import Backbone

__all__ = ["require_onnx", "preprocessing", "export_onnx", "onnx_embeddings", "sidecar_path", "PREPROCESSING_KEY"]

PREPROCESSING_KEY = "synface.preprocessing"
INPUT, OUTPUT = "images", "embeddings"
OPSET = 18


def require_onnx(runtime: bool = False) -> None:
    """Refuse, naming the extra, when the packages an export (or, with `runtime`, a check) needs are missing."""
    require_extra("onnx", ["onnx", "onnxscript"] + (["onnxruntime"] if runtime else []), "ONNX export")


def preprocessing(input_size: int, embedding_dim: int) -> dict[str, Any]:
    """What the exported model expects and returns, in words a user can follow."""
    return {
        "input": INPUT, "output": OUTPUT, "layout": "NCHW", "dtype": "float32", "channels": "RGB",
        "size": [int(input_size), int(input_size)],
        "alignment": "5-point similarity warp onto the ArcFace template (112x112 coordinates, scaled to size)",
        "pixels": "x / 127.5 - 1 (0..255 -> -1..1)",
        "embedding_dim": int(embedding_dim),
        "postprocess": "L2-normalise the embedding; this tool's evaluation sums the embeddings of the image and "
                       "its horizontal mirror before normalising, and compares faces by cosine similarity",
    }


def sidecar_path(out: str | Path) -> Path:
    """model.onnx -> model.onnx.json: the preprocessing in a file anyone can read."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def export_onnx(model: Backbone, out: str | Path, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `model` (a backbone with `input_size` and `embedding_dim`) to `out` as ONNX with a
    dynamic batch, its preprocessing and `metadata` recorded in the file and beside it."""
    require_onnx()
    import onnx  # noqa: PLC0415

    out = Path(out)
    size, dim = int(model.input_size), int(model.embedding_dim)
    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=65_536)
    chatter = io.StringIO()  # the exporter prints its steps: keep stdout for the command's own record
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(net, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=({0: batch},), dynamo=True, opset_version=OPSET, verbose=False)
        except Exception as exc:  # noqa: BLE001 - the exporter fails in many types; one line names it
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ValueError(f"ONNX export of {type(model).__name__} failed: {first}") from None
    proto = program.model_proto  # type: ignore[union-attr]  # dynamo=True returns the program
    record = {"preprocessing": preprocessing(size, dim), **(metadata or {})}
    for key, value in ((PREPROCESSING_KEY, json.dumps(record["preprocessing"])),
                       *((f"synface.{k}", json.dumps(v)) for k, v in (metadata or {}).items())):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
    write_bytes(sidecar_path(out), (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    return {"out": str(out), "sidecar": str(sidecar_path(out)), "input_size": size, "embedding_dim": dim,
            "opset": OPSET, "bytes": out.stat().st_size}


def onnx_embeddings(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Raw embeddings of (N, 3, H, W) float32 images by onnxruntime on the CPU."""
    require_onnx(runtime=True)
    import onnxruntime  # noqa: PLC0415

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(images, dtype=np.float32)})[0]
