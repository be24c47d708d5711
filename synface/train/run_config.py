"""The configuration of a new run from what a launch names: the one place a launch becomes a
`TrainConfig`, for the Train page and `python -m synface train` alike.

A launch names a starting point (a preset, a config file, or both), config keys to override, and
registered sets by name: a real set to train on and verification sets to score. The policy:

- a synthetic set given by its workspace name (`generate --name NAME`) is that dataset's folder;
  a path that exists as given keeps its meaning;
- a registered real set contributes its training people (`real_root`); one without any is refused;
- a launch that changes a preset's number of epochs keeps the preset's schedule inside them:
  milestones at or after the last epoch are dropped and the warm-up is at most the run's length
  (unless the launch sets `milestones` or `warmup_epochs` itself, or a config file does);
- registered verification sets join the config's own, each name once ('all': every one);
- every path the config names exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from synface.base.workspace import workspace_root
from synface.train.config import PRESETS, TrainConfig, config_from_dict, load_config

__all__ = ["run_config", "workspace_dataset"]


def run_config(preset: str | None = None, config_file: str | Path | None = None,
               overrides: Mapping[str, Any] | None = None, *, real: str | None = None,
               eval_names: Sequence[str] = (), allow_overlap: bool = False,
               root: str | Path | None = None) -> TrainConfig:
    """The validated config of a new run (ConfigError, DataError or ValueError naming what is wrong).

    `overrides` are config keys (the CLI's --set, the page's form); `real` a registered real set
    trained on beside the synthetic one; `eval_names` registered verification sets (comma-separated
    entries allowed; 'all' means every one); `allow_overlap` accepts evaluation people in the
    training data (recorded by the run); `root` the workspace."""
    values = dict(overrides or {})
    if allow_overlap:
        values["allow_overlap"] = True
    if real:
        values["real_root"] = _real_train_root(real, root)
    workspace_dataset(values, root)
    if preset is not None and config_file is None:
        _fit_schedule(values, preset)
    cfg = _with_registered_evals(load_config(config_file, values, preset=preset), eval_names, root)
    cfg.check_paths()
    return cfg


def _real_train_root(name: str, root: str | Path | None) -> str:
    from synface.data.realsets import get_real_set  # noqa: PLC0415

    entry = get_real_set(name, root)
    if entry.train_root is None:
        raise ValueError(f"real set {name!r} has no training people ({entry.describe()})")
    return entry.train_root


def workspace_dataset(values: dict[str, Any], root: str | Path | None) -> None:
    """`data=NAME` finds the dataset `generate --name NAME` wrote into the workspace."""
    value = values.get("data")
    if not isinstance(value, str) or not value or Path(value).exists() or "/" in value or value in (".", ".."):
        return
    candidate = workspace_root(root) / "datasets" / value
    if candidate.is_dir():
        values["data"] = str(candidate)


def _fit_schedule(values: dict[str, Any], preset: str) -> None:
    """The preset's milestones and warm-up inside the launch's own number of epochs."""
    epochs = values.get("epochs")
    if preset not in PRESETS or not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        return  # no change of epochs, or a value the config check names
    start = PRESETS[preset]
    if "milestones" not in values:
        values["milestones"] = [m for m in start.get("milestones", []) if m < epochs]
    if "warmup_epochs" not in values:
        values["warmup_epochs"] = min(float(start.get("warmup_epochs", 0.0)), epochs)


def _with_registered_evals(cfg: TrainConfig, names: Sequence[str], root: str | Path | None) -> TrainConfig:
    """The config with the registered verification sets `names` added to its eval_sets."""
    from synface.data.realsets import eval_specs  # noqa: PLC0415

    wanted = [n.strip() for arg in names for n in arg.split(",") if n.strip()]
    if not wanted:
        return cfg
    specs = eval_specs(wanted, root)
    if not specs:
        raise ValueError("--eval all: no verification sets are registered (python -m synface real add FILE)")
    values = cfg.to_dict()
    have = {s.label for s in cfg.eval_sets}
    values["eval_sets"] = values["eval_sets"] + [s for s in specs if s["name"] not in have]
    return config_from_dict(values)
