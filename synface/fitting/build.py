"""`face-model fit`: photographs -> a learned face model in `<workspace>/face_models/<name>/`.

Stages, each with progress and a cache so a killed fit resumes where it stopped:
1. landmarks: per photo, dlib's face, 68 points and the 128-D descriptor of its aligned crop
   (cached in chunks under `cache/`; photos without a face are counted and listed, never fatal);
2. geometry: pose, shape and expression fitted to the points (cached per chunk);
3. reflectance: per bank person, the photos unwrapped onto the head's texture square with the
   fitted geometry, light divided out; 4. fill: unseen texels filled; then the shape prior, the
   texture file and the model file; 5. framing: where dlib finds the new model's landmarks.

A chunk's cache file is named by the content it was computed from: the photo folder, and each
photo's name, size, modification time and a digest of its bytes (landmarks), plus the built-in
head (geometry). So a refit from other photos under the same names recomputes, and gives what a
fresh fit gives.

One process fits a name at a time (a lock beside the folder, `catalog.hold_name`; a second fit is
refused naming the first one's pid). A fit builds in `face_models/.<name>.fitting/` (its cache
lives there until it finishes, so a killed fit resumes from it) and, once every file is written
and the folder passes the check every reader makes, swaps it in for `face_models/<name>/` with
one rename: a kill at any moment leaves the old model whole or the new one, never a mix of their
card, arrays, source index and no-face list.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from synface.base.files import atomic_path, open_regular, swap_folder, write_json
from synface.fitting.chunk_cache import read_npz, save_npz
from synface.data.errors import DataError
from synface.face.builtin import GENERATOR_MODEL_VERSION
from synface.face.catalog import hold_name, model_folder, staging_folder
from synface.face.learned import check_model_folder, model_arrays, save_model_arrays, save_textures
from synface.face.model_files import (
    CARD_FILE, MAX_BANK_PEOPLE, MODEL_FILE, NO_FACE_FILE, SOURCES_FILE, TEXTURE_FILE, model_version,
)
from synface.fitting.geometry_fit import GeometryFit, fit_geometry
from synface.fitting.landmarks import calibrate_landmark_vertices, landmark_basis, photo_landmarks
from synface.fitting.photos import MIN_PEOPLE, PhotoSet, find_photos
from synface.fitting.bank import fill_bank, region_eligibility, texel_regions, tones, unwrap_people
from synface.fitting.contexts import CONTEXT_FILE, context_stage
from synface.fitting.unwrap import TEXTURE_SIZE, texel_geometry

CHUNK = 128
#: bump when what a cached chunk holds changes: older chunks are then recomputed
CACHE_FORMAT = 2
#: renders per round when a fit measures where dlib finds its model's landmarks
FRAMING_RENDERS = 600
#: the reflectance bank's default size (the albedo coefficients per identity)
DEFAULT_BANK = 400
#: spread kept in shape directions the landmarks do not constrain (prior standard deviations)
SHAPE_FLOOR = 0.35
#: inner-lip gap (fraction of the eye distance) above which a photo's mouth counts as open
OPEN_MOUTH_GAP = 0.06
Progress = Callable[[str, int, int], None]


def mouth_gap(points: np.ndarray) -> float:
    """Mean distance between the inner upper and lower lip (68-point ids 61-63, 67-65) over the
    eye distance: 0 for closed lips."""
    iod = np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
    return float(np.linalg.norm(points[[61, 62, 63]] - points[[67, 66, 65]], axis=1).mean() / max(iod, 1.0))


def photo_digest(path: Path, root: Path) -> str:
    """One photo as a chunk key sees it: its name under the photo folder, size, modification time
    and the SHA-256 of its bytes (an unreadable file: its name and why, so it is retried once it
    changes)."""
    digest = hashlib.sha256()
    try:
        with open_regular(path, follow_links=True) as handle:
            info = os.fstat(handle.fileno())
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        return f"{path.relative_to(root)}\0unreadable\0{exc.errno}"
    return f"{path.relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\0{digest.hexdigest()}"


def _chunk_key(files: list[tuple[int, Path]], root: Path) -> str:
    """The name of a chunk's cache files: a digest of the photo folder and its photos' content."""
    h = hashlib.sha256(f"{CACHE_FORMAT}\0{Path(root).resolve()}\n".encode())
    for _, path in files:
        h.update(photo_digest(path, root).encode() + b"\n")
    return h.hexdigest()[:16]



def _cached(name: str, caches: list[Path]) -> dict[str, np.ndarray] | None:
    """Chunk `name` from the fit's cache, else from the current model's (copied into the fit's, so
    the swapped-in folder keeps every chunk it used)."""
    data = read_npz(caches[0] / name)
    for other in caches[1:]:
        if data is None:
            data = read_npz(other / name)
            if data is not None:
                with atomic_path(caches[0] / name) as tmp:
                    shutil.copy2(other / name, tmp)
    return data


def _landmarks_ok(data: dict[str, np.ndarray] | None, n: int) -> bool:
    """A cached landmark chunk of `n` photos with every array of its shape and finite."""
    want = {"found": (n,), "unreadable": (n,), "points": (n, 68, 2), "descriptors": (n, 128)}
    return data is not None and all(k in data and data[k].shape == shape and data[k].dtype.kind in "bf"
                                    and np.isfinite(data[k]).all() for k, shape in want.items())


def _geometry_ok(data: dict[str, np.ndarray] | None, n: int) -> bool:
    """A cached geometry chunk of `n` fitted photos: every array with n rows, finite."""
    keys = ("error",) if n == 0 else ("pose", "shape", "expr", "A", "t", "error")
    return data is not None and set(data) == set(keys) and all(
        len(data[k]) == n and data[k].dtype.kind == "f" and np.isfinite(data[k]).all() for k in keys)



def _landmark_chunk(files: list[tuple[int, Path]]) -> dict[str, np.ndarray]:
    from synface.data.align import five_from_68, warp_to_template  # noqa: PLC0415
    from synface.data.imageio import read_rgb  # noqa: PLC0415
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415

    n = len(files)
    found = np.zeros(n, bool)
    unreadable = np.zeros(n, bool)
    points = np.zeros((n, 68, 2))
    desc = np.zeros((n, 128), np.float32)
    for i, (_, path) in enumerate(files):
        try:
            image = np.asarray(read_rgb(path, what="photo"))
        except DataError:
            unreadable[i] = True
            continue
        lm = photo_landmarks(image)
        if lm is None:
            continue
        found[i] = True
        points[i] = lm + 0.5  # pixel index -> continuous coordinate of its centre
        desc[i] = aligned_descriptor(warp_to_template(image, five_from_68(lm)))
    return {"found": found, "unreadable": unreadable, "points": points, "descriptors": desc}


def _chunks(photos: PhotoSet, size: int) -> list[list[tuple[int, Path]]]:
    files = photos.files
    return [files[i : i + size] for i in range(0, len(files), size)]


def source_threshold(descriptors: np.ndarray, person: np.ndarray, best_threshold) -> tuple[float, str]:
    """The genuine-pair distance threshold measured on the source photos themselves (pairs of one
    person's photos against random pairs of two people), or dlib's published 0.6 when fewer than
    50 genuine pairs exist."""
    rng = np.random.default_rng(0)
    genuine = []
    for p in np.unique(person):
        rows = np.flatnonzero(person == p)[:12]
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                genuine.append(np.linalg.norm(descriptors[rows[i]] - descriptors[rows[j]]))
    if len(genuine) < 50:
        return 0.6, "dlib's published 0.6 (fewer than 50 genuine pairs among the source photos)"
    a, b = rng.integers(0, len(person), size=(2, 20 * len(genuine)))
    keep = person[a] != person[b]
    impostor = np.linalg.norm(descriptors[a[keep]] - descriptors[b[keep]], axis=1)
    scores = -np.concatenate([np.asarray(genuine), impostor])
    labels = np.r_[np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]
    threshold = float(-best_threshold(scores, labels)[0])
    return threshold, f"best-accuracy threshold of {len(genuine)} genuine and {int(keep.sum())} impostor source pairs"


def _landmark_stage(photos: PhotoSet, chunks: list, keys: list[str], caches: list[Path], workers: int,
                    tick: Progress) -> list[dict[str, np.ndarray]]:
    """Stage 1: landmarks and descriptors per chunk, the missing chunks in worker processes."""
    from synface.base.processes import ordered_pool_map  # noqa: PLC0415

    total = len(photos.files)
    paths = [caches[0] / f"landmarks-{key}.npz" for key in keys]
    marks: list[dict[str, np.ndarray] | None] = []
    for c, path in zip(chunks, paths):
        data = _cached(path.name, caches)
        marks.append(data if _landmarks_ok(data, len(c)) else None)
    todo = [i for i, m in enumerate(marks) if m is None]
    done = sum(len(chunks[i]) for i, m in enumerate(marks) if m is not None)
    tick("landmarks", done, total)
    for i, data in zip(todo, ordered_pool_map(_landmark_chunk, [chunks[i] for i in todo], workers)):
        save_npz(paths[i], **data)
        marks[i] = data
        done += len(chunks[i])
        tick("landmarks", done, total)
    return marks  # type: ignore[return-value]


def _geometry_stage(gen, photos: PhotoSet, chunks: list, keys: list[str], marks: list, caches: list[Path],
                    tick: Progress) -> tuple[np.ndarray, float, list[GeometryFit | None]]:
    """Stage 2: where the 68 points lie on the head (once per built-in head version), then per
    chunk the pose, shape and expression fits of the photos with a face."""
    cache = caches[0]
    corr = _cached("landmark_vertices.npz", caches)
    if corr is None or str(corr.get("builtin_version", "")) != GENERATOR_MODEL_VERSION or \
            corr["ids"].shape != (68,) or corr["ids"].dtype.kind not in "iu" or not 0 <= corr["ids"].min() <= corr["ids"].max() < gen.model.num_vertices:
        ids, residual = calibrate_landmark_vertices(gen)
        corr = {"ids": ids, "residual": np.array([residual]), "builtin_version": np.array(GENERATOR_MODEL_VERSION)}
        save_npz(cache / "landmark_vertices.npz", **corr)
    ids = corr["ids"]
    mean, shape_basis, expr_basis = landmark_basis(gen.model, ids)
    low, high = gen.model.expr_range()
    fits: list[GeometryFit | None] = []
    done, total = 0, len(photos.files)
    tick("geometry", 0, total)
    for chunk, key, m in zip(chunks, keys, marks):
        path = cache / f"geometry-{key}-{GENERATOR_MODEL_VERSION}.npz"
        data = _cached(path.name, caches)
        if data is None or not _geometry_ok(data, int(m["found"].sum())):
            if m["found"].any():
                f = fit_geometry(m["points"][m["found"]], mean, shape_basis, expr_basis, low, high)
                data = {"pose": f.pose, "shape": f.shape, "expr": f.expr, "A": f.A, "t": f.t, "error": f.error}
            else:
                data = {"error": np.zeros(0)}
            save_npz(path, **data)
        fits.append(GeometryFit(**data) if len(data["error"]) else None)
        done += len(chunk)
        tick("geometry", done, total)
    return ids, float(corr["residual"][0]), fits


def _choose_bank(chunks: list, marks: list, fits: list, fitted_people: list[int], bank: int) -> list[int]:
    """The people whose photos fit best (median landmark error), at most `bank`, in name order."""
    per_person: dict[int, list[float]] = {}
    for chunk, m, f in zip(chunks, marks, fits):
        row = 0
        for (p, _), ok in zip(chunk, m["found"]):
            if ok:
                per_person.setdefault(p, []).append(float(f.error[row]))
                row += 1
    ranked = sorted(fitted_people, key=lambda p: (float(np.median(per_person[p])), p))
    return sorted(ranked[:bank])


def _framing(folder: Path, arrays: dict[str, np.ndarray], textures: np.ndarray, card: dict, renders: int, tick: Progress):
    """Stage 5: where dlib's alignment pipeline finds the new model's landmarks on its renders, so
    its crops are framed as real photos are (`synface.fitting.alignment`)."""
    from synface.face.learned import LearnedFaceModel  # noqa: PLC0415
    from synface.fitting.alignment import fit_alignment_calibration  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    model = LearnedFaceModel(folder, parts=(arrays, textures, card))
    generator = FaceGenerator(device="cpu", model=model)
    fit = fit_alignment_calibration(generator, renders=renders, start=model.alignment_calibration, prefix="dlib68",
                                    progress=lambda done, total: tick("framing", done, total))
    measured = next((r for r in reversed(fit.rounds) if r.calibration == fit.calibration.version), fit.rounds[-1])
    card["framing"] = {"converged": fit.converged, "rounds": len(fit.rounds), "renders": renders,
                       "mean_scale": round(measured.mean_scale, 4), "mean_eye_shift_px": round(measured.mean_eye_shift, 3),
                       "detected": measured.detected}
    return fit.calibration


def shape_prior(person_shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (S,) and whitening components (K, S) of the people's fitted shapes, with SHAPE_FLOOR
    kept in every direction (the landmarks leave some directions unconstrained)."""
    mean = person_shapes.mean(0)
    cov = np.cov(person_shapes, rowvar=False) if len(person_shapes) > 1 else np.zeros((person_shapes.shape[1],) * 2)
    cov = cov + SHAPE_FLOOR**2 * np.eye(person_shapes.shape[1])
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    return mean, (eigvec[:, order] * np.sqrt(np.clip(eigval[order], 0, None))).T


def fit_face_model(photo_root: str | Path, name: str, people: int | None = None, folds: list[int] | None = None,
                   bank: int = DEFAULT_BANK, workspace: str | Path | None = None, max_photos_per_person: int | None = None,
                   progress: Progress | None = None, chunk: int = CHUNK, workers: int = 2,
                   framing_renders: int = FRAMING_RENDERS) -> dict:
    """Fit a learned face model from the photos under `photo_root`; returns its card. Work is
    cached per `chunk` photos (a killed fit loses at most the chunks in flight); landmarks run
    in `workers` processes; the framing is measured on `framing_renders` renders per round. The
    model is built beside the folder of `name` and swapped in only when it is whole (a refit
    replaces the old model in one rename); a second fit of a name that is being fitted is refused
    (FaceModelBusy, naming the pid)."""
    if not MIN_PEOPLE <= bank <= MAX_BANK_PEOPLE:
        raise ValueError(f"--bank {bank}: the reflectance bank holds {MIN_PEOPLE} to {MAX_BANK_PEOPLE:,} people")
    folder = model_folder(name, workspace)
    with hold_name(name, workspace):
        photos = find_photos(photo_root, people=people, folds=folds, max_photos_per_person=max_photos_per_person)
        staging = staging_folder(name, workspace)
        for leftover in (MODEL_FILE, TEXTURE_FILE, CARD_FILE, SOURCES_FILE, NO_FACE_FILE, CONTEXT_FILE):  # an earlier attempt's
            (staging / leftover).unlink(missing_ok=True)
        caches = [staging / "cache"] + ([] if folder.is_symlink() else [folder / "cache"])
        caches[0].mkdir(parents=True, exist_ok=True)
        card = _fit_into(staging, caches, photos, photo_root, name, folds, bank, progress, chunk, workers,
                         framing_renders)
        check_model_folder(staging)  # what every reader checks: never swap in a folder that fails it
        swap_folder(staging, folder)
    return card


def _fit_into(folder: Path, caches: list[Path], photos: PhotoSet, photo_root: str | Path, name: str,
              folds: list[int] | None, bank: int, progress: Progress | None, chunk: int, workers: int,
              framing_renders: int) -> dict:
    """The fit itself, written into `folder` (the staging folder) with its cache in `caches[0]`."""
    from synface.eval.verification import best_threshold  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    tick = progress or (lambda stage, done, total: None)
    gen = FaceGenerator(device="cpu")
    chunks = _chunks(photos, chunk)
    keys = [_chunk_key(c, photos.root) for c in chunks]
    marks = _landmark_stage(photos, chunks, keys, caches, workers, tick)
    found = np.concatenate([m["found"] for m in marks])
    unreadable = np.concatenate([m["unreadable"] for m in marks])
    ids, residual, fits = _geometry_stage(gen, photos, chunks, keys, marks, caches, tick)
    person_of = np.array([p for p, _ in photos.files])
    fitted_people = sorted(set(person_of[found].tolist()))
    if len(fitted_people) < MIN_PEOPLE:
        raise DataError(f"dlib found a face for only {len(fitted_people)} people; a face model needs at least "
                        f"{MIN_PEOPLE}", path=photos.root)
    errors = np.concatenate([f.error for f in fits if f is not None])
    bank_people = _choose_bank(chunks, marks, fits, fitted_people, bank)
    geo = texel_geometry(gen, TEXTURE_SIZE)
    region_names, regions = texel_regions(geo)
    colour_sum, weight_sum, best_trust, hair_colour, shapes_by_person = unwrap_people(
        gen.model, chunks, marks, fits, bank_people, ids, geo, regions[region_names.index("mouth_chin")].float(),
        lambda points: mouth_gap(points) > OPEN_MOUTH_GAP, tick)
    textures = fill_bank(colour_sum, weight_sum, hair_colour, geo.hair.numpy(), TEXTURE_SIZE, tick)
    del colour_sum, weight_sum
    eligible = region_eligibility(best_trust, regions, region_names, geo, photos.root)
    skin_tones = tones(textures, regions, geo)
    shape_mean, components = shape_prior(np.stack([np.mean(shapes_by_person[p], axis=0) for p in fitted_people]))
    # descriptors of every fitted photo: what the leakage check compares new people with
    descriptors = np.concatenate([m["descriptors"][m["found"]] for m in marks])
    index_of = {p: i for i, p in enumerate(fitted_people)}
    source_person = np.array([index_of[p] for p in person_of[found]], np.int64)
    threshold, threshold_note = source_threshold(descriptors, source_person, best_threshold)
    from synface.data.leakage import SourceIndex  # noqa: PLC0415

    strangers = SourceIndex(descriptors, source_person, [], threshold).stranger_distances()
    contexts = context_stage(gen.model, photos.root, chunks, marks, fits, index_of, geo, caches[0], keys, workers, tick)
    arrays = model_arrays(shape_mean, components, ids, regions.numpy(), skin_tones, eligible, textures,
                          gen.model.alignment_calibration)  # type: ignore[arg-type]  # the built-in head has one
    card = {
        "name": name, "kind": "learned", "builtin_version": GENERATOR_MODEL_VERSION,
        "version": model_version(name, arrays),
        "source": str(Path(photo_root).resolve()), "photo_root": str(photos.root.resolve()), "folds": folds,
        "people_listed": len(photos.people), "people_without_photos": photos.missing[:50],
        "people_without_photos_count": len(photos.missing), "people_fitted": len(fitted_people), "bank_people": len(bank_people),
        "images_listed": len(photos.files), "images_fitted": int(found.sum()),
        "images_without_face": int((~found & ~unreadable).sum()), "images_unreadable": int(unreadable.sum()),
        "file_list_sha256": photos.digest(),
        "landmarks": "dlib 68-point predictor (face_recognition_models), HOG detector",
        "landmark_vertex_residual_px": round(residual, 3),
        "fit_error_iod_median": round(float(np.median(errors)), 4),
        "fit_error_iod_p90": round(float(np.percentile(errors, 90)), 4),
        "shape_components": int(len(components)),
        "regions": region_names, "texture_size": TEXTURE_SIZE,
        "region_people": {region: int(eligible[r].sum()) for r, region in enumerate(region_names)},
        "genuine_threshold": round(threshold, 4), "genuine_threshold_from": threshold_note,
        "stranger_nearest_p01": round(float(np.percentile(strangers, 1)), 4),
        "strangers_under_genuine_threshold": round(float((strangers < threshold).mean()), 4),
        "source_people": [photos.people[p] for p in fitted_people],
        "contexts": int(len(contexts["path"])),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    no_face = [str(path.relative_to(photos.root)) for (_, path), ok in zip(photos.files, found) if not ok]
    with atomic_path(folder / NO_FACE_FILE) as tmp:
        tmp.write_text("".join(line + "\n" for line in no_face))
    save_npz(folder / CONTEXT_FILE, **contexts)
    save_npz(folder / SOURCES_FILE, descriptors=descriptors.astype(np.float32), person=source_person,
              bank_person=np.array([index_of[p] for p in bank_people], np.int64))
    arrays["alignment"] = _framing(folder, arrays, textures, card, framing_renders, tick).array().numpy()
    card["version"] = model_version(name, arrays)
    with atomic_path(folder / TEXTURE_FILE) as tmp:
        save_textures(tmp, textures)
    write_json(folder / CARD_FILE, card)
    with atomic_path(folder / MODEL_FILE) as tmp:  # last: the model file marks a finished fit
        save_model_arrays(tmp, arrays)
    return card
