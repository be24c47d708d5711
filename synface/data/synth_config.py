"""What a synthetic set is: `SynthConfig`, its paper-style names and its seed streams.

Seeds. Identity i of a set built with seed S draws its identity coefficients from
`identity_seed(S, i, purpose)` = 2 * (S * 2**32 + i) for training sets and the same plus one for
benchmark sets: training seeds are even and benchmark seeds odd, so a benchmark identity can never
be a training identity, whatever the seeds and sizes. Attributes use separate streams
(`stream_seed`), so changing the attribute modes never changes the identities.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from synface.base.names import check_name
from synface.data.errors import DataError
from synface.data.subsets import subset_name
from synface.face.catalog import BUILTIN

#: what is around a synthetic face (synface.data.contexts)
CONTEXT_MODES = ("plain", "photo", "background")

ATTRIBUTES = ("pose", "expression", "illumination")
DEFAULT_PHI_GRID = tuple(round(0.05 * i, 2) for i in range(21))
MAX_SEED = 2**31 - 1
#: size limits: far above the paper's largest sets (10K identities x 50), low enough that a typo
#: (`--ids 1000000000`) is refused at once instead of listing a billion folders
MAX_IDS = 1_000_000
MAX_SAMPLES = 100_000
MAX_IMAGES = 50_000_000
#: distinct source people and one context per identity are dealt out over every identity of the
#: set before its first image (sequentially, a fraction of a millisecond each): larger sets would
#: wait minutes unseen
MAX_DEALT_IDS = 100_000
#: disk estimate per image: a 112x112 render is ~4.4 KB as JPEG q95 (docs/benchmarks.md), two 4 KB
#: file-system blocks; ~25 KB as PNG, eight blocks
BYTES_PER_IMAGE = {"jpg": 8_192, "png": 32_768}


@dataclass
class SynthConfig:
    """What a synthetic set is; two builds of one config give the same pixels."""

    ids: int
    samples: int
    seed: int = 0
    im: bool = False
    phi_grid: tuple[float, ...] = DEFAULT_PHI_GRID
    pose: str = "vary"  # "vary": drawn per image; "fixed": drawn once per identity and held
    expression: str = "vary"
    illumination: str = "vary"
    pose_scale: float = 1.0
    expression_scale: float = 1.0
    illumination_scale: float = 1.0
    purpose: str = "train"  # "train" or "benchmark": disjoint identity seeds
    image_format: str = "jpg"
    jpeg_quality: int = 95
    name: str = ""
    model: str = BUILTIN  # the face model: "builtin" or a learned model of the workspace (face_models/<name>)
    min_source_distance: float = 0.0  # learned models: redraw identities nearer than this to a source person
    distinct_sources: bool = False  # learned models: each region's source person the one earlier identities used least
    context: str = "plain"  # "plain", or a learned model's photos around the face: "photo" or "background"
    contexts_per_identity: bool = False  # one context photo per identity (default: one per image)
    min_context_distance: float = 0.0  # redraw a context whose composite lies nearer than this to its person
    camera_match: bool = True  # context sets: the drawn face takes its photo's colour, blur, grain and JPEG level

    def __post_init__(self) -> None:
        self.phi_grid = tuple(float(p) for p in self.phi_grid)
        self.validate()
        if not self.name:
            self.name = default_name(self)

    def validate(self) -> None:
        def bad(key: str, why: str) -> DataError:
            return DataError(f"synthetic dataset config: '{key}' {why}")

        for key in ("ids", "samples"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise bad(key, f"must be a positive integer, got {value!r}")
        for key, limit in (("ids", MAX_IDS), ("samples", MAX_SAMPLES)):
            if getattr(self, key) > limit:
                raise bad(key, f"must be at most {limit:,}, got {getattr(self, key):,}")
        if self.ids * self.samples > MAX_IMAGES:
            raise bad("ids", f"x samples must be at most {MAX_IMAGES:,} images, got {self.ids:,} x {self.samples:,}")
        if self.im and self.ids < 2:
            raise bad("im", "needs at least 2 identities (a partner to mix with)")
        if not 0 <= int(self.seed) <= MAX_SEED:
            raise bad("seed", f"must be in [0, {MAX_SEED}], got {self.seed}")
        if not self.phi_grid or any(not (0.0 <= p <= 1.0) for p in self.phi_grid):
            raise bad("phi_grid", f"must be a non-empty list of values in [0, 1], got {list(self.phi_grid)}")
        for attr in ATTRIBUTES:
            mode = getattr(self, attr)
            if mode not in ("vary", "fixed"):
                raise bad(attr, f"must be 'vary' or 'fixed', got {mode!r}")
            scale = getattr(self, f"{attr}_scale")
            if not (0.0 <= float(scale) <= 3.0):
                raise bad(f"{attr}_scale", f"must be in [0, 3], got {scale}")
        if self.purpose not in ("train", "benchmark"):
            raise bad("purpose", f"must be 'train' or 'benchmark', got {self.purpose!r}")
        if self.image_format not in ("jpg", "png"):
            raise bad("image_format", f"must be 'jpg' or 'png', got {self.image_format!r}")
        if not isinstance(self.model, str) or not self.model:
            raise bad("model", f"must be 'builtin' or a learned face model's name, got {self.model!r}")
        if self.model != BUILTIN:
            try:
                check_name(self.model, "face model name")
            except ValueError as exc:
                raise DataError(str(exc)) from None
        distance = self.min_source_distance
        if isinstance(distance, bool) or not isinstance(distance, (int, float)) or not 0.0 <= float(distance) < 10.0:
            raise bad("min_source_distance", f"must be a number in [0, 10), got {distance!r}")
        self.min_source_distance = float(distance)
        if self.min_source_distance > 0 and self.model == BUILTIN:
            raise bad("min_source_distance", "needs a learned face model: the built-in head has no source people "
                                             "(choose one with --model NAME)")
        if not isinstance(self.distinct_sources, bool):
            raise bad("distinct_sources", f"must be true or false, got {self.distinct_sources!r}")
        if self.distinct_sources and self.model == BUILTIN:
            raise bad("distinct_sources", "needs a learned face model: the built-in head has no source people "
                                          "(choose one with --model NAME)")
        if self.distinct_sources and self.ids > MAX_DEALT_IDS:
            raise bad("distinct_sources", f"applies to sets of at most {MAX_DEALT_IDS:,} identities, got {self.ids:,}")
        if self.context not in CONTEXT_MODES:
            raise bad("context", f"must be one of {', '.join(CONTEXT_MODES)}, got {self.context!r}")
        if self.context != "plain" and self.model == BUILTIN:
            raise bad("context", "contexts come from a learned face model's photos: choose one with --model NAME "
                                 "(or --context plain)")
        distance = self.min_context_distance
        if isinstance(distance, bool) or not isinstance(distance, (int, float)) or not 0.0 <= float(distance) < 10.0:
            raise bad("min_context_distance", f"must be a number in [0, 10), got {distance!r}")
        self.min_context_distance = float(distance)
        if self.min_context_distance > 0 and self.context == "plain":
            raise bad("min_context_distance", "applies to sets drawn into context photos (--context photo)")
        if not isinstance(self.contexts_per_identity, bool):
            raise bad("contexts_per_identity", f"must be true or false, got {self.contexts_per_identity!r}")
        if self.contexts_per_identity and self.ids > MAX_DEALT_IDS:
            raise bad("contexts_per_identity", f"applies to sets of at most {MAX_DEALT_IDS:,} identities, "
                                               f"got {self.ids:,}")
        if not isinstance(self.camera_match, bool):
            raise bad("camera_match", f"must be true or false, got {self.camera_match!r}")
        if not self.camera_match and self.context == "plain":
            raise bad("camera_match", "applies to sets drawn into context photos (--context photo)")
        if self.name:  # it names the set's folder in the workspace: one safe path component
            try:
                check_name(self.name, "dataset name")
            except ValueError as exc:
                raise DataError(str(exc)) from None

    @property
    def num_images(self) -> int:
        return self.ids * self.samples

    def estimated_bytes(self, images: int | None = None) -> int:
        """Disk space of `images` (default all) images of this set, estimated."""
        return (self.num_images if images is None else images) * BYTES_PER_IMAGE.get(self.image_format, 32_768)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["phi_grid"] = list(self.phi_grid)
        return d

    @staticmethod
    def from_dict(d: dict) -> "SynthConfig":
        known = set(SynthConfig.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"synthetic dataset config: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return SynthConfig(**d)

    def fingerprint(self) -> str:
        """Hash of everything that changes pixels (not the name). The face-model keys count only
        when they differ from their defaults, so sets built before models had names keep theirs."""
        d = self.to_dict()
        d.pop("name")
        if d["model"] == BUILTIN:
            d.pop("model")
        if d["min_source_distance"] == 0.0:
            d.pop("min_source_distance")
        for key, default in (("context", "plain"), ("contexts_per_identity", False), ("min_context_distance", 0.0),
                             ("distinct_sources", False)):
            if d[key] == default:
                d.pop(key)
        if "context" not in d:  # plain (popped above): matching changes only composites' pixels
            d.pop("camera_match")
        if d.get("contexts_per_identity"):  # 3: one photo per identity from a wide share of the pool
            d["context_choice"] = 3       # (2: from the 64 most frontal, shared by many; 1: per image)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def default_name(cfg: SynthConfig) -> str:
    """Paper-style names: Syn_10K_50, Syn_1K_50_IM, Syn_1K_20_fixed-pose."""
    name = subset_name(cfg.ids, cfg.samples, prefix="Syn")
    if cfg.im:
        name += "_IM"
    fixed = [a for a in ATTRIBUTES if getattr(cfg, a) == "fixed"]
    if fixed:
        name += "_fixed-" + "-".join(fixed)
    if cfg.purpose == "benchmark":
        name += "_bench"
    if cfg.model != BUILTIN:
        name += f"_{cfg.model}"
    if cfg.distinct_sources:
        name += "_distinct"
    if cfg.context != "plain":
        name += f"_ctx-{cfg.context}" + ("-perid" if cfg.contexts_per_identity else "")
    return name


def identity_seed(seed: int, identity: int, purpose: str) -> int:
    """Even for training sets, odd for benchmark sets: the two can never share an identity."""
    return 2 * (int(seed) * 2**32 + int(identity)) + (1 if purpose == "benchmark" else 0)


def stream_seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1-based, as in "part 2 of 4") of a synthetic set: a contiguous
    range of identities. Every image keeps the seeds it has in the whole set (they depend on the
    identity index and the set's config alone), so the shards of a set, merged, are that set."""

    index: int
    count: int

    def __post_init__(self) -> None:
        for key in ("index", "count"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise DataError(f"shard {key} must be an integer, got {value!r}")
        if self.count < 1:
            raise DataError(f"shard {self.label}: the number of shards N must be at least 1")
        if not 1 <= self.index <= self.count:
            raise DataError(f"shard {self.label}: K must be between 1 and N ({self.count}); shards count from 1")

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @staticmethod
    def parse(text: str) -> "Shard":
        """'K/N' -> Shard(K, N); a DataError naming the text otherwise."""
        parts = str(text).strip().split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise DataError(f"shard {text!r}: expected K/N, e.g. 2/4 (part 2 of 4)")
        return Shard(int(parts[0]), int(parts[1]))

    def identities(self, ids: int) -> range:
        """The identities of this shard of a set of `ids`: [floor((K-1) ids / N), floor(K ids / N))."""
        if self.count > ids:
            raise DataError(f"shard {self.label}: {self.count} shards of a set of {ids} identities would leave "
                            "some empty; use at most as many shards as identities")
        return range((self.index - 1) * ids // self.count, self.index * ids // self.count)

    def to_dict(self, ids: int) -> dict:
        span = self.identities(ids)
        return {"index": self.index, "count": self.count, "first_identity": span.start, "end_identity": span.stop}
