"""Hostile inputs the tests share: image files whose header alone is a decompression bomb."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG of a few dozen bytes whose header declares `width` x `height` RGB pixels (its image
    data is a stub: only decoding would notice)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def write_bomb(path: Path, width: int = 20000, height: int = 20000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bomb_png(width, height))
    return path


def write_model_folder(workspace: Path, name: str, people: int = 4, photos: int = 6, seed: int = 0,
                       source_people: list[str] | None = None) -> Path:
    """A learned model folder that passes the check (synface.face.model_files) without a fit: arrays
    of the declared shapes filled with random in-range values, its card and its source index. What
    it renders is noise; what the tests need is a folder every reader accepts, to damage one file
    or key at a time. `people`: the bank's size; `source_people`: the card's names (default
    Person_0.. as many as the bank)."""
    import json

    import numpy as np

    from synface.face.builtin import GENERATOR_MODEL_VERSION, BuiltinFaceModel
    from synface.face.learned import model_arrays, save_textures
    from synface.face.model_files import model_version

    base = BuiltinFaceModel()
    rng = np.random.default_rng(seed)
    S, V, R, side = base.layout.shape, base.num_vertices, 4, 16
    regions = np.zeros((R, side * side))
    regions[rng.integers(0, R, side * side), np.arange(side * side)] = 1.0
    textures = rng.integers(0, 256, (people, side, side, 3), dtype=np.uint8)
    arrays = model_arrays(rng.normal(0, 0.3, S), rng.normal(0, 0.1, (S, S)), rng.choice(V, 68, replace=False), regions,
                          rng.uniform(0, 1, (people, 3)), np.ones((R, people), bool), textures,
                          base.alignment_calibration)
    folder = workspace / "face_models" / name
    folder.mkdir(parents=True)
    np.savez(folder / "model.npz", **arrays)
    save_textures(folder / "textures.npy", textures)
    names = list(source_people) if source_people is not None else [f"Person_{k}" for k in range(people)]
    np.savez(folder / "sources.npz", descriptors=rng.normal(0, 0.1, (photos, 128)).astype(np.float32),
             person=np.arange(photos) % len(names), bank_person=np.arange(people) % len(names))
    card = {"name": name, "kind": "learned", "builtin_version": GENERATOR_MODEL_VERSION,
            "version": model_version(name, arrays), "regions": ["head", "eyes_brows", "nose", "mouth_chin"],
            "source_people": names, "people_fitted": len(names), "bank_people": people,
            "shape_components": S, "texture_size": side, "genuine_threshold": 0.6, "created": "2026-01-01T00:00:00+00:00"}
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    (folder / "no_face.txt").write_text("")
    return folder
