"""Loading a training checkpoint: always `torch.load(..., weights_only=True)` (no code runs from the
file), and every way a file can fail to be a checkpoint is one ValueError naming it. Saving one:
atomically, and a failed write is the OSError that caused it (see `save_checkpoint`)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Sequence

import torch

from synface.base.files import atomic_path

if TYPE_CHECKING:
    from synface.models.backbones import Backbone

__all__ = ["load_checkpoint", "load_weights", "save_checkpoint", "load_checkpoint_model", "RESUME_KEYS"]

#: what `train(resume=True)` needs from checkpoints/last.pt
RESUME_KEYS = ("model", "head", "optimizer", "scheduler", "scaler", "epoch", "epoch_step", "global_step", "rng",
               "num_classes")


def _reason(exc: BaseException) -> str:
    """A short cause. torch's weights-only refusal is a page of text that suggests loading with
    weights_only=False; keep only its 'WeightsUnpickler error' and never pass that advice on."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else ""
        detail = " ".join(detail.split("Check the documentation", 1)[0].split()).split(". Please use")[0]
        return "not a checkpoint of plain tensors and containers" + (f" ({detail[:160]})" if detail else "")
    if isinstance(exc, EOFError):
        return "the file is empty or cut short"
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return first[:200]


class _KeepsWriteError:
    """A file handle for torch.save that remembers the OSError of a failed write: torch's zip
    writer turns it into a RuntimeError about stream positions that names neither file nor cause."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """torch.save `obj` to `path` atomically (no partial file under the name, no temp file left);
    a full disk or a file-size limit is an OSError naming `path`, like any other failed write."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        sink = _KeepsWriteError(handle)
        try:
            torch.save(obj, sink)  # type: ignore[arg-type]  # write and flush are all torch's writer uses
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    require: Sequence[str] = ()) -> dict[str, Any]:
    """A checkpoint dict, loaded with weights_only=True; a file that does not load, or is not a dict
    holding every key of `require`, is a ValueError naming it (FileNotFoundError when absent)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"checkpoint {path} is a folder; give a .pt file") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"cannot load checkpoint {path}: {_reason(exc)}") from None
    missing = [k for k in require if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {', '.join(repr(k) for k in missing)}: not a "
                         f"{'resumable ' if 'optimizer' in require else ''}synface training checkpoint")
    return ckpt


def load_weights(module: torch.nn.Module, weights: Any, where: str) -> None:
    """`module.load_state_dict(weights)`, a mismatch being one short ValueError that names `where`
    (how many keys are missing or unexpected, with an example of each)."""
    if not isinstance(weights, dict):
        raise ValueError(f"{where}: the weights are not a state dict (got {type(weights).__name__})")
    try:
        result = module.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = " ".join(str(exc).split())
        raise ValueError(f"{where}: the weights do not fit {type(module).__name__}: {detail[:160]}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
        parts += [f"{len(unexpected)} unexpected (e.g. {unexpected[0]})"] if unexpected else []
        raise ValueError(f"{where}: the weights do not fit {type(module).__name__}: {', '.join(parts)} keys")


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[Backbone, dict]:
    """The backbone of a training checkpoint (weights_only load), in eval mode, and its config dict.

    A file that is not a synface checkpoint, or lacks a key, or whose weights do not fit the
    backbone its config names, is a ValueError naming the file and what is wrong.
    """
    from synface.models.backbones import BACKBONES, build_backbone  # noqa: PLC0415

    ckpt = load_checkpoint(path, device, require=("model", "config"))
    cfg, weights = ckpt["config"], ckpt["model"]
    if not isinstance(cfg, dict) or str(cfg.get("backbone")).lower() not in BACKBONES:
        got = cfg.get("backbone") if isinstance(cfg, dict) else type(cfg).__name__
        raise ValueError(f"checkpoint {path}: 'config' names no known backbone (got {got!r}; "
                         f"known: {', '.join(sorted(BACKBONES))})")
    dim = cfg.get("embedding_dim", 512)
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 65_536:
        raise ValueError(f"checkpoint {path}: config 'embedding_dim' must be a positive integer, got {dim!r}")
    model = build_backbone(cfg["backbone"], dim)
    load_weights(model, weights, f"checkpoint {path} (backbone {cfg['backbone']!r})")
    try:
        model.input_size = int(ckpt.get("input_size") or cfg.get("input_size") or model.input_size)
    except (TypeError, ValueError):
        raise ValueError(f"checkpoint {path}: 'input_size' is not an integer") from None
    return model.to(device).eval(), cfg
