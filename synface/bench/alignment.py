"""`python -m synface bench alignment`: are renders framed like real aligned crops?

Why: real crops are aligned by dlib's detector and 68-point predictor (`synface.data.align`),
renders by the renderer's own landmarks and calibration. Running the real pipeline again on each
112x112 crop (`synface.data.crop_framing`) gives the similarity it would apply to bring the crop
onto the template: a real crop comes back close to the identity; a render framed differently
does not, and a recogniser trained on it sees faces at another size and place than at test time.
The figures: the pipeline's scale (> 1: it would zoom in, the face is small), rotation, the eye
midpoint's shift from the template's, the eye spacing and eye-to-mouth distance relative to the
template's, over renders under the default attribute prior and a frontal set (the same people and
attributes with the pose at zero), and over a folder of real crops beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from synface.bench.realism import RENDER_CHUNK
from synface.data.crop_framing import CropFraming, crop_framing
from synface.data.errors import DataError
from synface.data.imagefolder import ImageFolderIndex
from synface.data.imageio import read_rgb
from synface.generator import FaceGenerator

CROP_SIZE = 112
#: the real crops measured at most, evenly spaced over the sorted folder
DEFAULT_REAL_MAX = 3000
FIGURES = ("scale", "rotation_deg", "eye_shift_x", "eye_shift_y", "eye_shift", "eye_spacing", "mouth_eye")

Progress = Callable[[int, int], None]


def framing_summary(framings: list[CropFraming | None]) -> dict:
    """Mean, std and median of each figure over the crops with a face, the count without one, and
    the length of the mean eye-midpoint shift (the bar: a bias, not the per-crop scatter)."""
    found = [f for f in framings if f is not None]
    record: dict = {"crops": len(framings), "no_face": len(framings) - len(found)}
    if not found:
        return record
    for name in FIGURES:
        values = np.array([getattr(f, name) for f in found], dtype=np.float64)
        record[name] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
                        "median": round(float(np.median(values)), 4)}
    record["mean_eye_shift"] = round(float(np.hypot(record["eye_shift_x"]["mean"], record["eye_shift_y"]["mean"])), 4)
    return record


def real_crop_paths(root: str | Path, limit: int = DEFAULT_REAL_MAX) -> list[Path]:
    """Up to `limit` crops of an identity-per-folder set (as `python -m synface align` writes),
    evenly spaced over its sorted files."""
    if limit < 1:
        raise ValueError(f"--real-max must be >= 1, got {limit}")
    files = [path for paths in ImageFolderIndex(root).images.values() for path in paths]
    if len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def _real_crop(path: Path) -> np.ndarray:
    image = np.asarray(read_rgb(path, "aligned crop"))
    if image.shape[:2] != (CROP_SIZE, CROP_SIZE):
        raise DataError(f"is {image.shape[1]}x{image.shape[0]}, expected an aligned {CROP_SIZE}x{CROP_SIZE} crop "
                        f"(make them with `python -m synface align`)", path=path)
    return image


def bench_alignment(model: str | None = None, workspace: str | None = None, renders: int = 300, seed: int = 0,
                    real: str | Path | None = None, real_max: int = DEFAULT_REAL_MAX, device: str = "auto",
                    progress: Progress | None = None, context: str = "plain") -> dict:
    """One JSON-ready record (module docstring); `model` names a learned face model of the
    workspace (default: the built-in head); `context` "photo" or "background" draws the renders
    into its context photos."""
    from synface.data.contexts import image_renderer  # noqa: PLC0415
    from synface.face.catalog import load_model  # noqa: PLC0415

    if renders < 1:
        raise ValueError(f"--renders must be >= 1, got {renders}")
    real_paths = real_crop_paths(real, real_max) if real is not None else []
    gen = FaceGenerator(device=device, model=load_model(model, workspace))
    if gen.image_size != CROP_SIZE:
        raise ValueError(f"the generator renders {gen.image_size} px crops, the bench measures {CROP_SIZE} px ones")
    draw = image_renderer(gen, context, seed)
    tick = progress or (lambda done, total: None)
    total = 2 * renders + len(real_paths)
    done = 0
    tick(done, total)
    default = gen.sample(renders, seed)
    sets = {"default_prior": default, "frontal": default.replace(pose=default.pose * 0)}
    record: dict = {
        "bench": "alignment", "model": model or "builtin", "generator": gen.version,
        "alignment_calibration": gen.pipeline.alignment_calibration.version,
        "pipeline": "synface.data.align: dlib HOG (a plain pass, then one upsampled pass) -> 68 points -> ArcFace 5",
        "renders": renders, "seed": seed, "context": context,
    }
    for name, coeffs in sets.items():
        framings: list[CropFraming | None] = []
        for start in range(0, renders, RENDER_CHUNK):
            for image in draw(coeffs[start:start + RENDER_CHUNK]):
                framings.append(crop_framing(image))
                done += 1
                tick(done, total)
        record[name] = framing_summary(framings)
    if real is not None:
        framings = []
        for path in real_paths:
            framings.append(crop_framing(_real_crop(path)))
            done += 1
            tick(done, total)
        record["real"] = {"folder": str(real), **framing_summary(framings)}
    return record
