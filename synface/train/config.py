"""Training configuration: one dataclass, two presets, YAML/JSON loading with strict checking.

Every value is checked before anything is created on disk, and an error names the key, so a
typo in a YAML file costs a second rather than a half-started run:

    config key 'lr_sheduler' is unknown; did you mean 'lr_schedule'?
    config 'batch_size' must be a positive integer, got -3

Conventions: `batch_size` is the global batch (split over DDP ranks); `lr` is for that batch;
`psi` is the weight of the synthetic image in domain mixup (1 = synthetic only).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = [
    "ConfigError",
    "EvalSetSpec",
    "TrainConfig",
    "PRESETS",
    "load_config",
    "config_from_dict",
    "parse_overrides",
    "PSI_GRID",
]

BACKBONE_NAMES = ("iresnet18", "iresnet34", "iresnet50", "iresnet100", "mobilefacenet", "compact")
AMP_MODES = ("auto", "off", "bf16", "fp16")
AUGMENT_PRESETS = ("standard", "digiface", "digiface-published", "none")
SCHEDULES = ("step", "poly")
HEADS = ("arcface", "cosface")
DEVICES_HELP = "auto, cpu, cuda or cuda:N"
#: SynFace's grid for psi (and phi): {0, 0.05, ..., 1}.
PSI_GRID = tuple(round(i * 0.05, 2) for i in range(21))


class ConfigError(ValueError):
    """A bad or unknown configuration key; the message names the key."""


@dataclass
class EvalSetSpec:
    """One verification set: an LFW-layout folder or an insightface .bin file.

    folds: 0-based fold ids to score on (None = all); k-fold needs at least 2 of them.
    center_crop: fraction of the image side kept around the centre before resizing
    (e.g. 0.6 for 250x250 deep-funneled LFW, whose face fills the middle); None keeps all.
    """

    path: str
    name: str = ""
    pairs: str | None = None
    folds: list[int] | None = None
    center_crop: float | None = None

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem or Path(self.path).name


@dataclass
class TrainConfig:
    """Everything a training run needs; `to_dict()` is what runs store in config.json."""

    name: str = "run"
    # model
    backbone: str = "compact"
    embedding_dim: int = 512
    dropout: float = 0.0
    head: str = "arcface"
    head_s: float | None = None          # None: the paper's s=30
    head_m: float | None = None          # None: 0.5 (ArcFace) / 0.4 (CosFace)
    input_size: int | None = None        # None: the backbone's own (56 compact, 112 others)
    # data
    data: str | None = None              # synthetic dataset root (manifest.parquet) or ImageFolder
    real_root: str | None = None         # real ImageFolder (aligned CASIA/LFW crops)
    real_ids: int | None = None          # R_ID of Real_{R_ID}_{k}; None: every identity, every image
    real_k: int | None = None            # k of Real_{R_ID}_{k}
    psi: Any = "none"                    # "none" | float in [0, 1] | "grid"
    augment: str = "standard"            # AUGMENT_PRESETS; see synface/train/augment.py
    cache_images: bool = False           # decode every training image once into RAM (uint8)
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "step"
    milestones: list[int] = field(default_factory=lambda: [6, 8, 9])
    gamma: float = 0.1
    poly_power: float = 2.0
    warmup_epochs: float = 0.0
    grad_clip: float = 0.0               # max global grad norm; 0 = off
    # execution
    amp: str = "auto"
    channels_last: bool = True
    workers: int = 0
    device: str = "auto"
    seed: int = 0
    steps_per_epoch: int | None = None   # cap on steps per epoch (smoke tests); None = full epoch
    keep_epoch_checkpoints: bool = False
    # evaluation and logging
    eval_sets: list[EvalSetSpec] = field(default_factory=list)
    allow_overlap: bool = False          # accept training people in the eval sets (launch refuses otherwise)
    eval_every: int = 1
    eval_batch_size: int = 128
    log_every: int = 20

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def psi_mode(self) -> str:
        """'none', 'fixed' or 'grid'."""
        if self.psi is None or self.psi == "none":
            return "none"
        return "grid" if self.psi == "grid" else "fixed"

    def validate(self) -> "TrainConfig":
        """Check every value; raise ConfigError naming the first bad key."""
        for f in dataclasses.fields(self):
            check = _CHECKS.get(f.name)
            if check is not None:
                check(f.name, getattr(self, f.name))
        _check_cross(self)
        return self

    def check_paths(self) -> None:
        """Data paths exist (separate from `validate` so configs can be built on another machine)."""
        for key in ("data", "real_root"):
            value = getattr(self, key)
            if value is not None and not Path(value).exists():
                raise ConfigError(f"config '{key}': path not found: {value}")
        for i, spec in enumerate(self.eval_sets):
            if not Path(spec.path).exists():
                raise ConfigError(f"config 'eval_sets[{i}].path': path not found: {spec.path}")
            if spec.pairs is not None and not Path(spec.pairs).exists():
                raise ConfigError(f"config 'eval_sets[{i}].pairs': path not found: {spec.pairs}")


# ----------------------------------------------------------------------------- value checks


def _fail(key: str, what: str, value: Any) -> None:
    raise ConfigError(f"config '{key}' must be {what}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    """A finite int or float (nan and inf are refused: `lr=nan` would train to nan silently)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pos_int(key: str, v: Any) -> None:
    if not _is_int(v) or v < 1:
        _fail(key, "a positive integer", v)


#: upper bounds of the size keys: far above any real run, low enough that a typo
#: (`embedding_dim=1000000000`) is refused before gigabytes are allocated
SIZE_LIMITS = {"embedding_dim": 65_536, "input_size": 1_024, "batch_size": 1_048_576, "eval_batch_size": 1_048_576,
               "epochs": 100_000, "real_ids": 100_000_000, "real_k": 1_000_000, "workers": 1_024,
               "steps_per_epoch": 1_000_000_000}


def _sized(check):
    def inner(key: str, v: Any) -> None:
        check(key, v)
        if v is not None and v > SIZE_LIMITS[key]:
            _fail(key, f"at most {SIZE_LIMITS[key]:,}", v)
    return inner


def _nonneg_int(key: str, v: Any) -> None:
    if not _is_int(v) or v < 0:
        _fail(key, "a non-negative integer", v)


def _opt(check):
    def inner(key: str, v: Any) -> None:
        if v is not None:
            check(key, v)
    return inner


def _pos_num(key: str, v: Any) -> None:
    if not _is_num(v) or not v > 0:
        _fail(key, "a positive number", v)


def _nonneg_num(key: str, v: Any) -> None:
    if not _is_num(v) or not v >= 0:
        _fail(key, "a non-negative number", v)


def _unit(key: str, v: Any) -> None:
    if not _is_num(v) or not 0 <= v < 1:
        _fail(key, "a number in [0, 1)", v)


def _choice(options: tuple[str, ...]):
    def inner(key: str, v: Any) -> None:
        if not isinstance(v, str) or v.lower() not in options:
            _fail(key, "one of " + ", ".join(options), v)
    return inner


def _bool(key: str, v: Any) -> None:
    if not isinstance(v, bool):
        _fail(key, "true or false", v)


def _str(key: str, v: Any) -> None:
    if not isinstance(v, str) or not v.strip():
        _fail(key, "a non-empty string", v)


def _psi(key: str, v: Any) -> None:
    if v is None or v in ("none", "grid"):
        return
    if not _is_num(v) or not 0 <= v <= 1:
        _fail(key, "'none', 'grid' or a number in [0, 1]", v)


def _milestones(key: str, v: Any) -> None:
    if not isinstance(v, list) or not all(_is_int(m) and m > 0 for m in v) or v != sorted(v):
        _fail(key, "an increasing list of positive epoch numbers", v)


def _device(key: str, v: Any) -> None:
    if not isinstance(v, str) or not (v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())):
        _fail(key, DEVICES_HELP, v)


def _eval_sets(key: str, v: Any) -> None:
    if not isinstance(v, list):
        _fail(key, "a list of eval sets", v)
    for i, spec in enumerate(v):
        where = f"{key}[{i}]"
        if not isinstance(spec, EvalSetSpec):
            _fail(where, "an eval set", spec)
        _str(f"{where}.path", spec.path)
        if spec.folds is not None:
            if not isinstance(spec.folds, list) or not all(_is_int(f) and f >= 0 for f in spec.folds):
                _fail(f"{where}.folds", "a list of 0-based fold numbers", spec.folds)
            if len(set(spec.folds)) < 2:
                _fail(f"{where}.folds", "at least 2 distinct folds (k-fold picks thresholds on the others)", spec.folds)
        if spec.center_crop is not None and (not _is_num(spec.center_crop) or not 0 < spec.center_crop <= 1):
            _fail(f"{where}.center_crop", "a fraction in (0, 1]", spec.center_crop)


_CHECKS = {
    "name": _str,
    "backbone": _choice(BACKBONE_NAMES),
    "embedding_dim": _sized(_pos_int),
    "dropout": _unit,
    "head": _choice(HEADS),
    "head_s": _opt(_pos_num),
    "head_m": _opt(_nonneg_num),
    "input_size": _sized(_opt(_pos_int)),
    "data": _opt(_str),
    "real_root": _opt(_str),
    "real_ids": _sized(_opt(_pos_int)),
    "real_k": _sized(_opt(_pos_int)),
    "psi": _psi,
    "augment": _choice(AUGMENT_PRESETS),
    "cache_images": _bool,
    "epochs": _sized(_pos_int),
    "batch_size": _sized(_pos_int),
    "lr": _pos_num,
    "momentum": _unit,
    "weight_decay": _nonneg_num,
    "lr_schedule": _choice(SCHEDULES),
    "milestones": _milestones,
    "gamma": _pos_num,
    "poly_power": _pos_num,
    "warmup_epochs": _nonneg_num,
    "grad_clip": _nonneg_num,
    "amp": _choice(AMP_MODES),
    "channels_last": _bool,
    "workers": _sized(_nonneg_int),
    "device": _device,
    "seed": _nonneg_int,
    "steps_per_epoch": _sized(_opt(_pos_int)),
    "keep_epoch_checkpoints": _bool,
    "eval_sets": _eval_sets,
    "allow_overlap": _bool,
    "eval_every": _pos_int,
    "eval_batch_size": _sized(_pos_int),
    "log_every": _pos_int,
}


def _check_cross(cfg: TrainConfig) -> None:
    if cfg.data is None and cfg.real_root is None:
        raise ConfigError("config 'data' is required: a synthetic dataset folder (or set 'real_root' for a real-only run)")
    if (cfg.real_ids is None) != (cfg.real_k is None):
        raise ConfigError("config 'real_ids' and 'real_k' go together (Real_{R_ID}_{k}); set both or neither")
    if cfg.psi_mode != "none" and (cfg.data is None or cfg.real_root is None):
        raise ConfigError("config 'psi' (domain mixup) needs both 'data' (synthetic) and 'real_root'")
    if cfg.warmup_epochs > cfg.epochs:
        raise ConfigError(f"config 'warmup_epochs' ({cfg.warmup_epochs}) exceeds 'epochs' ({cfg.epochs})")


# ----------------------------------------------------------------------------- presets and loading

PRESETS: dict[str, dict[str, Any]] = {
    # 56x56 compact net, 5 epochs. Measured on the shared 2-core dev CPU: the step runs at
    # ~250 images/s when the CPU is free, 55-150 images/s when other jobs share it; a 5k-image
    # set took 7.5 min for 6 epochs + 3 LFW evaluations at load average ~3 (so ~3.5 min free),
    # a 10k-image set takes ~4-5 min free, ~10 min shared.
    "cpu-quick": {
        "name": "cpu-quick", "backbone": "compact", "batch_size": 128, "epochs": 5, "lr": 0.1,
        "lr_schedule": "step", "milestones": [3, 4], "warmup_epochs": 0.5, "augment": "standard",
        "cache_images": True, "workers": 0, "amp": "auto", "channels_last": True, "log_every": 10,
        "eval_every": 2,
    },
    # The SynFace paper's recipe (8 GPUs x 64 = 512).
    "paper": {
        "name": "paper", "backbone": "iresnet50", "input_size": 112, "batch_size": 512, "epochs": 40,
        "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": "step",
        "milestones": [24, 30, 36], "gamma": 0.1, "head": "arcface", "head_s": 30.0, "head_m": 0.5,
        "augment": "standard", "workers": 8, "amp": "auto", "log_every": 50,
    },
}

_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_EVAL_FIELDS = {f.name for f in dataclasses.fields(EvalSetSpec)}


def _unknown(key: str, known: set[str], prefix: str = "") -> ConfigError:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
    return ConfigError(f"config key '{prefix}{key}' is unknown{hint}")


def _eval_spec(i: int, item: Any) -> EvalSetSpec:
    if isinstance(item, EvalSetSpec):
        return item
    if isinstance(item, str):
        return EvalSetSpec(path=item)
    if not isinstance(item, Mapping):
        raise ConfigError(f"config 'eval_sets[{i}]' must be a path or a mapping with 'path', got {item!r}")
    for key in item:
        if key not in _EVAL_FIELDS:
            raise _unknown(str(key), _EVAL_FIELDS, f"eval_sets[{i}].")
    if "path" not in item:
        raise ConfigError(f"config 'eval_sets[{i}]' needs a 'path'")
    spec = EvalSetSpec(**dict(item))
    if isinstance(spec.folds, tuple):
        spec.folds = list(spec.folds)
    return spec


def config_from_dict(values: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Build and validate a config; a `preset` key (in values or overrides) is the starting point."""
    merged: dict[str, Any] = {}
    preset = (overrides or {}).get("preset", values.get("preset"))
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"config 'preset' must be one of {', '.join(PRESETS)}, got {preset!r}")
        merged.update(PRESETS[preset])
    for source in (values, overrides or {}):
        for key, value in source.items():
            if key == "preset":
                continue
            if key not in _FIELDS:
                raise _unknown(str(key), _FIELDS)
            merged[key] = value
    _coerce_numbers(merged)
    if "eval_sets" in merged:
        sets = merged["eval_sets"]
        if isinstance(sets, (str, Mapping)):
            sets = [sets]
        if not isinstance(sets, (list, tuple)):
            raise ConfigError(f"config 'eval_sets' must be a list of eval sets, got {sets!r}")
        merged["eval_sets"] = [_eval_spec(i, s) for i, s in enumerate(sets)]
    for key in ("milestones",):
        if isinstance(merged.get(key), tuple):
            merged[key] = list(merged[key])
    for key in ("head", "amp", "augment", "lr_schedule", "backbone"):
        if isinstance(merged.get(key), str):
            merged[key] = merged[key].lower()
    if isinstance(merged.get("psi"), str):
        merged["psi"] = merged["psi"].lower()
    return TrainConfig(**merged).validate()


_NUMERIC = {"embedding_dim", "dropout", "head_s", "head_m", "input_size", "real_ids", "real_k", "epochs",
            "batch_size", "lr", "momentum", "weight_decay", "gamma", "poly_power", "warmup_epochs", "grad_clip",
            "workers", "seed", "steps_per_epoch", "eval_every", "eval_batch_size", "log_every", "psi"}


def _coerce_numbers(values: dict[str, Any]) -> None:
    """YAML 1.1 reads '1e-3' as a string; accept numeric strings for numeric keys."""
    for key in _NUMERIC & values.keys():
        value = values[key]
        if isinstance(value, str) and value.lower() not in ("none", "grid"):
            try:
                values[key] = int(value)
            except ValueError:
                try:
                    values[key] = float(value)
                except ValueError:
                    pass  # left for the check to reject, naming the key


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`key=value` strings (CLI --set) to a dict; values are parsed as YAML (numbers, lists, null)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, preset: str | None = None
) -> TrainConfig:
    """Load a YAML/JSON config file (or just a preset) and apply overrides; validated."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        try:
            loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot parse config {path}: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must hold a mapping of keys to values")
        values.update(loaded)
    if preset is not None:
        values.setdefault("preset", preset)
    return config_from_dict(values, overrides)
