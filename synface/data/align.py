"""Real photographs -> 112x112 ArcFace crops (5-point similarity warp, reference.md section 3).

Synthetic faces are rendered already aligned to the ArcFace template, so real images (LFW,
a user's folder) must be warped to the same template before a recogniser trained on one is
scored on the other; a misaligned test set costs accuracy that would wrongly be blamed on the
synthetic data.

Pipeline per image: dlib HOG detector -> dlib 68-point landmarks reduced to the ArcFace 5
points -> least-squares similarity onto the template -> bilinear warp. When no face is found
the image gets a fixed fallback transform measured on deep-funneled LFW (those crops are
already roughly aligned, so a fixed box is close), and the image is counted as a fallback.

dlib objects cannot be pickled, so each process loads its own detector and predictor lazily.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from synface.base.files import append_line, atomic_path
from synface.base.processes import default_signals
from synface.data.errors import DataError
from synface.data.imagefolder import ImageFolderIndex
from synface.data.imageio import read_rgb, write_image
from synface.data.realface import RealFaceToolsMissing, models_dir
from synface.render.camera import ARCFACE_TEMPLATE

__all__ = [
    "AlignReport",
    "AlignResult",
    "FALLBACK_MATRIX_250",
    "align_folder",
    "align_image",
    "estimate_similarity",
    "fallback_matrix",
    "landmarks5",
    "warp_to_template",
]

TEMPLATE = ARCFACE_TEMPLATE.numpy().astype(np.float64)
TEMPLATE_SIZE = 112
SMALL_IMAGE = 300  # below this side length a second detector pass upsamples once
REPORT_NAME = "align_report.json"
#: one line per crop written, "<method>\t<path in dst>": how a resumed run counts the crops it skips
JOURNAL_NAME = ".align_methods.tsv"
MAX_LISTED_UNREADABLE = 20

#: Mean detector-aligned transform (source pixel -> template pixel) of deep-funneled LFW
#: 250x250 images, measured with `measure_fallback` on 50 LFW images of 50 different people
#: (std of the entries: scale 0.05, shift ~7 px; a second set of 50 gave the same mean within
#: 0.7 px). It maps the box x 58..190, y 52..180 of the 250x250 image (a ~132 px square just
#: above the centre) onto the 112x112 crop: scale 0.854, rotation 0.8 degrees.
FALLBACK_MATRIX_250 = np.array(
    [
        [0.854, -0.012, -49.05],
        [0.012, 0.854, -45.20],
    ]
)
FALLBACK_SIZE = 250


@dataclass
class AlignResult:
    """One aligned crop; `points5` are the source landmarks (None for a fallback crop)."""

    image112: np.ndarray
    points5: np.ndarray | None
    method: str  # "detector" or "fallback"
    num_faces: int


@dataclass
class AlignReport:
    """What `align_folder` did; also written to `<dst>/align_report.json`.

    `detector` and `fallback` count every crop in the destination, those an earlier (killed or
    finished) run wrote included, so a resumed report keeps its counts; `skipped_existing` says how
    many were already there, `aligned_now` how many this run aligned."""

    source: str
    destination: str
    total: int = 0
    detector: int = 0
    fallback: int = 0
    skipped_existing: int = 0
    unreadable: int = 0
    unreadable_paths: list[str] = field(default_factory=list)
    aligned_now: int = 0
    elapsed_s: float = 0.0
    images_per_s: float = 0.0
    workers: int = 1

    @property
    def fallback_fraction(self) -> float:
        done = self.detector + self.fallback
        return self.fallback / done if done else 0.0

    def to_dict(self) -> dict:
        record = asdict(self)
        record["fallback_fraction"] = round(self.fallback_fraction, 4)
        return record


# ----------------------------------------------------------------------------- geometry


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, shift; never a reflection) taking src onto dst.

    Least squares in the linear parameters (a, b, tx, ty) of x' = a x - b y + tx,
    y' = b x + a y + ty, which is the same optimum as Umeyama's method restricted to
    proper rotations.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching (N>=2,2) point sets, got {src.shape} and {dst.shape}")
    x, y = src[:, 0], src[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    rows_x = np.stack([x, -y, ones, zeros], axis=1)
    rows_y = np.stack([y, x, zeros, ones], axis=1)
    design = np.concatenate([rows_x, rows_y])
    target = np.concatenate([dst[:, 0], dst[:, 1]])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def _invert_affine(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def warp_with_matrix(image: np.ndarray, matrix: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """Warp by a 2x3 forward map (source pixel -> output pixel, integer pixel centres).

    PIL samples with pixel centres at +0.5 while landmarks and the template use integer
    centres (OpenCV's convention), so the inverse map is shifted by half a pixel each side.
    """
    inv = _invert_affine(matrix)
    linear, shift = inv[:, :2], inv[:, 2]
    shift = shift + 0.5 - linear @ np.array([0.5, 0.5])
    coeffs = (linear[0, 0], linear[0, 1], shift[0], linear[1, 0], linear[1, 1], shift[1])
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    out = pil.transform((size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def warp_to_template(image: np.ndarray, points5: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """(size,size,3) uint8 crop whose 5 landmarks land on the ArcFace template (scaled to size)."""
    matrix = estimate_similarity(points5, TEMPLATE * (size / TEMPLATE_SIZE))
    return warp_with_matrix(image, matrix, size)


def fallback_matrix(width: int, height: int, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The LFW fallback transform for a (width, height) image: the 250x250 one, rescaled.

    The image's centred square of side min(width, height) plays the role of LFW's 250x250
    frame; `size` other than 112 scales the output side.
    """
    side = min(width, height)
    s = side / FALLBACK_SIZE
    ox, oy = (width - side) / 2.0, (height - side) / 2.0
    # source pixel p -> 250-frame pixel q = (p - o) / s -> template pixel FALLBACK @ q
    to_frame = np.array([[1 / s, 0, -ox / s], [0, 1 / s, -oy / s], [0, 0, 1]])
    out_scale = np.diag([size / TEMPLATE_SIZE, size / TEMPLATE_SIZE, 1.0])
    full = out_scale @ np.vstack([FALLBACK_MATRIX_250, [0, 0, 1]]) @ to_frame
    return full[:2]


# ----------------------------------------------------------------------------- dlib


def _dlib():
    try:
        import dlib  # noqa: PLC0415  (optional heavy import)
    except ImportError as exc:
        raise RealFaceToolsMissing("dlib is not installed: pip install dlib-bin") from exc
    return dlib


@lru_cache(maxsize=1)
def _detector():
    """HOG frontal face detector, once per process (not picklable, so never shipped)."""
    return _dlib().get_frontal_face_detector()


@lru_cache(maxsize=1)
def _predictor68():
    """dlib's 68-point predictor (its 5-point model has no mouth corners), once per process."""
    return _dlib().shape_predictor(str(models_dir() / "shape_predictor_68_face_landmarks.dat"))


def detect(image: np.ndarray) -> list:
    """dlib rectangles; small images get an upsampled second pass only when the first is empty.

    The plain pass is ~3x cheaper and already finds LFW's ~110 px faces; the upsampled pass
    rescues the small or partly cut faces it misses.
    """
    image = np.ascontiguousarray(image)
    rects = list(_detector()(image, 0))
    if not rects and max(image.shape[:2]) < SMALL_IMAGE:
        rects = list(_detector()(image, 1))
    return rects


def landmarks68(image: np.ndarray, rect) -> np.ndarray:
    """(68,2) iBUG-order points of dlib's 68-point predictor inside dlib rectangle `rect`."""
    shape = _predictor68()(np.ascontiguousarray(image), rect)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)


def five_from_68(pts: np.ndarray) -> np.ndarray:
    """ArcFace-order 5 points (eye centres, nose tip, mouth corners) from 68 iBUG points."""
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def landmarks5(image: np.ndarray, rect) -> np.ndarray:
    """(5,2) ArcFace-order points from the 68-point predictor inside dlib rectangle `rect`.

    Order: left eye centre, right eye centre, nose tip, left mouth corner, right mouth corner,
    left/right as seen in the image (iBUG points 36-41, 42-47, 30, 48, 54).
    """
    return five_from_68(landmarks68(image, rect))


def pick_face(rects: list, width: int, height: int):
    """Largest face, discounted by distance from the centre (LFW's subject is the central one)."""
    cx, cy = width / 2.0, height / 2.0

    def score(r) -> float:
        side = np.sqrt(max(r.width(), 1) * max(r.height(), 1))
        rx, ry = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
        return side - np.hypot(rx - cx, ry - cy)

    return max(rects, key=score)


def align_image(image: np.ndarray, size: int = TEMPLATE_SIZE) -> AlignResult:
    """Align one RGB uint8 image: detector + landmarks when a face is found, else the fallback."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H,W,3) RGB image, got shape {image.shape}")
    h, w = image.shape[:2]
    rects = detect(image)
    if rects:
        points = landmarks5(image, pick_face(rects, w, h))
        return AlignResult(warp_to_template(image, points, size), points, "detector", len(rects))
    return AlignResult(warp_with_matrix(image, fallback_matrix(w, h, size), size), None, "fallback", 0)


def measure_fallback(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and std of the detector-aligned transforms of `paths` (how FALLBACK_MATRIX_250 was set).

    Returns (mean 2x3, std 2x3, images with a detected face).
    """
    mats = []
    for path in paths:
        image = load_rgb(path)
        rects = detect(image)
        if rects:
            points = landmarks5(image, pick_face(rects, image.shape[1], image.shape[0]))
            mats.append(estimate_similarity(points, TEMPLATE))
    if not mats:
        raise DataError("no face detected in any measuring image")
    stack = np.stack(mats)
    return stack.mean(0), stack.std(0), len(mats)


# ----------------------------------------------------------------------------- files


def load_rgb(path: str | Path) -> np.ndarray:
    """Fully decoded RGB array (EXIF rotation applied); an unreadable file raises DataError."""
    return np.asarray(read_rgb(path))


def _save_atomic(array: np.ndarray, path: Path) -> None:
    """Write via a temp file (fsynced, 0644) and a rename, so a killed run never leaves a truncated output."""
    if path.suffix.lower() == ".png":
        write_image(path, array, "PNG")
    else:
        write_image(path, array, "JPEG", quality=95)


def output_path(src: Path, images_root: Path, dst_root: Path) -> Path:
    """dst_root/<identity>/<file>: same name, .jpg for every non-PNG source (JPEG content)."""
    rel = src.relative_to(images_root)
    suffix = src.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        rel = rel.with_suffix(".jpg")
    return dst_root / rel


def _align_file(task: tuple[str, str]) -> tuple[str, str, int]:
    """Worker body: (src, dst) -> (src, method or 'unreadable', faces). Decode errors never raise."""
    src, dst = task
    try:
        image = load_rgb(src)
    except Exception:  # noqa: BLE001 - PIL raises many types for broken files
        return src, "unreadable", 0
    result = align_image(image)
    _save_atomic(result.image112, Path(dst))
    return src, result.method, result.num_faces


def images_root_of(src_root: str | Path) -> Path:
    """`root/images/` when present (the shared LFW copy), else `root` itself."""
    root = Path(src_root)
    nested = root / "images"
    return nested if nested.is_dir() else root


def _plan(images_root: Path, dst_root: Path, force: bool,
          known: dict[str, str] | None) -> tuple[list[tuple[str, str]], int, list[Path]]:
    """(tasks still to do, total images, outputs skipped because they exist). With a journal
    (`known`), an output it does not list (written just before a kill) is aligned again, so that
    every skipped crop is counted."""
    index = ImageFolderIndex(images_root)
    tasks, skipped = [], []
    for paths in index.images.values():
        for src in paths:
            dst = output_path(src, images_root, dst_root)
            if not force and dst.is_file() and (known is None or dst.relative_to(dst_root).as_posix() in known):
                skipped.append(dst)
            else:
                tasks.append((str(src), str(dst)))
    return tasks, len(index), skipped


def _read_journal(path: Path) -> dict[str, str]:
    """crop path (relative to dst) -> method, from the journal; torn or foreign lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    methods = {}
    for line in text.splitlines():
        method, _, rel = line.partition("\t")
        if method in ("detector", "fallback") and rel:
            methods[rel] = method
    return methods


def _run_tasks(tasks: list[tuple[str, str]], workers: int):
    """Yield worker results in completion order, in-process when one worker is enough."""
    if workers <= 1 or len(tasks) < 2:
        yield from map(_align_file, tasks)
        return
    chunk = max(1, min(16, len(tasks) // (workers * 4)))
    # fork starts workers without re-importing torch; elsewhere the default method works too
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    pool = multiprocessing.get_context(method).Pool(workers, initializer=default_signals)
    try:
        yield from pool.imap_unordered(_align_file, tasks, chunksize=chunk)
        pool.close()  # normal end: workers leave on their own, no signal needed
    finally:
        pool.terminate()
        pool.join()


def align_folder(
    src_root: str | Path,
    dst_root: str | Path,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
    force: bool = False,
) -> AlignReport:
    """Align every `<identity>/<image>` under src_root into dst_root, resumably.

    Outputs that already exist are skipped (unless `force`), so a killed run continues where
    it stopped, and counted as the run that wrote them counted them (JOURNAL_NAME); unreadable
    images are counted, not fatal. The report is also written to `dst_root/align_report.json`.
    """
    images_root = images_root_of(src_root)
    dst_root = Path(dst_root)
    if dst_root.resolve() == images_root.resolve():
        raise DataError("destination must differ from the source folder", path=dst_root)
    if dst_root.exists() and not dst_root.is_dir():
        raise DataError("destination is a file, not a folder", path=dst_root)
    journal = dst_root / JOURNAL_NAME
    if force:
        journal.unlink(missing_ok=True)
    known = _read_journal(journal) if journal.is_file() else None  # None: crops of an older version, uncounted
    tasks, total, skipped_paths = _plan(images_root, dst_root, force, known)
    skipped = len(skipped_paths)
    report = AlignReport(source=str(Path(src_root)), destination=str(dst_root), total=total,
                         skipped_existing=skipped, workers=max(1, workers), aligned_now=len(tasks))
    for dst in skipped_paths:  # crops of an earlier run keep the method it counted them under
        method = (known or {}).get(dst.relative_to(dst_root).as_posix())
        if method:
            _tally(report, str(dst), method)
    start = time.perf_counter()
    done = skipped
    if progress:
        progress(done, total)
    if tasks:
        dst_root.mkdir(parents=True, exist_ok=True)
    for src, method, _faces in _run_tasks(tasks, workers):
        _tally(report, src, method)
        if method in ("detector", "fallback"):
            dst = output_path(Path(src), images_root, dst_root)
            append_line(journal, f"{method}\t{dst.relative_to(dst_root).as_posix()}")
        done += 1
        if progress:
            progress(done, total)
    report.elapsed_s = round(time.perf_counter() - start, 3)
    processed = len(tasks)
    report.images_per_s = round(processed / report.elapsed_s, 2) if report.elapsed_s > 0 else 0.0
    _write_report(report, dst_root)
    if processed and report.unreadable == processed and not skipped:
        raise DataError(f"none of the {processed} images could be read (e.g. {report.unreadable_paths[0]}); "
                        f"nothing aligned (see {dst_root / REPORT_NAME})", path=src_root)
    return report


def _tally(report: AlignReport, src: str, method: str) -> None:
    if method == "detector":
        report.detector += 1
    elif method == "fallback":
        report.fallback += 1
    else:
        report.unreadable += 1
        if len(report.unreadable_paths) < MAX_LISTED_UNREADABLE:
            report.unreadable_paths.append(src)


def _write_report(report: AlignReport, dst_root: Path) -> None:
    with atomic_path(dst_root / REPORT_NAME) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
