"""`bench selfswap --write-sets OUT`: every photo of a set redrawn from its own fit, written as
training folders, so a recogniser can learn from them in place of the photos.

Why: recognisers learn less from synthetic faces than from real photos, and two causes are
mixed in that gap: what fitting and rendering lose of a face, and the synthetic identity space
(people who do not exist, mosaics of real ones). Training on each real photo's own fitted face, at
the same people, photos and counts, isolates the first. Three folders of `<person>/<photo>.jpg`
with the same files in each:

- `original`: the photo itself, in the fit's crop (the renders' framing, so framing is no cause);
- `self_composite`: the fitted face drawn into the same photo and matched to its camera, as
  context composites are (`bench selfswap`'s `self_composite`);
- `self_plain`: the fitted face rendered on the procedural background.

A photo whose 68 landmarks are not found is left out of all three (counted). Files are written
atomically and skipped when all three exist, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

#: the folders written, one per variant (bench selfswap's names)
SET_VARIANTS = ("original", "self_composite", "self_plain")
#: photos handed to a worker at a time
_CHUNK = 4

_STATE: dict[str, Any] = {}


def _safe_part(name: str, what: str) -> str:
    """A folder or file name that stays inside its folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"{what} {name!r} is not a plain file name")
    return name


def _targets(out: Path, person: str, photo: Path) -> list[Path]:
    stem = _safe_part(photo.stem, "photo name")
    return [out / variant / _safe_part(person, "person folder") / f"{stem}.jpg" for variant in SET_VARIANTS]


def _init_worker() -> None:
    """Per worker process: one thread for torch and numba (the workers are the parallelism), the
    built-in head and its fitting tables."""
    import torch  # noqa: PLC0415

    from synface.fitting.landmarks import calibrate_landmark_vertices  # noqa: PLC0415
    from synface.fitting.unwrap import texel_geometry  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    torch.set_num_threads(1)
    builtin = FaceGenerator(device="cpu")
    _STATE["builtin"] = builtin
    _STATE["landmark_ids"], _ = calibrate_landmark_vertices(builtin)
    _STATE["geo"] = texel_geometry(builtin)


def _redraw(job: tuple[int, str, str, str, int]) -> bool:
    """Fit one photo and write its three images; False when no face was found."""
    from synface.bench.selfswap import _self_images  # noqa: PLC0415
    from synface.data.context_match import jpeg_quality  # noqa: PLC0415
    from synface.data.imageio import read_rgb, write_image  # noqa: PLC0415
    from synface.fitting.landmarks import photo_landmarks  # noqa: PLC0415
    from synface.fitting.reconstruct import fit_photo  # noqa: PLC0415

    index, path_text, out_text, person, seed = job
    path, out = Path(path_text), Path(out_text)
    if not _STATE:
        _init_worker()
    image = np.asarray(read_rgb(path, what="photo"))
    points = photo_landmarks(image)
    if points is None:
        return False
    builtin = _STATE["builtin"]
    fit = fit_photo(builtin, image, points + 0.5, _STATE["landmark_ids"], _STATE["geo"], warp=False)
    images = _self_images(builtin, fit, image, jpeg_quality(path.read_bytes()), seed * 1_000_003 + index)
    for variant, target in zip(SET_VARIANTS, _targets(out, person, path)):
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, images[variant], "JPEG", quality=95)
    return True


def write_self_sets(photos: str | Path, out: str | Path, folds: list[int] | None = None, workers: int | None = None,
                    seed: int = 0, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the three folders for every photo under `photos` (an LFW copy's `folds`, or
    `<person>/<photo>` folders) into `out`; returns counts and the folders."""
    from synface.fitting.photos import find_photos  # noqa: PLC0415

    if seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {seed}")
    photoset = find_photos(photos, folds=folds)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: is a file, not a folder; choose another --write-sets")
    jobs: list[tuple[int, str, str, str, int]] = []
    present = 0
    for index, (person, path) in enumerate(photoset.files):
        name = photoset.people[person]
        if all(t.is_file() for t in _targets(out, name, path)):
            present += 1
        else:
            jobs.append((index, str(path), str(out), name, seed))
    total = len(photoset.files)
    tick = progress or (lambda done, total: None)
    tick(present, total)
    written = missed = 0
    count = max(1, min(workers or os.cpu_count() or 1, len(jobs) // _CHUNK or 1))
    results: Iterable[bool]
    if count == 1:
        results = map(_redraw, jobs)
        pool = None
    else:  # spawned, not forked: a fork after torch's threads started can hang
        pool = multiprocessing.get_context("spawn").Pool(count, initializer=_init_worker)
        results = pool.imap_unordered(_redraw, jobs, chunksize=_CHUNK)
    try:
        for ok in results:
            written += ok
            missed += not ok
            tick(present + written + missed, total)
    finally:
        if pool is not None:
            pool.terminate()
    return {"bench": "selfswap-sets", "photos": total, "people": len(photoset.people), "written_now": written,
            "present_before": present, "no_face_found": missed, "folds": folds, "seed": seed,
            "folders": {v: str(out / v) for v in SET_VARIANTS},
            "use": "train on a folder with `train --preset cpu-quick --set real_root=<folder>` (the same recipe as "
                   "a real set), beside the photos themselves"}
