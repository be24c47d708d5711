"""IJB-B / IJB-C 1:1 verification sets in insightface's layout, read and checked; their alignment.

    <root>/meta/ijbc_face_tid_mid.txt          one face per line: image name, template id, media id
    <root>/meta/ijbc_template_pair_label.txt   one template pair per line: template 1, template 2, 1 (same) or 0
    <root>/meta/ijbc_name_5pts_score.txt       one face per line: image name, 5 landmarks (x y each), detector score
    <root>/loose_crop/<image name>             the face images (loose crops around each face)

(`ijbb_...` for IJB-B.) The protocol compares templates, not images: a template is a set of
images and video frames of one person, grouped by media (one photo, or one video's frames);
`synface.eval.ijb` aggregates their features and scores the pairs. Every meta line is checked: a
malformed one is a DataError naming the file and the line.

An aligned copy (`align_ijb`, what `real add` makes) holds the same meta files, 112x112 crops
warped onto the ArcFace template from each face's 5 landmarks under loose_crop/, and ALIGNED_MARK;
evaluation then only resizes. Without the mark the crops are aligned as they are read.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from synface.base.files import atomic_path
from synface.base.processes import ordered_pool_map
from synface.data.errors import DataError
from synface.data.imageio import read_rgb, write_image

__all__ = ["IJBSet", "is_ijb_folder", "read_ijb", "align_ijb", "ALIGNED_MARK", "PREFIXES"]

PREFIXES = ("ijbc", "ijbb")
META = "meta"
IMAGES = "loose_crop"
ALIGNED_MARK = "aligned.json"
FACES, PAIRS, LANDMARKS = "face_tid_mid.txt", "template_pair_label.txt", "name_5pts_score.txt"


def _prefix(root: Path) -> str | None:
    """'ijbc' or 'ijbb': the set whose meta files (any of them) lie in meta/."""
    for prefix in PREFIXES:
        if any((root / META / f"{prefix}_{kind}").is_file() for kind in (FACES, PAIRS, LANDMARKS)):
            return prefix
    return None


def is_ijb_folder(path: str | Path) -> bool:
    """True for a folder holding insightface's IJB meta/ (any of its files: a missing one is then
    named by `read_ijb`)."""
    root = Path(path)
    return root.is_dir() and _prefix(root) is not None


@dataclass
class IJBSet:
    """One IJB set: per face its image, template and media; the template pairs; the landmarks."""

    root: Path
    prefix: str
    names: list[str]
    templates: np.ndarray  # (faces,) int64
    medias: np.ndarray  # (faces,) int64
    pair_templates: np.ndarray  # (pairs, 2) int64
    pair_labels: np.ndarray  # (pairs,) bool
    landmarks: np.ndarray | None  # (faces, 5, 2) float64 in loose-crop pixels; None for an aligned copy
    scores: np.ndarray | None  # (faces,) detector scores
    aligned: bool

    @property
    def name(self) -> str:
        return self.prefix.upper().replace("IJB", "IJB-")

    def image_path(self, face: int) -> Path:
        return self.root / IMAGES / self.names[face]

    def load_face(self, face: int, size: int) -> np.ndarray:
        """Face `face` as a (size, size, 3) uint8 crop on the ArcFace template."""
        from PIL import Image  # noqa: PLC0415

        image = read_rgb(self.image_path(face), "IJB face image")
        if self.aligned:
            if image.size != (size, size):
                smaller = image.size[0] > size
                image = image.resize((size, size), Image.Resampling.BOX if smaller else Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
        from synface.data.align import warp_to_template  # noqa: PLC0415

        return warp_to_template(np.asarray(image), self.landmarks[face], size)  # type: ignore[index]  # not aligned


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, fields) of every non-blank line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("missing IJB meta file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable IJB meta file ({exc})", path=path) from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _ints(fields: list[str], path: Path, line: int, what: str) -> list[int]:
    try:
        return [int(f) for f in fields]
    except ValueError:
        raise DataError(f"expected {what}, got {' '.join(fields)!r}", path=path, line=line) from None


def _faces(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    names, templates, medias = [], [], []
    seen: dict[str, int] = {}
    for line, fields in _lines(path):
        if len(fields) != 3:
            raise DataError(f"expected 3 fields (image name, template id, media id), got {len(fields)}",
                            path=path, line=line)
        name = fields[0]
        if Path(name).name != name or name in ("", ".", ".."):
            raise DataError(f"image name {name!r} must be a file name inside {IMAGES}/", path=path, line=line)
        if name in seen:
            raise DataError(f"image {name!r} is listed twice (first on line {seen[name]})", path=path, line=line)
        seen[name] = line
        tid, mid = _ints(fields[1:], path, line, "integer template and media ids")
        names.append(name)
        templates.append(tid)
        medias.append(mid)
    if not names:
        raise DataError("lists no faces", path=path)
    return names, np.asarray(templates, np.int64), np.asarray(medias, np.int64)


def _pairs_by_line(path: Path, known: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """The pairs file read line by line: slow, and says which line is wrong."""
    rows, labels = [], []
    for line, fields in _lines(path):
        if len(fields) != 3:
            raise DataError(f"expected 3 fields (template 1, template 2, label), got {len(fields)}", path=path, line=line)
        t1, t2, label = _ints(fields, path, line, "integer template ids and a 0/1 label")
        if label not in (0, 1):
            raise DataError(f"label must be 1 (same person) or 0, got {label}", path=path, line=line)
        for t in (t1, t2):
            if t not in known:
                raise DataError(f"template {t} has no face in the face list", path=path, line=line)
        rows.append((t1, t2))
        labels.append(bool(label))
    return np.asarray(rows, np.int64).reshape(-1, 2), np.asarray(labels, bool)


def _pairs(path: Path, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template pairs and labels. IJB-C lists millions of pairs: a vectorised read first, and the
    line-by-line one (which names the bad line) only when that finds anything wrong."""
    import pandas as pd  # noqa: PLC0415

    table = None
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.int64, engine="c")
        if frame.shape[1] == 3:
            table = frame.to_numpy()
    except FileNotFoundError:
        raise DataError("missing IJB meta file", path=path) from None
    except (ValueError, TypeError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        table = None
    if table is None or not np.isin(table[:, 2], (0, 1)).all() or not np.isin(table[:, :2], known).all():
        rows, labels = _pairs_by_line(path, set(known.tolist()))
    else:
        rows, labels = table[:, :2].astype(np.int64), table[:, 2] == 1
    if not len(rows):
        raise DataError("lists no template pairs", path=path)
    if labels.all() or not labels.any():
        raise DataError("needs both same-person (1) and different-person (0) pairs", path=path)
    return rows, labels


def _landmarks(path: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    found: dict[str, tuple[np.ndarray, float]] = {}
    for line, fields in _lines(path):
        if len(fields) != 12:
            raise DataError(f"expected 12 fields (image name, 5 landmarks as x y, score), got {len(fields)}",
                            path=path, line=line)
        try:
            values = np.asarray([float(f) for f in fields[1:]])
        except ValueError:
            raise DataError(f"expected numbers after the image name, got {' '.join(fields[1:])!r}",
                            path=path, line=line) from None
        if not np.isfinite(values).all():
            raise DataError("landmarks and score must be finite numbers", path=path, line=line)
        found[fields[0]] = (values[:10].reshape(5, 2), float(values[10]))
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"no landmarks for {len(missing)} faces of the face list (e.g. {missing[0]!r})", path=path)
    return np.stack([found[n][0] for n in names]), np.asarray([found[n][1] for n in names])


def read_ijb(path: str | Path) -> IJBSet:
    """The IJB set at `path`, every meta file checked (DataError naming the file and the line)."""
    root = Path(path)
    prefix = _prefix(root)
    if prefix is None:
        raise DataError(f"not an IJB folder: no {META}/ijbc_{FACES} or {META}/ijbb_{FACES} (insightface's layout)",
                        path=root)
    names, templates, medias = _faces(root / META / f"{prefix}_{FACES}")
    pairs, labels = _pairs(root / META / f"{prefix}_{PAIRS}", np.unique(templates))
    aligned = (root / ALIGNED_MARK).is_file()
    marks, scores = (None, None) if aligned else _landmarks(root / META / f"{prefix}_{LANDMARKS}", names)
    if not (root / IMAGES).is_dir():
        raise DataError(f"no {IMAGES}/ folder of face images", path=root)
    return IJBSet(root, prefix, names, templates, medias, pairs, labels, marks, scores, aligned)


def _align_one(task: tuple[str, str, list]) -> str | None:
    """Align one face (src -> dst); None on success, else why it failed (worker processes)."""
    from synface.data.align import warp_to_template  # noqa: PLC0415

    src, dst, marks = task
    try:
        crop = warp_to_template(np.asarray(read_rgb(src, "IJB face image")), np.asarray(marks))
        write_image(dst, crop, "JPEG", quality=95)
    except (DataError, OSError) as exc:
        return str(exc)
    return None


def align_ijb(src: str | Path, dst: str | Path, progress: Callable[[int, int], None] | None = None,
              workers: int = 2) -> dict:
    """An aligned copy of the IJB set at `src` in `dst` (see the module); resumable: crops already
    written stay. A face image that does not read stops the copy, named (the protocol needs every face)."""
    ijb = read_ijb(src)
    if ijb.aligned:
        raise DataError("is an aligned copy already; register it with --no-align", path=src)
    dst = Path(dst)
    if dst.resolve() == ijb.root.resolve():
        raise DataError("destination must differ from the source folder", path=dst)
    (dst / IMAGES).mkdir(parents=True, exist_ok=True)
    tasks = [(str(ijb.image_path(i)), str(dst / IMAGES / n), ijb.landmarks[i].tolist())  # type: ignore[index]  # not aligned
             for i, n in enumerate(ijb.names) if not (dst / IMAGES / n).is_file()]
    total, done = len(ijb.names), len(ijb.names) - len(tasks)
    if progress:
        progress(done, total)
    for task, problem in zip(tasks, ordered_pool_map(_align_one, tasks, workers)):
        if problem:
            raise DataError(f"face image does not align: {problem}", path=task[0])
        done += 1
        if progress and (done % 64 == 0 or done == total):
            progress(done, total)
    (dst / META).mkdir(exist_ok=True)
    for kind in (FACES, PAIRS, LANDMARKS):
        source = ijb.root / META / f"{ijb.prefix}_{kind}"
        with atomic_path(dst / META / source.name) as tmp:
            shutil.copyfile(source, tmp)
    report = {"source": str(ijb.root), "faces": total, "aligned_now": len(tasks), "template": "ArcFace 112x112",
              "landmarks": f"{META}/{ijb.prefix}_{LANDMARKS}"}
    with atomic_path(dst / ALIGNED_MARK) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return report
