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

from synface.base.files import check_free_space, utc_now
from synface.data.errors import DataError
from synface.data.imageio import image_problem, write_image
from synface.data.synth_config import (  # noqa: F401  (the config half of this module's API lives there)
    ATTRIBUTES, DEFAULT_PHI_GRID, MAX_SEED, Shard, SynthConfig, default_name, identity_seed, stream_seed,
)
from synface.data.synth_model import (
    BUILTIN, CHECK_FILE, PRIVACY_SAMPLE, SourceCheck, generator_for, privacy_summary,
)
from synface.data.synth_context import CONTEXT_CHECK_FILE
from synface.data.synth_set import SynthSet
from synface.data.synth_spec import SampleLabels, SyntheticSpec, source_sharing  # noqa: F401  (part of this module's API)
from synface.face.coeffs import FaceCoeffs
from synface.generator import FaceGenerator


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
    if spec.context is not None:
        spec.context.load(out / CONTEXT_CHECK_FILE, check_key)
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
            keys = [(i, k) for i, ks in chunk for k in ks]
            for i, _ in chunk:
                (out / f"{i:05d}").mkdir(exist_ok=True)
            if spec.context is not None:
                images = spec.context.render_checked(spec, chunk)
                spec.context.save(out / CONTEXT_CHECK_FILE, check_key)
            else:
                images = gen.render(FaceCoeffs.cat([spec.identity_batch(i, ks)[0] for i, ks in chunk])).images.cpu().numpy()
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
    manifest = manifest_frame(config, spec, identities) if complete else None
    if complete:
        SynthSet(out).write_manifest(manifest)
    privacy = None
    if complete and config.model != BUILTIN:
        privacy = privacy_section(config, out, spec, check_key, check_progress, stop, identities)
        complete = privacy is not None
    seconds = time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in out.glob(f"*/*.{fmt}"))
    report = BuildReport(str(out), config.name, len(identities), total, rendered, present, round(seconds, 2),
                         round(rendered / seconds, 1) if seconds > 0 else 0.0, disk, resumed,
                         extra={"damaged_rerendered": damaged} if damaged else {})
    keep_card = (complete and rendered == 0 and shard is None  # a card that reads, of this very set
                 and SynthSet(out).card_or_empty().get("config") == config.to_dict())
    if keep_card:  # nothing changed: the card (its build time, its match sample) stays as the build wrote it
        complete = True
    elif complete:
        card = {
            "name": config.name,
            "kind": "synthetic",
            "config": config.to_dict(),
            "num_identities": config.ids,
            "num_images": total,
            "generator_version": gen.version,
            "model": config.model,
            "model_version": gen.model.version,
            "layout": gen.layout.sizes(),
            "seed": config.seed,
            "seed_scheme": "identity_seed = 2*(seed*2**32 + i) (+1 for benchmarks); attributes from sha256 streams",
            "created": utc_now(),
            "build": asdict(report),
        }
        if privacy is not None:
            card["privacy"] = privacy
        sources = source_sharing(spec) if shard is None else None
        if sources is not None:
            card["sources"] = sources
        if spec.context is not None and manifest is not None:
            yardstick = getattr(gen.model, "card", {}).get("stranger_nearest_p01")
            card["context"] = spec.context.summary(yardstick, manifest["context"].to_numpy(),
                                                   manifest["label"].to_numpy())
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
        check.choose(i, spec.first_seed(i), spec.draws_of(i))
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
        if labels.context is not None:
            frame.insert(0, "context", labels.context)
        frame.insert(0, "phi", labels.phi)
        frame.insert(0, "partner", labels.partner)
        frame.insert(0, "label", labels.label)
        frame.insert(0, "path", [image_relpath(i, k, config.image_format) for k in range(config.samples)])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


from synface.data.synth_onthefly import OnTheFlyDataset  # noqa: E402,F401  (part of this module's API)
