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

A photo whose 68 landmarks are not found, or that does not read, is left out of all three
(counted). Files are written atomically and skipped when all three exist, so a killed run resumes
where it stopped; `sets.json` records the photos, folds and seed, and a resume with others is
refused (one folder never mixes two draws).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

#: the folders written, one per variant (bench selfswap's names)
SET_VARIANTS = ("original", "self_composite", "self_plain")
#: photos handed to a worker at a time
_CHUNK = 4

_STATE: dict[str, Any] = {}  # per process: the built-in head and its fitting tables


def _safe_part(name: str, what: str) -> str:
    """A folder or file name that stays inside its folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"{what} {name!r} is not a plain file name")
    return name


def _targets(out: Path, person: str, photo: Path) -> list[Path]:
    stem = _safe_part(photo.stem, "photo name")
    return [out / variant / _safe_part(person, "person folder") / f"{stem}.jpg" for variant in SET_VARIANTS]


#: the file in OUT that says which photos, folds and seed its folders hold
SETS_FILE = "sets.json"


def _init_state() -> None:
    """The built-in head and its fitting tables, once per process; a spawned worker also keeps
    torch to one thread (the workers are the parallelism; numba's count comes from the
    environment the parent set before spawning)."""
    import torch  # noqa: PLC0415

    from synface.fitting.landmarks import calibrate_landmark_vertices  # noqa: PLC0415
    from synface.fitting.unwrap import texel_geometry  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    if multiprocessing.current_process().name != "MainProcess":
        torch.set_num_threads(1)
    builtin = FaceGenerator(device="cpu")
    _STATE["builtin"] = builtin
    _STATE["landmark_ids"], _ = calibrate_landmark_vertices(builtin)
    _STATE["geo"] = texel_geometry(builtin)


def _grain_seed(seed: int, person: str, photo: Path) -> int:
    """The camera grain's seed of one photo: from its name, so adding or removing other photos
    changes no other photo's pixels."""
    digest = hashlib.sha256(f"{seed}/{person}/{photo.name}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _redraw(job: tuple[str, str, str, int]) -> str:
    """Fit one photo and write its three images: 'written', 'no_face' or 'unreadable'."""
    from synface.bench.selfswap import self_images  # noqa: PLC0415
    from synface.data.context_match import jpeg_quality  # noqa: PLC0415
    from synface.data.errors import DataError  # noqa: PLC0415
    from synface.data.imageio import read_rgb, write_image  # noqa: PLC0415
    from synface.fitting.landmarks import photo_landmarks  # noqa: PLC0415
    from synface.fitting.reconstruct import fit_photo  # noqa: PLC0415

    path_text, out_text, person, seed = job
    path, out = Path(path_text), Path(out_text)
    if not _STATE:
        _init_state()
    try:
        data = path.read_bytes()
        image = np.asarray(read_rgb(path, what="photo"))
    except (OSError, DataError):
        return "unreadable"
    points = photo_landmarks(image)
    if points is None:
        return "no_face"
    builtin = _STATE["builtin"]
    fit = fit_photo(builtin, image, points + 0.5, _STATE["landmark_ids"], _STATE["geo"], warp=False)
    images = self_images(builtin, fit, image, jpeg_quality(data), _grain_seed(seed, person, path))
    for variant, target in zip(SET_VARIANTS, _targets(out, person, path)):
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, images[variant], "JPEG", quality=95)
    return "written"


def _check_sets_file(out: Path, recipe: dict[str, Any]) -> None:
    """Refuse to add to folders drawn from other photos, folds or seed; record the recipe of new ones."""
    from synface.base.files import atomic_path, read_json  # noqa: PLC0415

    path = out / SETS_FILE
    if path.exists():
        before = read_json(path)
        if not isinstance(before, dict) or before.get("recipe") != recipe:
            raise ValueError(f"{out}: holds self-redrawn sets of other photos, folds or seed ({path.name}); "
                             "choose another --write-sets")
        return
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{out}: not empty and holds no {SETS_FILE}; choose another --write-sets")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"kind": "selfswap-sets", "recipe": recipe}, indent=1))


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
    seen: dict[tuple[str, str], Path] = {}
    for person, path in photoset.files:
        key = (photoset.people[person], path.stem)
        if key in seen:
            raise ValueError(f"{path} and {seen[key].name}: two photos of one name would write one file; rename one")
        seen[key] = path
    _check_sets_file(out, {"photos": str(Path(photos).resolve()), "folds": folds, "seed": seed,
                           "files": photoset.digest()})
    jobs: list[tuple[str, str, str, int]] = []
    present = 0
    for person, path in photoset.files:
        name = photoset.people[person]
        if all(t.is_file() for t in _targets(out, name, path)):
            present += 1
        else:
            jobs.append((str(path), str(out), name, seed))
    total = len(photoset.files)
    tick = progress or (lambda done, total: None)
    tick(present, total)
    counts = {"written": 0, "no_face": 0, "unreadable": 0}
    count = max(1, min(workers or os.cpu_count() or 1, len(jobs) // _CHUNK or 1))

    def tally(results: Iterable[str]) -> None:
        for outcome in results:
            counts[outcome] += 1
            tick(present + sum(counts.values()), total)

    if count == 1:
        tally(map(_redraw, jobs))
    else:  # spawned, not forked (a fork after torch's threads started can hang), one numba thread each
        previous = os.environ.get("NUMBA_NUM_THREADS")
        os.environ["NUMBA_NUM_THREADS"] = "1"
        try:
            with multiprocessing.get_context("spawn").Pool(count) as pool:
                tally(pool.imap_unordered(_redraw, jobs, chunksize=_CHUNK))
                pool.close()
                pool.join()
        finally:
            if previous is None:
                os.environ.pop("NUMBA_NUM_THREADS", None)
            else:
                os.environ["NUMBA_NUM_THREADS"] = previous
    return {"bench": "selfswap-sets", "photos": total, "people": len(photoset.people), "written_now": counts["written"],
            "present_before": present, "no_face_found": counts["no_face"], "unreadable": counts["unreadable"],
            "folds": folds, "seed": seed,
            "folders": {v: str(out / v) for v in SET_VARIANTS},
            "use": "train on a folder with `train --preset cpu-quick --set real_root=<folder>` (the same recipe as "
                   "a real set), beside the photos themselves"}
