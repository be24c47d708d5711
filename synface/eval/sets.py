"""The evaluation set an eval-set spec names, whatever its kind: one place that tells them apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synface.data.eval_sets import spec_field
from synface.data.ijb import is_ijb_folder
from synface.eval.ijb import IJBEvalSet
from synface.eval.run_eval import EvalSet

__all__ = ["open_eval_set"]


def open_eval_set(spec: Any) -> EvalSet:
    """An IJB-B/C folder (template pairs, `synface.eval.ijb`), else pairs of images (an LFW-layout
    folder or a .bin, `synface.eval.run_eval`)."""
    if is_ijb_folder(Path(str(spec_field(spec, "path") or ""))):
        return IJBEvalSet.from_spec(spec)
    return EvalSet.from_spec(spec)
