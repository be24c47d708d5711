"""A learned model's context photos: every fitted source photo, with what rendering a new person
into it needs (its fitted pose, expression, head shape and camera, its landmarks and its light).

Why: a synthetic person rendered into a real photo's context (hair, ears, collar, background, the
camera's look) teaches a recogniser what real crops look like around a face, while the face itself
stays synthetic (see `synface.data.contexts`). The fit already knows each photo's geometry; this
stage adds its light and a digest of its bytes, so a photo changed or gone since the fit is named,
not silently used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from synface.fitting.unwrap import TexelGeometry, photo_geometry, photo_light, photo_regions

from synface.data.contexts import CONTEXT_FILE  # noqa: F401  (the file the fit writes)
Progress = Callable[[str, int, int], None]


def file_digest(path: Path) -> np.ndarray:
    """(32,) uint8 SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return np.frombuffer(h.digest(), np.uint8).copy()


def context_rows(model, root: Path, chunk: list, marks: dict, fit, person_of: dict[int, int],
                 geo: TexelGeometry) -> dict[str, np.ndarray]:
    """The context rows of one chunk's photos with a face (see `CONTEXT_FIELDS`)."""
    from synface.data.imageio import read_rgb  # noqa: PLC0415

    rows: dict[str, list] = {k: [] for k in CONTEXT_FIELDS}
    points = marks["points"][marks["found"]]
    row = 0
    faces = model.faces.cpu()
    for (person, path), ok in zip(chunk, marks["found"]):
        if not ok:
            continue
        image = np.asarray(read_rgb(path, what="photo"))
        pixels, normals, depth = photo_geometry(model, fit, row)
        region, _ = photo_regions(image, points[row])
        light = photo_light(image, pixels, normals, depth, faces, geo, region).renderer_light().numpy()
        face = region >= 1.0
        tone = np.median(image[face].astype(np.float64), axis=0) / 255.0 if face.sum() >= 20 else np.full(3, 0.5)
        rows["path"].append(str(path.relative_to(root)))
        rows["digest"].append(file_digest(path))
        rows["size"].append(image.shape[:2])
        rows["person"].append(person_of[person])
        rows["pose"].append(fit.pose[row])
        rows["shape"].append(fit.shape[row])
        rows["expr"].append(fit.expr[row])
        rows["A"].append(fit.A[row])
        rows["t"].append(fit.t[row])
        rows["points"].append(points[row])
        rows["light"].append(light)
        rows["tone"].append(tone)
        row += 1
    return {k: np.asarray(v) for k, v in rows.items()} if rows["path"] else {}


#: the arrays of a context pool, one row per fitted photo: its path under the photo root, the
#: SHA-256 of its bytes, (height, width), its person (index into the card's source_people), the
#: fitted pose (3), built-in shape and expression coefficients, the camera (A (2, 2), t (2):
#: projected points -> photo pixels), dlib's 68 points (68, 2), its light (27, the renderer's SH)
#: and the face's median colour (3, in [0, 1])
CONTEXT_FIELDS = ("path", "digest", "size", "person", "pose", "shape", "expr", "A", "t", "points", "light", "tone")


def merge_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The pool's arrays from per-chunk rows, in photo order (paths as fixed-width unicode)."""
    parts = [p for p in parts if p]
    out = {k: np.concatenate([p[k] for p in parts]) for k in CONTEXT_FIELDS}
    out["path"] = out["path"].astype(str)
    out["digest"] = out["digest"].astype(np.uint8)
    out["size"] = out["size"].astype(np.int64)
    out["person"] = out["person"].astype(np.int64)
    for k in ("pose", "shape", "expr", "A", "t", "points", "light", "tone"):
        out[k] = out[k].astype(np.float32)
    return out


_STAGE: dict = {}  # what forked workers of `context_stage` read (set before the pool starts)


def _chunk_rows(task: tuple[int, str]) -> dict[str, np.ndarray]:
    i, _ = task
    s = _STAGE
    return context_rows(s["model"], s["root"], s["chunks"][i], s["marks"][i], s["fits"][i], s["person_of"], s["geo"])


def context_stage(model, root: Path, chunks: list, marks: list, fits: list, person_of: dict[int, int],
                  geo: TexelGeometry, cache: Path, keys: list[str], workers: int, tick: Progress) -> dict[str, np.ndarray]:
    """The context pool of a fit: per chunk (cached as cache/contexts-<key>.npz, so a killed fit
    resumes), the rows of its photos with a face. In this process: the fit has used torch by now, and
    a process forked after torch's OpenMP threads started can hang in its first parallel region
    (`workers` is kept for the signature; torch's own threads use the cores)."""
    from synface.base.processes import ordered_pool_map  # noqa: PLC0415
    from synface.fitting.chunk_cache import read_npz, save_npz  # noqa: PLC0415

    total = sum(len(c) for c in chunks)
    paths = [cache / f"contexts-{key}.npz" for key in keys]
    parts: list[dict | None] = []
    for path, m in zip(paths, marks):
        data = read_npz(path)
        parts.append(data if data is not None and len(data.get("path", [])) == int(m["found"].sum()) else None)
    todo = [i for i, part in enumerate(parts) if part is None and fits[i] is not None]
    for i, f in enumerate(fits):
        if f is None:
            parts[i] = {}
    done = sum(len(c) for c, part in zip(chunks, parts) if part is not None)
    tick("contexts", done, total)
    _STAGE.update(model=model, root=root, chunks=chunks, marks=marks, fits=fits, person_of=person_of, geo=geo)
    try:
        for i, rows in zip(todo, ordered_pool_map(_chunk_rows, [(i, keys[i]) for i in todo], 1)):
            save_npz(paths[i], **rows)
            parts[i] = rows
            done += len(chunks[i])
            tick("contexts", done, total)
    finally:
        _STAGE.clear()
    return merge_rows([p for p in parts if p])
