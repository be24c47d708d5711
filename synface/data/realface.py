"""dlib's real-photograph face tools: HOG detector, 5-point landmarks, 128-D descriptor.

The weights ship inside the `face_recognition_models` wheel. That package imports
`pkg_resources` on import, which recent setuptools no longer provides, so its files are located
with importlib's spec lookup, which does not execute the package.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: dlib's own verification threshold on descriptor distance (face_recognition_models' docs)
DLIB_THRESHOLD = 0.6


class RealFaceToolsMissing(RuntimeError):
    """dlib-bin or face_recognition_models is not installed."""


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RealFaceToolsMissing("face_recognition_models is not installed: pip install -r requirements.txt")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not folder.is_dir():
        raise RealFaceToolsMissing(f"face_recognition_models has no models folder at {folder}")
    return folder


@dataclass
class DlibTools:
    detector: Any  # dlib's objects (dlib has no type information)
    shape5: Any
    recognizer: Any


@lru_cache(maxsize=1)
def dlib_tools() -> DlibTools:
    """Load the detector, the 5-point predictor and the descriptor network once per process."""
    try:
        import dlib  # noqa: PLC0415  (optional heavy import)
    except ImportError as exc:
        raise RealFaceToolsMissing("dlib is not installed: pip install dlib-bin") from exc
    folder = models_dir()
    return DlibTools(
        detector=dlib.get_frontal_face_detector(),
        shape5=dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        recognizer=dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def detect_faces(image: np.ndarray, upsample: int = 1) -> list:
    """dlib rectangles of the faces in an (H,W,3) uint8 RGB image."""
    return list(dlib_tools().detector(np.ascontiguousarray(image), upsample))


def descriptor(image: np.ndarray, rect=None) -> np.ndarray:
    """128-D dlib descriptor of the face in `rect` (the whole image when None)."""
    import dlib  # noqa: PLC0415

    tools = dlib_tools()
    image = np.ascontiguousarray(image)
    if rect is None:
        h, w = image.shape[:2]
        rect = dlib.rectangle(0, 0, w - 1, h - 1)
    shape = tools.shape5(image, rect)
    return np.asarray(tools.recognizer.compute_face_descriptor(image, shape), dtype=np.float32)


def five_points(image: np.ndarray, rect) -> np.ndarray:
    """(5,2) dlib 5-point landmarks: two corners of each eye and the nose base."""
    shape = dlib_tools().shape5(np.ascontiguousarray(image), rect)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float32)


def detector_view(image: np.ndarray, upscale: int = 2, margin: float = 0.25) -> np.ndarray:
    """How renders are shown to dlib's HOG detector: upscaled, with an edge-replicated margin.

    A 112x112 aligned crop is smaller (about 80 px of face) than HOG's 80x80 window needs and has
    no context around the face; real aligned datasets are cropped the same way, so the detector
    sees each render as a photo would be before cropping.
    """
    from PIL import Image  # noqa: PLC0415

    size = image.shape[0] * upscale
    big = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    pad = int(size * margin)
    return np.pad(big, ((pad, pad), (pad, pad), (0, 0)), mode="edge")


def aligned_descriptor(image: np.ndarray) -> np.ndarray:
    """dlib's descriptor of an aligned 112x112 crop, upscaled 2x without a margin: the one protocol
    the realism benchmarks and the Features page share, so their distances are comparable."""
    return descriptor(detector_view(image, upscale=2, margin=0.0))
