"""Synthetic datasets: Syn_{IDs}_{samples}[_IM], the Figure 4 attribute protocol, on disk or on the fly.

Every image is a pure function of (config, identity index, sample index): its coefficients are
drawn from seeds derived from those numbers alone. That is what makes a killed build resumable
without duplicates (missing files are re-rendered, present ones kept) and what lets the on-the-fly
dataset yield the same images as the on-disk build. The config and its seed streams are in
`synface.data.synth_config` (re-exported here); its face model in `synface.data.synth_model`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from synface.base.files import check_free_space, utc_now
from synface.data.errors import DataError
from synface.data.imageio import image_problem, write_image
from synface.data.synth_config import (  # noqa: F401  (the config half of this module's API lives there)
    ATTRIBUTES, DEFAULT_PHI_GRID, MAX_SEED, Shard, SynthConfig, default_name, identity_seed, stream_seed,
)
from synface.data.synth_model import (
    BUILTIN, CHECK_FILE, PRIVACY_SAMPLE, SourceCheck, generator_for, model_name_of, privacy_summary,
)
from synface.data.synth_set import SynthSet
from synface.face.coeffs import FaceCoeffs
from synface.generator import FaceGenerator


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
        rendering = model_name_of(generator)
        if rendering != config.model:
            raise DataError(f"synthetic set {config.name!r} uses face model {config.model!r}, but the generator "
                            f"renders {rendering!r} ({generator.version})")
        self.config = config
        self.gen = generator
        self._identity_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        #: the source-distance check of a set with min_source_distance > 0 (None otherwise)
        self.check = SourceCheck(generator, config.min_source_distance) if config.min_source_distance > 0 else None

    def first_seed(self, i: int) -> int:
        return identity_seed(self.config.seed, i, self.config.purpose)

    def draw(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of the identity drawn from `seed` (CPU)."""
        shape, albedo = self.gen.draw_identities(1, torch.Generator().manual_seed(int(seed)))
        return shape[0], albedo[0]

    def identity(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape, albedo) rows of identity i (CPU): its seed's draw, or with min_source_distance
        the first of its redraws far enough from every source person."""
        if i not in self._identity_cache:
            if self.check is None:
                rows = self.draw(self.first_seed(i))
            else:
                rows = self.check.choose(i, self.first_seed(i), self.draw)
            if len(self._identity_cache) > 50_000:
                self._identity_cache.clear()
            self._identity_cache[i] = rows
        return self._identity_cache[i]

    def _attributes(self, i: int) -> dict[str, torch.Tensor]:
        """All M samples' attributes of identity i, with 'fixed' attributes held."""
        c = self.config
        m = c.samples
        varied = self.gen.sample_attributes(
            m, stream_seed("attr", c.seed, c.purpose, i),
            pose_scale=c.pose_scale, expr_scale=c.expression_scale, light_scale=c.illumination_scale)
        held = self.gen.sample_attributes(
            1, stream_seed("fixed", c.seed, c.purpose, i),
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
        rng = np.random.default_rng(stream_seed("mix", c.seed, c.purpose, i))
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
    """Atomic write (fsynced before the rename, mode 0644): a killed build leaves either a whole image
    or none (temp files are swept); a full disk names the image it stopped at."""
    if fmt == "jpg":
        return write_image(path, image, "JPEG", quality=quality)
    return write_image(path, image, "PNG", compress_level=1)


#: (first bytes, last bytes) of every JPEG and PNG file
_IMAGE_ENDS = {"jpg": (b"\xff\xd8", b"\xff\xd9"), "png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82")}


def whole_image(path: Path, fmt: str) -> bool:
    """True when `path` holds a whole `fmt` image: it starts and ends with the format's markers and
    decodes completely. What a resume keeps; a zero-byte, truncated or garbled file is rendered again
    (atomic writes never leave one, but a disk, a copy or a user may)."""
    start, end = _IMAGE_ENDS[fmt]
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if not (data.startswith(start) and data.endswith(end)):
        return False
    return not image_problem(data)


def sweep_temp_files(out: Path) -> int:
    """Remove the temp files of image writes a kill interrupted (`<identity>/.<name>.*.tmp`); a
    resumed build calls it before rendering again. Returns how many went."""
    removed = 0
    for tmp in out.glob("*/.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def check_build_state(out: Path, config: SynthConfig, generator_version: str, shard: Shard | None = None) -> bool:
    """True when resuming a build of the same config, generator and shard (None: the whole set);
    refuses to mix two in one folder. Reads only: `start_build_state` writes the state of a new build."""
    if out.exists() and not out.is_dir():
        raise DataError("is a file, not a folder; choose another --out", path=out)
    previous = SynthSet(out).read_state()
    if previous is not None:
        before = previous.get("model") or (previous.get("config") or {}).get("model") or BUILTIN
        if before != config.model:
            raise DataError(f"this set was built with face model {before!r} ({previous.get('generator_version')}), "
                            f"not {config.model!r} ({generator_version}); resume it with --model {before} "
                            "or choose another --out", path=out)
        if previous.get("fingerprint") != config.fingerprint():
            raise DataError(f"{out} holds a different synthetic set: {config_differences(previous.get('config'), config)}; "
                            f"resume it with the same settings or choose another --out", path=out)
        if previous.get("generator_version") != generator_version:
            raise DataError(
                f"{out} was rendered by face model {before!r} version {previous.get('generator_version')!r}, this "
                f"{config.model!r} is {generator_version!r}; delete the folder or choose another --out", path=out)
        if previous.get("shard") != _shard_state(shard):
            raise DataError(f"{out} holds {_shard_words(previous.get('shard'))} of this set, not "
                            f"{_shard_words(_shard_state(shard))}; choose another --out", path=out)
        return True
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} is not empty and is not a synthetic build folder; choose another --out", path=out)
    return False


def config_differences(before: object, config: SynthConfig) -> str:
    """'seed 0 here, 1 now; ids 4 here, 8 now' for a build folder's recorded config and this one."""
    if not isinstance(before, dict):
        return "its build state records no config"
    now = config.to_dict()
    keys = [k for k in now if k != "name" and json.dumps(before.get(k)) != json.dumps(now[k])]
    if not keys:
        return "its settings hash differently (built by another version)"
    return "; ".join(f"{k} {before.get(k)!r} there, {now[k]!r} now" for k in keys[:4]) + \
        (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")


def _shard_state(shard: Shard | None) -> list[int] | None:
    return None if shard is None else [shard.index, shard.count]


def _shard_words(state: object) -> str:
    return f"shard {state[0]}/{state[1]}" if isinstance(state, list) and len(state) == 2 else "the whole set"


def start_build_state(out: Path, config: SynthConfig, generator_version: str, shard: Shard | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"fingerprint": config.fingerprint(), "generator_version": generator_version,
             "model": config.model, "config": config.to_dict()}
    if shard is not None:
        state["shard"] = _shard_state(shard)
    SynthSet(out).write_state(state)


def check_build_space(config: SynthConfig, out: str | Path, images: int | None = None) -> None:
    """Refuse a build whose `images` (default all) new images would not fit on `out`'s disk."""
    check_free_space(out, config.estimated_bytes(images),
                     f"synthetic set {config.name!r} ({images if images is not None else config.num_images:,} "
                     f"{config.image_format} images)")


def build_dataset(config: SynthConfig, out: str | Path, generator: FaceGenerator | None = None,
                  progress: Callable[[int, int], None] | None = None, batch_size: int = 256,
                  write_threads: int = 2, stop: Callable[[], bool] | None = None,
                  workspace: str | Path | None = None,
                  check_progress: Callable[[int, int], None] | None = None, shard: Shard | None = None) -> BuildReport:
    """Render a synthetic set to `out` (images, manifest and card: `synface.data.synth_set`).

    Resumable: re-running with the same config renders only missing images and those that do not
    decode (`whole_image`); another config or seed in the same folder is refused, naming what differs. The manifest and the
    card are written last, atomically; the card's presence marks a complete set. The set's face
    model (`config.model`, from `workspace`'s models) renders it: `generator` when it renders that
    model, else a new generator on its device. A learned model's card gets a "privacy" section
    (`check_progress` follows its source-distance checks when they run after the images).
    `shard` builds that slice of the identities only, seeded as in the whole set, and marks the
    folder finished with a shard card instead (`synface.data.shards` merges shards into the set).
    """
    out = Path(out)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size!r}")
    identities = range(config.ids) if shard is None else shard.identities(config.ids)
    gen = generator_for(config.model, generator, workspace=workspace)
    resumed = check_build_state(out, config, gen.version, shard)
    spec = SyntheticSpec(config, gen)
    check_key = {"fingerprint": config.fingerprint(), "generator_version": gen.version}
    if spec.check is not None:
        spec.check.load(out / CHECK_FILE, check_key)
    if spec.check is not None:  # each new identity costs a descriptor check: report progress often
        batch_size = min(batch_size, 8 * config.samples)
    fmt = config.image_format
    total = len(identities) * config.samples
    t0 = time.perf_counter()
    todo: list[tuple[int, Sequence[int]]] = []
    present = 0
    if not out.is_dir():
        check_build_space(config, out, total)  # a new set: refused before even the list of work is made
    present_paths = [out / image_relpath(i, k, fmt) for i in identities for k in range(config.samples)]
    whole = [False] * len(present_paths)
    if resumed:  # every image already there must decode, or it is rendered again
        with ThreadPoolExecutor(max_workers=max(2, write_threads)) as pool:  # PIL decodes outside the GIL
            whole = list(pool.map(lambda p: p.is_file() and whole_image(p, fmt), present_paths))
    damaged = 0
    for n, i in enumerate(identities):
        ok = whole[n * config.samples:(n + 1) * config.samples]
        missing: Sequence[int] = [k for k in range(config.samples) if not ok[k]]
        damaged += sum(present_paths[n * config.samples + k].exists() for k in missing)
        present += config.samples - len(missing)
        if missing:
            todo.append((i, missing))
    check_build_space(config, out, total - present)  # before anything is written
    if not resumed:
        start_build_state(out, config, gen.version, shard)
    sweep_temp_files(out)
    done = present
    rendered = 0
    if progress:
        progress(done, total)
    with ThreadPoolExecutor(max_workers=max(1, write_threads)) as pool:
        pending: list[Future] = []
        for chunk in _chunks(todo, batch_size):
            if stop and stop():
                break
            coeffs_list: list[FaceCoeffs] = []
            keys: list[tuple[int, int]] = []
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
            if spec.check is not None:
                spec.check.save(out / CHECK_FILE, check_key)
            if progress:
                progress(done, total)
        for f in pending:
            f.result()
    complete = done >= total and not (stop and stop())
    if complete:
        SynthSet(out).write_manifest(manifest_frame(config, spec, identities))
    privacy = None
    if complete and config.model != BUILTIN:
        privacy = privacy_section(config, out, spec, check_key, check_progress, stop, identities)
        complete = privacy is not None
    seconds = time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in out.glob(f"*/*.{fmt}"))
    report = BuildReport(str(out), config.name, len(identities), total, rendered, present, round(seconds, 2),
                         round(rendered / seconds, 1) if seconds > 0 else 0.0, disk, resumed,
                         extra={"damaged_rerendered": damaged} if damaged else {})
    if complete:
        card = {
            "name": config.name,
            "kind": "synthetic",
            "config": config.to_dict(),
            "num_identities": config.ids,
            "num_images": total,
            "generator_version": gen.version,
            "model": config.model,
            "model_version": gen.version,
            "layout": gen.layout.sizes(),
            "seed": config.seed,
            "seed_scheme": "identity_seed = 2*(seed*2**32 + i) (+1 for benchmarks); attributes from sha256 streams",
            "created": utc_now(),
            "build": asdict(report),
        }
        if privacy is not None:
            card["privacy"] = privacy
        if shard is None:
            SynthSet(out).write_card(card)
        else:
            SynthSet(out).write_shard_card({**card, "num_identities": config.ids, "num_images": config.num_images,
                                            "shard": shard.to_dict(config.ids), "shard_images": total,
                                            "device": gen.device.type})
    return report


def privacy_section(config: SynthConfig, out: Path, spec: SyntheticSpec, key: dict,
             progress: Callable[[int, int], None] | None, stop: Callable[[], bool] | None,
             identities: range) -> dict | None:
    """The card's privacy section: every identity's distance when the build checked them while
    drawing, else the first PRIVACY_SAMPLE identities' (checked now, resumably); of a shard, those
    among its `identities` (a merge joins the shards' checks). None if stopped."""
    if spec.check is not None:
        for i in identities:  # a resumed build may not have drawn every identity
            spec.identity(i)
        spec.check.save(out / CHECK_FILE, key)
        return privacy_summary(spec.check, list(identities), config.ids, all_checked=True)
    check = SourceCheck(spec.gen)
    check.load(out / CHECK_FILE, key)
    ids = [i for i in identities if i < PRIVACY_SAMPLE]
    tick = progress or (lambda done, total: None)
    tick(0, len(ids))
    for n, i in enumerate(ids):
        if stop and stop():
            check.save(out / CHECK_FILE, key)
            return None
        check.choose(i, spec.first_seed(i), spec.draw)
        if n % 8 == 7 or n == len(ids) - 1:
            check.save(out / CHECK_FILE, key)
            tick(n + 1, len(ids))
    return privacy_summary(check, ids, config.ids, all_checked=False)


def _chunks(todo: list[tuple[int, Sequence[int]]], batch_size: int) -> Iterable[list[tuple[int, Sequence[int]]]]:
    chunk: list[tuple[int, Sequence[int]]] = []
    count = 0
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


def manifest_frame(config: SynthConfig, spec: SyntheticSpec, identities: Iterable[int] | None = None):
    """The manifest as a pandas DataFrame: path, label, partner, phi and every coefficient, of
    `identities` (default all, in order)."""
    import pandas as pd  # noqa: PLC0415

    columns = spec.gen.layout.column_names()
    frames = []
    for i in (range(config.ids) if identities is None else identities):
        coeffs, labels = spec.identity_batch(i)
        flat = coeffs.to_flat()
        frame = pd.DataFrame(flat, columns=columns)
        frame.insert(0, "phi", labels.phi)
        frame.insert(0, "partner", labels.partner)
        frame.insert(0, "label", labels.label)
        frame.insert(0, "path", [image_relpath(i, k, config.image_format) for k in range(config.samples)])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# On the fly
# ---------------------------------------------------------------------------------------------
class OnTheFlyDataset(torch.utils.data.Dataset):
    """Renders images during training without touching disk; index = identity * samples + k.

    `get_batch` renders many at once (what a training loop should call); `__getitem__` renders one.
    The pixels equal the on-disk build's before JPEG compression (PNG builds match exactly).
    """

    def __init__(self, config: SynthConfig, generator: FaceGenerator | None = None,
                 workspace: str | Path | None = None) -> None:
        self.config = config
        self.gen = generator_for(config.model, generator, workspace=workspace)
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
        coeffs_list: list[FaceCoeffs] = []
        keys: list[tuple[int, int]] = []
        labels_list = []
        for i, ks in by_identity.items():
            coeffs, labels = self.spec.identity_batch(i, ks)
            coeffs_list.append(coeffs)
            labels_list.append(labels)
            keys.extend((i, k) for k in ks)
        images = self.gen.render(FaceCoeffs.cat(coeffs_list)).images.cpu()
        label = np.concatenate([part.label for part in labels_list])
        partner = np.concatenate([part.partner for part in labels_list])
        phi = np.concatenate([part.phi for part in labels_list])
        position = {key: j for j, key in enumerate(keys)}
        perm = torch.tensor([position[key] for key in order])
        lab = torch.from_numpy(np.stack([label, partner], 1))[perm]
        wts = torch.from_numpy(np.stack([phi, 1 - phi], 1).astype(np.float32))[perm]
        wts[lab[:, 1] < 0, 1] = 0.0
        return {"images": images[perm], "labels": lab, "weights": wts}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.get_batch([index])
        return {k: v[0] for k, v in batch.items()}
