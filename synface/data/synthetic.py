"""Synthetic datasets: Syn_{IDs}_{samples}[_IM], the Figure 4 attribute protocol, on disk or on the fly.

Every image is a pure function of (config, identity index, sample index): its coefficients are
drawn from seeds derived from those numbers alone. That is what makes a killed build resumable
without duplicates (missing files are re-rendered, present ones kept) and what lets the on-the-fly
dataset yield the same images as the on-disk build.

Seeds. Identity i of a set built with seed S draws its identity coefficients from
`identity_seed(S, i, purpose)` = 2 * (S * 2**32 + i) for training sets and the same plus one for
benchmark sets: training seeds are even and benchmark seeds odd, so a benchmark identity can never
be a training identity, whatever the seeds and sizes. Attributes use separate streams
(`_stream_seed`), so changing the attribute modes never changes the identities.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from synface.base.files import atomic_path
from synface.base.names import check_name
from synface.data.errors import DataError
from synface.data.subsets import subset_name
from synface.face.coeffs import FaceCoeffs
from synface.generator import FaceGenerator

ATTRIBUTES = ("pose", "expression", "illumination")
DEFAULT_PHI_GRID = tuple(round(0.05 * i, 2) for i in range(21))
MAX_SEED = 2**31 - 1
MANIFEST = "manifest.parquet"
CARD = "dataset.json"
STATE = "build_state.json"


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
        if self.name:  # it names the set's folder in the workspace: one safe path component
            try:
                check_name(self.name, "dataset name")
            except ValueError as exc:
                raise DataError(str(exc)) from None

    @property
    def num_images(self) -> int:
        return self.ids * self.samples

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
        """Hash of everything that changes pixels (not the name)."""
        d = self.to_dict()
        d.pop("name")
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
    return name


def identity_seed(seed: int, identity: int, purpose: str) -> int:
    """Even for training sets, odd for benchmark sets: the two can never share an identity."""
    return 2 * (int(seed) * 2**32 + int(identity)) + (1 if purpose == "benchmark" else 0)


def _stream_seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# ---------------------------------------------------------------------------------------------
# Coefficients of any image of a set
# ---------------------------------------------------------------------------------------------
@dataclass
class SampleLabels:
    label: np.ndarray  # (N,) identity index
    partner: np.ndarray  # (N,) partner identity, -1 without mixup
    phi: np.ndarray  # (N,) weight of `label` (1.0 without mixup)


class SyntheticSpec:
    """The coefficients and soft labels of every image of one config (shared by build and on-the-fly)."""

    def __init__(self, config: SynthConfig, generator: FaceGenerator) -> None:
        self.config = config
        self.gen = generator
        self._identity_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def identity(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of identity i (CPU)."""
        if i not in self._identity_cache:
            g = torch.Generator().manual_seed(identity_seed(self.config.seed, i, self.config.purpose))
            shape, albedo = self.gen.draw_identities(1, g)
            if len(self._identity_cache) > 50_000:
                self._identity_cache.clear()
            self._identity_cache[i] = (shape[0], albedo[0])
        return self._identity_cache[i]

    def _attributes(self, i: int) -> dict[str, torch.Tensor]:
        """All M samples' attributes of identity i, with 'fixed' attributes held."""
        c = self.config
        m = c.samples
        varied = self.gen.sample_attributes(
            m, _stream_seed("attr", c.seed, c.purpose, i),
            pose_scale=c.pose_scale, expr_scale=c.expression_scale, light_scale=c.illumination_scale)
        held = self.gen.sample_attributes(
            1, _stream_seed("fixed", c.seed, c.purpose, i),
            pose_scale=c.pose_scale, expr_scale=c.expression_scale, light_scale=c.illumination_scale)
        for attr, key in (("pose", "pose"), ("expression", "expr"), ("illumination", "light")):
            if getattr(c, attr) == "fixed":
                varied[key] = held[key].expand(m, -1).clone()
        return varied

    def _mixup(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Partner and phi per sample of identity i (seeded, unlike the paper's unseeded draw)."""
        c = self.config
        m = c.samples
        if not c.im:
            return np.full(m, -1, dtype=np.int64), np.ones(m, dtype=np.float32)
        rng = np.random.default_rng(_stream_seed("mix", c.seed, c.purpose, i))
        partner = rng.integers(0, c.ids - 1, size=m)
        partner = partner + (partner >= i)  # any identity but i
        phi = np.asarray(c.phi_grid, dtype=np.float32)[rng.integers(0, len(c.phi_grid), size=m)]
        return partner.astype(np.int64), phi

    def identity_batch(self, i: int, ks: Sequence[int] | None = None) -> tuple[FaceCoeffs, SampleLabels]:
        """Coefficients and labels of samples `ks` (default all) of identity i."""
        ks = list(range(self.config.samples)) if ks is None else list(ks)
        attrs = {k: v[ks] for k, v in self._attributes(i).items()}
        partner, phi = self._mixup(i)
        partner, phi = partner[ks], phi[ks]
        shape_i, albedo_i = self.identity(i)
        own = FaceCoeffs(shape=shape_i.expand(len(ks), -1).clone(), albedo=albedo_i.expand(len(ks), -1).clone(), **attrs)
        if not (partner >= 0).any():
            coeffs = own
        else:  # the one identity mixup (FaceGenerator.mix); a sample without a partner keeps phi = 1
            others = [self.identity(int(p) if p >= 0 else i) for p in partner]
            partners = own.replace(shape=torch.cat([o[0].reshape(1, -1) for o in others]),
                                   albedo=torch.cat([o[1].reshape(1, -1) for o in others]))
            coeffs = FaceGenerator.mix(own, partners, torch.from_numpy(phi.astype(np.float32)))
        labels = SampleLabels(np.full(len(ks), i, dtype=np.int64), partner, phi.astype(np.float32))
        return coeffs, labels


# ---------------------------------------------------------------------------------------------
# Building to disk
# ---------------------------------------------------------------------------------------------
@dataclass
class BuildReport:
    out: str
    name: str
    num_identities: int
    num_images: int
    rendered: int
    already_present: int
    seconds: float
    images_per_s: float
    disk_bytes: int
    resumed: bool = False
    extra: dict = field(default_factory=dict)


def image_relpath(identity: int, k: int, fmt: str) -> str:
    return f"{identity:05d}/{k:03d}.{fmt}"


def _encode_and_write(path: Path, image: np.ndarray, fmt: str, quality: int) -> int:
    """Atomic write: a killed build leaves either a whole image or none (temp files are swept)."""
    tmp = path.with_name(f".{path.name}.tmp")
    pil = Image.fromarray(image)
    if fmt == "jpg":
        pil.save(tmp, format="JPEG", quality=quality)
    else:
        pil.save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)
    return path.stat().st_size


def _sweep_temp_files(out: Path) -> int:
    removed = 0
    for tmp in out.glob("*/.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _check_state(out: Path, config: SynthConfig, generator_version: str) -> bool:
    """True when resuming a build of the same config and generator; refuses to mix two in one folder."""
    state = out / STATE
    if state.exists():
        try:
            previous = json.loads(state.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{state}: unreadable build state ({exc}); delete the folder to rebuild", path=state) from exc
        if previous.get("fingerprint") != config.fingerprint():
            raise DataError(
                f"{out} holds a different synthetic set (config {previous.get('config')}); choose another --out", path=out)
        if previous.get("generator_version") != generator_version:
            raise DataError(
                f"{out} was rendered by generator {previous.get('generator_version')!r}, this is {generator_version!r}; "
                "delete the folder or choose another --out", path=out)
        return True
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} is not empty and is not a synthetic build folder; choose another --out", path=out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(state) as tmp:
        tmp.write_text(json.dumps({"fingerprint": config.fingerprint(), "generator_version": generator_version,
                                   "config": config.to_dict()}, indent=1))
    return False


def build_dataset(config: SynthConfig, out: str | Path, generator: FaceGenerator | None = None,
                  progress: Callable[[int, int], None] | None = None, batch_size: int = 256,
                  write_threads: int = 2, stop: Callable[[], bool] | None = None) -> BuildReport:
    """Render a synthetic set to `out` (ImageFolder + manifest.parquet + dataset.json).

    Resumable: re-running with the same config renders only missing images. The manifest and the
    card are written last, atomically; the card's presence marks a complete set.
    """
    out = Path(out)
    gen = generator or FaceGenerator()
    resumed = _check_state(out, config, gen.version)
    _sweep_temp_files(out)
    spec = SyntheticSpec(config, gen)
    fmt = config.image_format
    total = config.num_images
    t0 = time.perf_counter()
    todo: list[tuple[int, list[int]]] = []
    present = 0
    for i in range(config.ids):
        folder = out / f"{i:05d}"
        if folder.is_dir():
            have = {p.name for p in folder.iterdir()}
            missing = [k for k in range(config.samples) if f"{k:03d}.{fmt}" not in have]
        else:
            missing = list(range(config.samples))
        present += config.samples - len(missing)
        if missing:
            todo.append((i, missing))
    done = present
    rendered = 0
    if progress:
        progress(done, total)
    with ThreadPoolExecutor(max_workers=max(1, write_threads)) as pool:
        pending = []
        for chunk in _chunks(todo, batch_size):
            if stop and stop():
                break
            coeffs_list, keys = [], []
            for i, ks in chunk:
                coeffs, _ = spec.identity_batch(i, ks)
                coeffs_list.append(coeffs)
                keys.extend((i, k) for k in ks)
                (out / f"{i:05d}").mkdir(exist_ok=True)
            images = gen.render(FaceCoeffs.cat(coeffs_list)).images.cpu().numpy()
            for f in pending:
                f.result()
            pending = [
                pool.submit(_encode_and_write, out / image_relpath(i, k, fmt), images[j], fmt, config.jpeg_quality)
                for j, (i, k) in enumerate(keys)
            ]
            rendered += len(keys)
            done += len(keys)
            if progress:
                progress(done, total)
        for f in pending:
            f.result()
    complete = done >= total and not (stop and stop())
    if complete:
        write_manifest(config, out, spec)
    seconds = time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in out.glob(f"*/*.{fmt}"))
    report = BuildReport(str(out), config.name, config.ids, total, rendered, present, round(seconds, 2),
                         round(rendered / seconds, 1) if seconds > 0 else 0.0, disk, resumed)
    if complete:
        card = {
            "name": config.name,
            "kind": "synthetic",
            "config": config.to_dict(),
            "num_identities": config.ids,
            "num_images": total,
            "generator_version": gen.version,
            "layout": gen.layout.sizes(),
            "seed": config.seed,
            "seed_scheme": "identity_seed = 2*(seed*2**32 + i) (+1 for benchmarks); attributes from sha256 streams",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build": asdict(report),
        }
        with atomic_path(out / CARD) as tmp:
            tmp.write_text(json.dumps(card, indent=1))
    return report


def _chunks(todo: list[tuple[int, list[int]]], batch_size: int) -> Iterable[list[tuple[int, list[int]]]]:
    chunk, count = [], 0
    for i, ks in todo:
        for start in range(0, len(ks), batch_size):
            part = ks[start : start + batch_size]
            if count + len(part) > batch_size and chunk:
                yield chunk
                chunk, count = [], 0
            chunk.append((i, part))
            count += len(part)
    if chunk:
        yield chunk


def manifest_frame(config: SynthConfig, spec: SyntheticSpec):
    """The manifest as a pandas DataFrame: path, label, partner, phi and every coefficient."""
    import pandas as pd  # noqa: PLC0415

    columns = spec.gen.layout.column_names()
    frames = []
    for i in range(config.ids):
        coeffs, labels = spec.identity_batch(i)
        flat = coeffs.to_flat()
        frame = pd.DataFrame(flat, columns=columns)
        frame.insert(0, "phi", labels.phi)
        frame.insert(0, "partner", labels.partner)
        frame.insert(0, "label", labels.label)
        frame.insert(0, "path", [image_relpath(i, k, config.image_format) for k in range(config.samples)])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def write_manifest(config: SynthConfig, out: Path, spec: SyntheticSpec) -> None:
    frame = manifest_frame(config, spec)
    with atomic_path(out / MANIFEST) as tmp:
        frame.to_parquet(tmp, index=False)


def read_card(root: str | Path) -> dict:
    """The dataset card of a complete synthetic set (DataError naming the folder otherwise)."""
    path = Path(root) / CARD
    if not path.exists():
        raise DataError(f"{root} is not a complete synthetic set (no {CARD}; an interrupted build resumes with the same command)", path=root)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})", path=path) from exc


# ---------------------------------------------------------------------------------------------
# On the fly
# ---------------------------------------------------------------------------------------------
class OnTheFlyDataset(torch.utils.data.Dataset):
    """Renders images during training without touching disk; index = identity * samples + k.

    `get_batch` renders many at once (what a training loop should call); `__getitem__` renders one.
    The pixels equal the on-disk build's before JPEG compression (PNG builds match exactly).
    """

    def __init__(self, config: SynthConfig, generator: FaceGenerator | None = None) -> None:
        self.config = config
        self.gen = generator or FaceGenerator()
        self.spec = SyntheticSpec(config, self.gen)

    def __len__(self) -> int:
        return self.config.num_images

    def _split(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside a set of {len(self)} images")
        return divmod(int(index), self.config.samples)

    def get_batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """uint8 images (N,112,112,3), labels (N,2), weights (N,2)."""
        by_identity: dict[int, list[int]] = {}
        order = []
        for idx in indices:
            i, k = self._split(idx)
            by_identity.setdefault(i, []).append(k)
            order.append((i, k))
        coeffs_list, keys, labels_list = [], [], []
        for i, ks in by_identity.items():
            coeffs, labels = self.spec.identity_batch(i, ks)
            coeffs_list.append(coeffs)
            labels_list.append(labels)
            keys.extend((i, k) for k in ks)
        images = self.gen.render(FaceCoeffs.cat(coeffs_list)).images.cpu()
        label = np.concatenate([l.label for l in labels_list])
        partner = np.concatenate([l.partner for l in labels_list])
        phi = np.concatenate([l.phi for l in labels_list])
        position = {key: j for j, key in enumerate(keys)}
        perm = torch.tensor([position[key] for key in order])
        lab = torch.from_numpy(np.stack([label, partner], 1))[perm]
        wts = torch.from_numpy(np.stack([phi, 1 - phi], 1).astype(np.float32))[perm]
        wts[lab[:, 1] < 0, 1] = 0.0
        return {"images": images[perm], "labels": lab, "weights": wts}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.get_batch([index])
        return {k: v[0] for k, v in batch.items()}
