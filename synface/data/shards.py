"""A synthetic set built in pieces: shards (`generate --shard K/N`), their merge (`generate --merge`),
and local worker processes (`generate --workers W`), which are shards built side by side and merged.

Why it works: every image of a set is a pure function of (config, identity, sample), so a shard
(a contiguous identity range, `synface.data.synth_config.Shard`) renders exactly the images the
whole set has for those identities, and its manifest holds exactly those rows. Merging checks that
the shards come from one config and face-model version and that their ranges cover every identity
once, then links (or copies) their images into one folder, joins their manifests in identity order
and writes the set's card, so the merged set is the set one process would have built.

A merge resumes: images already in place are kept, the manifest and card are written last.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from synface.base.files import atomic_path, utc_now
from synface.data.errors import DataError
from synface.data.synth_config import Shard, SynthConfig
from synface.data.synth_model import BUILTIN, CHECK_FILE, generator_for
from synface.data.synth_set import SynthSet
from synface.data.synthetic import (
    BuildReport, SyntheticSpec, build_dataset, check_build_state, config_differences, image_relpath, privacy_section,
    source_sharing,
    start_build_state,
)

__all__ = ["ShardEntry", "read_shards", "merge_shards", "build_with_workers", "worker_folders"]

Progress = Callable[[int, int], None]
#: what identifies the set a shard belongs to, beside its config: the face model's version, and the
#: kind of device that rendered it (the same seed gives the same pixels on the same kind of device)
SET_KEYS = ("generator_version", "model", "device")


class ShardEntry:
    """One finished shard folder: its card, and the identities it holds."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.card = SynthSet(folder).shard_card()
        try:
            self.config = SynthConfig.from_dict(self.card["config"])
            shard = self.card["shard"]
            self.shard = Shard(int(shard["index"]), int(shard["count"]))
            self.span = range(int(shard["first_identity"]), int(shard["end_identity"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"malformed shard card ({type(exc).__name__}: {exc})",
                            path=SynthSet(folder).shard_card_path) from None
        if self.span != self.shard.identities(self.config.ids):
            raise DataError(f"the shard card's identities {self.describe_span()} are not those of shard "
                            f"{self.shard.label} of {self.config.ids}", path=SynthSet(folder).shard_card_path)

    def describe_span(self) -> str:
        return f"{self.span.start}-{self.span.stop - 1}"

    def describe(self) -> str:
        return f"{self.folder} (shard {self.shard.label}, identities {self.describe_span()})"


def read_shards(folders: Sequence[str | Path]) -> tuple[SynthConfig, list[ShardEntry]]:
    """The config the shards share and the shards in identity order; a DataError naming the shard
    and the key of a different config, the folders of overlapping shards, or the missing ones."""
    if not folders:
        raise DataError("--merge needs the shard folders to join")
    entries = [ShardEntry(Path(f)) for f in folders]
    first = entries[0]
    for other in entries[1:]:
        now, then = other.config.to_dict(), first.config.to_dict()  # both read through SynthConfig: keys added
        keys = [k for k in now if json.dumps(now[k]) != json.dumps(then.get(k))]  # since get their defaults
        keys += [k for k in SET_KEYS if other.card.get(k) != first.card.get(k)]
        if keys:
            key = keys[0]
            there = now.get(key, other.card.get(key))
            here = then.get(key, first.card.get(key))
            raise DataError(f"shards of different sets: {key!r} is {there!r} in {other.folder} but {here!r} in "
                            f"{first.folder}; merge the shards of one config", path=other.folder)
    entries.sort(key=lambda e: (e.span.start, e.span.stop))
    ids = first.config.ids
    counts = {e.shard.count for e in entries}
    expected = 0
    for before, entry in zip([None, *entries[:-1]], entries):
        if entry.span.start < expected and before is not None:
            same = " (the same shard twice)" if before.shard == entry.shard else ""
            raise DataError(f"overlapping shards{same}: {entry.describe()} and {before.describe()}")
        if entry.span.start > expected:
            raise DataError(f"missing shard: {_missing(expected, entry.span.start, ids, counts)}")
        expected = entry.span.stop
    if expected < ids:
        raise DataError(f"missing shard: {_missing(expected, ids, ids, counts)}")
    return first.config, entries


def _missing(start: int, stop: int, ids: int, counts: set[int]) -> str:
    """'shard 3/4 (identities 50-74)' when every shard shares one N, else the identity range."""
    if len(counts) == 1:
        count = next(iter(counts))
        lost = [k for k in range(1, count + 1) if Shard(k, count).identities(ids).start >= start
                and Shard(k, count).identities(ids).stop <= stop]
        if lost:
            return ", ".join(f"{k}/{count}" for k in lost) + f" (identities {start}-{stop - 1} are in no folder given)"
    return f"identities {start}-{stop - 1} are in no folder given"


def _place(src: Path, dst: Path) -> None:
    """`dst` becomes `src`'s file: a hard link when both sit on one file system (no copy, no space),
    else an atomic copy. A file already there of the same size stays (a resumed merge)."""
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    try:
        tmp = dst.with_name(f".{dst.name}.link.tmp")
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        with atomic_path(dst) as tmp_copy:
            shutil.copyfile(src, tmp_copy)


def _join_checks(entries: list[ShardEntry], out: Path) -> None:
    """The shards' source-distance checks as one file (learned face models): the merge's privacy
    section then needs no new check."""
    merged: dict[str, Any] | None = None
    for entry in entries:
        path = entry.folder / CHECK_FILE
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            accepted = dict(data["accepted"])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DataError(f"unreadable source-distance check ({type(exc).__name__}); resume the shard", path=path) from None
        if merged is None:
            merged = {**data, "accepted": {}}
        merged["accepted"].update(accepted)
    if merged is not None:
        with atomic_path(out / CHECK_FILE) as tmp:
            tmp.write_text(json.dumps(merged))


def _merged_context(entries: list[ShardEntry], out: Path, spec: Any, key: dict[str, Any], manifest: Any) -> dict:
    """The whole set's context section: the shards' accepted context draws joined into one check
    file, the summary over every image (photos used, shared context people, distances), the
    photos the shards found missing (summed from their cards), and each shard's camera-matching
    sample as it was (a median of medians would say nothing)."""
    import numpy as np  # noqa: PLC0415

    from synface.data.synth_context import CONTEXT_CHECK_FILE  # noqa: PLC0415

    for entry in entries:  # each shard's draws, validated whole (ContextSpec.load) or refused by name
        if not spec.context.load(entry.folder / CONTEXT_CHECK_FILE, key):
            raise DataError("missing or unreadable context draws of this shard; resume the shard",
                            path=entry.folder / CONTEXT_CHECK_FILE)
    spec.context.save(out / CONTEXT_CHECK_FILE, key, force=True)
    rows = manifest["context"].to_numpy() if "context" in manifest.columns else None
    if rows is None or rows.dtype.kind not in "iu" or (len(rows) and (rows.min() < 0 or rows.max() >= len(spec.context.pool))):
        raise DataError(f"the shards' manifests need an integer context column within the pool's "
                        f"{len(spec.context.pool)} photos; rebuild the shards", path=SynthSet(out).manifest_path)
    yardstick = getattr(spec.gen.model, "card", {}).get("stranger_nearest_p01")
    section = spec.context.summary(yardstick, rows, manifest["label"].to_numpy())
    shard_sections: list[dict[str, Any]] = []
    for entry in entries:
        context = entry.card.get("context")
        shard_sections.append(context if isinstance(context, dict) else {})
    missing = sorted({str(p) for s in shard_sections for p in (s.get("photos_missing") or []) if isinstance(p, str)})
    counts = [s.get("photos_missing_count") for s in shard_sections]
    section["photos_missing"] = missing[:50]
    section["photos_missing_count"] = int(np.sum([c for c in counts if isinstance(c, int) and c >= 0]))
    section["camera_match_sample_by_shard"] = [s.get("camera_match_sample") for s in shard_sections]
    return section


def merge_shards(folders: Sequence[str | Path], out: str | Path, workspace: str | Path | None = None,
                 progress: Progress | None = None) -> BuildReport:
    """Join finished shard folders into the whole set at `out` (see the module); resumable."""
    t0 = time.perf_counter()
    config, entries = read_shards(folders)
    out = Path(out)
    for entry in entries:
        if entry.folder.resolve() == out.resolve():
            raise DataError(f"--out {out} is one of the shards; merge into another folder", path=out)
    version = entries[0].card["generator_version"]
    resumed = check_build_state(out, config, version)
    if not resumed:
        start_build_state(out, config, version)
    total, done = config.num_images, 0
    fmt = config.image_format
    for entry in entries:
        for i in entry.span:
            (out / f"{i:05d}").mkdir(exist_ok=True)
            for k in range(config.samples):
                rel = image_relpath(i, k, fmt)
                _place(entry.folder / rel, out / rel)
            done += config.samples
            if progress and (i % 16 == 15 or done == total):
                progress(done, total)
    frames = []
    for entry in entries:
        frame = SynthSet(entry.folder).read_manifest(("path", "label"))
        labels = frame["label"].to_numpy()
        if len(frame) != len(entry.span) * config.samples or labels.min() != entry.span.start \
                or labels.max() != entry.span.stop - 1:
            raise DataError(f"the manifest does not hold the rows of identities {entry.describe_span()}; "
                            "rebuild the shard", path=SynthSet(entry.folder).manifest_path)
        frames.append(frame)
    import pandas as pd  # noqa: PLC0415

    manifest = pd.concat(frames, ignore_index=True)
    SynthSet(out).write_manifest(manifest)
    privacy = context = None
    spec: SyntheticSpec | None = None
    if config.model != BUILTIN:
        _join_checks(entries, out)
        gen = generator_for(config.model, device="cpu", workspace=workspace)
        if gen.version != version:
            raise DataError(f"the shards were rendered by generator {version!r} (face model {config.model!r} and the "
                            f"renderer's revision), the workspace's is {gen.version!r}; their privacy section cannot "
                            "be checked", path=out)
        spec = SyntheticSpec(config, gen)
        key = {"fingerprint": config.fingerprint(), "generator_version": version}
        if spec.check is not None:
            spec.check.load(out / CHECK_FILE, key)
        privacy = privacy_section(config, out, spec, key, None, None, range(config.ids))
        if spec.context is not None:
            context = _merged_context(entries, out, spec, key, manifest)
    builds = [e.card.get("build") or {} for e in entries]
    seconds = sum(float(b.get("seconds") or 0) for b in builds)
    rendered = sum(int(b.get("rendered") or 0) for b in builds)
    report = BuildReport(
        str(out), config.name, config.ids, total, rendered, sum(int(b.get("already_present") or 0) for b in builds),
        round(seconds, 2), round(rendered / seconds, 1) if seconds > 0 else 0.0,
        sum(p.stat().st_size for p in out.glob(f"*/*.{fmt}")), resumed,
        extra={"merged_shards": len(entries), "merge_seconds": round(time.perf_counter() - t0, 2)})
    card = {k: v for k, v in entries[0].card.items()
            if k not in ("shard", "shard_images", "build", "privacy", "device", "context", "sources")}
    if context is not None:
        card["context"] = context
    card.update(num_identities=config.ids, num_images=total, created=utc_now(), build=asdict(report),
                shards=[{"folder": str(e.folder), **e.card["shard"], "build": e.card.get("build")} for e in entries])
    if privacy is not None:
        card["privacy"] = privacy
    if spec is not None and (sources := source_sharing(spec)) is not None:
        card["sources"] = sources
    SynthSet(out).write_card(card)
    return report


# ----------------------------------------------------------------------------- local workers


def worker_folders(out: Path, workers: int) -> list[Path]:
    """Where `--workers W` builds its shards: beside `out` (hidden), one folder per shard."""
    base = out.parent / f".{out.name}.shards"
    return [base / f"{k}-of-{workers}" for k in range(1, workers + 1)]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ while the block runs (what spawned workers inherit)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _shard_worker(config: dict, folder: str, index: int, count: int, device: str, batch_size: int,
                  workspace: str | None, done: Any, errors: Any, threads: int) -> None:
    """One worker process: build shard index/count into `folder`, counting images in `done`."""
    import torch  # noqa: PLC0415

    from synface.base.processes import default_signals  # noqa: PLC0415

    default_signals()
    torch.set_num_threads(threads)

    def tick(n: int, _total: int) -> None:
        done.value = n

    try:
        build_dataset(SynthConfig.from_dict(config), folder, None, progress=tick, batch_size=batch_size,
                      workspace=workspace, shard=Shard(index, count), write_threads=1)
    except Exception as exc:  # noqa: BLE001 - reported by the parent as one line
        errors.put(f"shard {index}/{count}: {exc}")
        raise SystemExit(1) from None


def _check_out(config: SynthConfig, out: Path) -> None:
    """Refuse, before any worker starts, a folder holding something other than this set."""
    state = SynthSet(out).read_state() if out.is_dir() else None
    if state is None:
        if out.is_dir() and any(out.iterdir()):
            raise DataError(f"{out} is not empty and is not a synthetic build folder; choose another --out", path=out)
        return
    if state.get("fingerprint") != config.fingerprint() or state.get("shard") is not None:
        raise DataError(f"{out} holds a different synthetic set: {config_differences(state.get('config'), config)}; "
                        "resume it with the same settings or choose another --out", path=out)


def build_with_workers(config: SynthConfig, out: str | Path, workers: int, device: str = "cpu",
                       batch_size: int = 256, workspace: str | Path | None = None,
                       progress: Progress | None = None, merge_progress: Progress | None = None) -> BuildReport:
    """Build `config` into `out` with `workers` local processes: shard k/W each (threads split
    evenly between them), then the merge; the shard folders go once merged. Resumable like a build."""
    out = Path(out)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataError(f"workers must be a positive integer, got {workers!r}")
    if workers > config.ids:
        raise DataError(f"--workers {workers} is more than the set's {config.ids} identities")
    _check_out(config, out)
    folders = worker_folders(out, workers)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: torch and numba threads are not fork-safe
    counters = [ctx.Value("q", 0) for _ in folders]
    errors = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = []
    with _environment({"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}):
        for k, folder in enumerate(folders, 1):
            if SynthSet(folder).is_shard():
                counters[k - 1].value = len(Shard(k, workers).identities(config.ids)) * config.samples
                continue
            ws = None if workspace is None else str(workspace)
            proc = ctx.Process(target=_shard_worker, daemon=True, args=(
                config.to_dict(), str(folder), k, workers, device, batch_size, ws, counters[k - 1], errors, threads))
            proc.start()
            procs.append(proc)
    try:
        while any(p.is_alive() for p in procs):
            if any(p.exitcode not in (None, 0) for p in procs):
                break
            if progress:
                progress(sum(c.value for c in counters), config.num_images)
            time.sleep(0.25)
        failed = [p for p in procs if p.exitcode not in (None, 0)]
        if failed:
            message = errors.get() if _wait(errors) else f"a worker process failed (exit code {failed[0].exitcode})"
            raise DataError(f"{message} (the other shards stop; re-run the same command to resume)")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    if progress:
        progress(config.num_images, config.num_images)
    report = merge_shards(folders, out, workspace, merge_progress)
    shutil.rmtree(folders[0].parent, ignore_errors=True)
    return report


def _wait(errors: Any) -> bool:
    """Give a failed worker's message a moment to arrive through the queue."""
    deadline = time.time() + 5
    while errors.empty() and time.time() < deadline:
        time.sleep(0.05)
    return not errors.empty()
