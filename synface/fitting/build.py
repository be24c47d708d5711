"""`face-model fit`: photographs -> a learned face model in `<workspace>/face_models/<name>/`.

Stages, each with progress and a cache so a killed fit resumes where it stopped:
1. landmarks: per photo, dlib's face, 68 points and the 128-D descriptor of its aligned crop
   (cached in chunks under `cache/`; photos without a face are counted and listed, never fatal);
2. geometry: pose, shape and expression fitted to the points (cached per chunk);
3. reflectance: per bank person, the photos unwrapped onto the head's texture square with the
   fitted geometry, light divided out; 4. fill: unseen texels filled; then the shape prior, the
   texture file and the model file.
The model file is written last and atomically: a folder without it is an unfinished fit.
"""

from __future__ import annotations

import datetime
import hashlib
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from synface.base.files import atomic_path, write_json
from synface.data.errors import DataError
from synface.face.builtin import GENERATOR_MODEL_VERSION
from synface.face.catalog import model_folder
from synface.face.learned import (
    CARD_FILE, MODEL_FILE, TEXTURE_FILE, model_arrays, model_version, save_model_arrays, save_textures,
)
from synface.fitting.geometry_fit import GeometryFit, fit_geometry
from synface.fitting.landmarks import calibrate_landmark_vertices, landmark_basis, photo_landmarks
from synface.fitting.photos import MIN_PEOPLE, PhotoSet, find_photos
from synface.fitting.bank import fill_bank, region_eligibility, texel_regions, tones, unwrap_people
from synface.fitting.unwrap import TEXTURE_SIZE, texel_geometry

CHUNK = 128
SOURCES_FILE = "sources.npz"
NO_FACE_FILE = "no_face.txt"
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


def _chunk_key(files: list[tuple[int, Path]], root: Path) -> str:
    h = hashlib.sha256("\n".join(str(p.relative_to(root)) for _, p in files).encode())
    return h.hexdigest()[:12]


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """A cached chunk, or None when missing or torn (it is then recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


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


def _landmark_stage(photos: PhotoSet, chunks: list, cache: Path, workers: int, tick: Progress) -> list[dict[str, np.ndarray]]:
    """Stage 1: landmarks and descriptors per chunk, the missing chunks in worker processes."""
    from synface.base.processes import ordered_pool_map  # noqa: PLC0415

    total = len(photos.files)
    paths = [cache / f"landmarks-{_chunk_key(c, photos.root)}.npz" for c in chunks]
    marks: list[dict[str, np.ndarray] | None] = []
    for c, path in zip(chunks, paths):
        data = read_npz(path)
        marks.append(data if data is not None and len(data.get("found", [])) == len(c) else None)
    todo = [i for i, m in enumerate(marks) if m is None]
    done = sum(len(chunks[i]) for i, m in enumerate(marks) if m is not None)
    tick("landmarks", done, total)
    for i, data in zip(todo, ordered_pool_map(_landmark_chunk, [chunks[i] for i in todo], workers)):
        _save_npz(paths[i], **data)
        marks[i] = data
        done += len(chunks[i])
        tick("landmarks", done, total)
    return marks  # type: ignore[return-value]


def _geometry_stage(gen, photos: PhotoSet, chunks: list, marks: list, cache: Path,
                    tick: Progress) -> tuple[np.ndarray, float, list[GeometryFit | None]]:
    """Stage 2: where the 68 points lie on the head (once per model folder), then per chunk the
    pose, shape and expression fits of the photos with a face."""
    corr = read_npz(cache / "landmark_vertices.npz")
    if corr is None:
        ids, residual = calibrate_landmark_vertices(gen)
        corr = {"ids": ids, "residual": np.array([residual])}
        _save_npz(cache / "landmark_vertices.npz", **corr)
    ids = corr["ids"]
    mean, shape_basis, expr_basis = landmark_basis(gen.model, ids)
    low, high = gen.model.expr_range()
    fits: list[GeometryFit | None] = []
    done, total = 0, len(photos.files)
    tick("geometry", 0, total)
    for chunk, m in zip(chunks, marks):
        path = cache / f"geometry-{_chunk_key(chunk, photos.root)}.npz"
        data = read_npz(path)
        if data is None or len(data.get("error", [])) != int(m["found"].sum()):
            if m["found"].any():
                f = fit_geometry(m["points"][m["found"]], mean, shape_basis, expr_basis, low, high)
                data = {"pose": f.pose, "shape": f.shape, "expr": f.expr, "A": f.A, "t": f.t, "error": f.error}
            else:
                data = {"error": np.zeros(0)}
            _save_npz(path, **data)
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
    in `workers` processes; the framing is measured on `framing_renders` renders per round. A
    refit of an existing name replaces it only when it finishes."""
    from synface.eval.verification import best_threshold  # noqa: PLC0415
    from synface.generator import FaceGenerator  # noqa: PLC0415

    tick = progress or (lambda stage, done, total: None)
    if bank < MIN_PEOPLE:
        raise ValueError(f"--bank {bank}: the reflectance bank needs at least {MIN_PEOPLE} people")
    photos = find_photos(photo_root, people=people, folds=folds, max_photos_per_person=max_photos_per_person)
    folder = model_folder(name, workspace)
    cache = folder / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    gen = FaceGenerator(device="cpu")
    chunks = _chunks(photos, chunk)
    marks = _landmark_stage(photos, chunks, cache, workers, tick)
    found = np.concatenate([m["found"] for m in marks])
    unreadable = np.concatenate([m["unreadable"] for m in marks])
    ids, residual, fits = _geometry_stage(gen, photos, chunks, marks, cache, tick)
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
    arrays = model_arrays(shape_mean, components, ids, regions.numpy(), skin_tones, eligible, textures,
                          gen.model.alignment_calibration)
    card = {
        "name": name, "kind": "learned", "builtin_version": GENERATOR_MODEL_VERSION,
        "version": model_version(name, arrays),
        "source": str(Path(photo_root).resolve()), "folds": folds,
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
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    no_face = [str(path.relative_to(photos.root)) for (_, path), ok in zip(photos.files, found) if not ok]
    with atomic_path(folder / NO_FACE_FILE) as tmp:
        tmp.write_text("".join(line + "\n" for line in no_face))
    _save_npz(folder / SOURCES_FILE, descriptors=descriptors.astype(np.float32), person=source_person,
              bank_person=np.array([index_of[p] for p in bank_people], np.int64))
    arrays["alignment"] = _framing(folder, arrays, textures, card, framing_renders, tick).array().numpy()
    card["version"] = model_version(name, arrays)
    with atomic_path(folder / TEXTURE_FILE) as tmp:
        save_textures(tmp, textures)
    write_json(folder / CARD_FILE, card)
    with atomic_path(folder / MODEL_FILE) as tmp:  # last: the model file marks a finished fit
        save_model_arrays(tmp, arrays)
    return card
