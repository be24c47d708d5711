"""What a learned face model's folder holds, declared once, and the one check every reader uses.

A learned model folder (`face_models/<name>/`) holds `model.npz` (the arrays that render),
`textures.npy` (the bank's texture maps, memory-mapped), `sources.npz` (the source photos'
descriptors, for the privacy checks) and `card.json` (how it was fitted).
Every one of them is untrusted: a copied, hand-edited or damaged folder must give one message
naming the file and the key, never a traceback, a hang or a garbage render. So the files are
described here as data: each array's dtype kinds, dimensions (fixed, or a size shared with other
arrays) and value range, each card key's type and rule, and the bound of every size a file can
declare. Changing the format is changing a row.

`read_model_folder` checks a folder against the tables in this order, so nothing large is read
before its size is known to be bounded: the card (a regular file of at most MAX_CARD_BYTES); each
`.npz` member's header (dtype and shape, read without its data) against ARRAY_SPECS, the sizes
the arrays share and SIZE_BOUNDS; only then the data (finite, in range) and the rules that tie
values together (the card's version is the arrays' digest; the texture file is the one the model
file's digest names, `learned_bank.read_textures`). Every problem found is named in the
one message. The model list, `face-model show`, the app's picker and generation all call it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np

from synface.base.files import open_regular
from synface.face.learned_bank import MAX_PEOPLE, MAX_SIZE, MIN_SIZE, TextureFileError, read_textures
from synface.render.alignment_calibration import AXES, FEATURES, LANDMARKS

MODEL_FILE = "model.npz"
TEXTURE_FILE = "textures.npy"
CARD_FILE = "card.json"
SOURCES_FILE = "sources.npz"
NO_FACE_FILE = "no_face.txt"
#: bump when the file layout changes; older files are refused with a named error
LEARNED_FORMAT = 3
#: how a model of an older format is refitted
REFIT_HINT = "fit it again: python -m synface face-model fit --photos DIR --name NAME"
#: people a reflectance bank may hold (`face-model fit --bank` is refused above it)
MAX_BANK_PEOPLE = MAX_PEOPLE
#: the most a card may weigh, and the most the arrays of one .npz file may decode to
MAX_CARD_BYTES = 1 << 20
MAX_FILE_ARRAY_BYTES = 512 << 20
#: problems one message lists (then "and N more")
SHOWN_PROBLEMS = 6


class FaceModelError(ValueError):
    """A learned face model that cannot be used: missing, partial, corrupt, hostile or from another version."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of a model file. `kinds`: the numpy dtype kinds allowed ("f" float, "i"/"u"
    integer, "b" bool). `dims`: per dimension a fixed length or the name of a size shared with
    other arrays (SIZE_BOUNDS). `low`/`high`: inclusive value bounds (floats must be finite too);
    `below`: integers must index into that size (0 <= value < size)."""

    kinds: str
    dims: tuple[int | str, ...]
    low: float | None = None
    high: float | None = None
    below: str | None = None


#: sizes the arrays share. S (the built-in head's shape coefficients) and V (its vertices) come
#: from the head; the others are read from the files: (smallest, largest) allowed
SIZE_BOUNDS: dict[str, tuple[int, int]] = {
    "P": (2, MAX_BANK_PEOPLE),  # bank people
    "R": (1, 64),  # facial regions of the mosaic
    "TT": (MIN_SIZE**2, MAX_SIZE**2),  # texels of a texture map (its side squared: textures.npy)
    "K": (1, 512),  # learned shape directions
    "F": (1, 100_000),  # source people (the card's source_people)
    "N": (1, 1_000_000),  # source photos with a face
}

ARRAY_SPECS: dict[str, dict[str, ArraySpec]] = {
    MODEL_FILE: {
        "format": ArraySpec("iu", (1,)),
        "shape_mean": ArraySpec("f", ("S",), -100.0, 100.0),
        "shape_components": ArraySpec("f", ("K", "S"), -100.0, 100.0),
        "landmarks68": ArraySpec("iu", (68,), 0, below="V"),
        "regions": ArraySpec("f", ("R", "TT"), 0.0, 1.0),
        "tones": ArraySpec("f", ("P", 3), 0.0, 1.0),
        "eligible": ArraySpec("b", ("R", "P")),
        "texture_digest": ArraySpec("u", (32,)),
        "alignment": ArraySpec("f", (LANDMARKS, AXES, len(FEATURES)), -10.0, 10.0),
    },
    SOURCES_FILE: {
        "descriptors": ArraySpec("f", ("N", 128), -10.0, 10.0),
        "person": ArraySpec("iu", ("N",), 0, below="F"),
        "bank_person": ArraySpec("iu", ("P",), 0, below="F"),
    },
}


@dataclass(frozen=True)
class CardKey:
    """One key of card.json. `types`: the JSON types allowed (bool is never an int here).
    `items`: lists hold only this type. `size`: a list's length, or an int's value, is that shared
    size. `low`/`high`: inclusive bounds of a number (which must be finite)."""

    types: tuple[type, ...]
    required: bool = False
    items: type | None = None
    size: str | None = None
    low: float | None = None
    high: float | None = None


_NUMBER = (int, float)
CARD_KEYS: dict[str, CardKey] = {
    "name": CardKey((str,), True),
    "kind": CardKey((str,), True),
    "builtin_version": CardKey((str,), True),
    "version": CardKey((str,), True),
    "regions": CardKey((list,), True, items=str, size="R"),
    "source_people": CardKey((list,), True, items=str, size="F"),
    "people_fitted": CardKey((int,), True, size="F"),
    "bank_people": CardKey((int,), size="P"),
    "shape_components": CardKey((int,), size="K"),
    "texture_size": CardKey((int,), low=MIN_SIZE, high=MAX_SIZE),
    "framing": CardKey((dict,)),
    "genuine_threshold": CardKey(_NUMBER, True, low=1e-6, high=4.0),
    "source": CardKey((str,)),
    "photo_root": CardKey((str,)),
    "contexts": CardKey((int,), low=0),
    "folds": CardKey((list, type(None)), items=int),
    "people_listed": CardKey((int,), low=0),
    "people_without_photos": CardKey((list,), items=str),
    "people_without_photos_count": CardKey((int,), low=0),
    "images_listed": CardKey((int,), low=0),
    "images_fitted": CardKey((int,), low=0),
    "images_without_face": CardKey((int,), low=0),
    "images_unreadable": CardKey((int,), low=0),
    "file_list_sha256": CardKey((str,)),
    "landmarks": CardKey((str,)),
    "landmark_vertex_residual_px": CardKey(_NUMBER, low=0.0),
    "fit_error_iod_median": CardKey(_NUMBER, low=0.0),
    "fit_error_iod_p90": CardKey(_NUMBER, low=0.0),
    "region_people": CardKey((dict,)),
    "genuine_threshold_from": CardKey((str,)),
    "stranger_nearest_p01": CardKey(_NUMBER, low=0.0),
    "strangers_under_genuine_threshold": CardKey(_NUMBER, low=0.0, high=1.0),
    "created": CardKey((str,)),
}


@dataclass
class ModelFiles:
    """A checked model folder: its card, the arrays of model.npz and sources.npz, and the texture
    maps (memory-mapped, read-only)."""

    folder: Path
    card: dict[str, Any]
    arrays: dict[str, np.ndarray]
    sources: dict[str, np.ndarray]
    textures: np.ndarray


def model_version(name: str, arrays: Mapping[str, np.ndarray]) -> str:
    """Names a model's pixels: its name and a digest of its arrays (the textures' digest among them)."""
    digest = hashlib.sha256()
    for key in sorted(ARRAY_SPECS[MODEL_FILE]):
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return f"learned-{name}-{digest.hexdigest()[:12]}"


_JSON_NAMES = {str: "string", list: "list", int: "integer", float: "number", dict: "object", type(None): "null"}


def _type_name(value: Any) -> str:
    """'a string', 'an integer', 'null' (how a message names a JSON value's type)."""
    name = _JSON_NAMES.get(type(value), type(value).__name__)
    return name if value is None else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _bind(sizes: dict[str, int], name: str, value: int, where: str, problems: list[str]) -> bool:
    """Record shared size `name` = `value` (first sighting: checked against SIZE_BOUNDS), or check
    it against the value seen before. False (with a problem) when it does not fit."""
    if name in sizes:
        if sizes[name] != value:
            problems.append(f"{where} gives {name}={value:,}, elsewhere {name}={sizes[name]:,}")
            return False
        return True
    low, high = SIZE_BOUNDS[name]
    if not low <= value <= high:
        problems.append(f"{where} gives {name}={value:,}, outside {low}..{high:,}")
        return False
    sizes[name] = value
    return True


def check_card(card: Any, sizes: dict[str, int], problems: list[str]) -> None:
    """Every CARD_KEYS key of `card`: present when required, of its type, its items' type, its
    size and range. Problems are appended as "card.json 'key': why"."""
    if not isinstance(card, dict):
        problems.append(f"{CARD_FILE} holds {_type_name(card)}, not a JSON object")
        return
    missing = [key for key, spec in CARD_KEYS.items() if spec.required and key not in card]
    if missing:
        problems.append(f"{CARD_FILE} lacks {', '.join(map(repr, missing))}")
    for key, spec in CARD_KEYS.items():
        where = f"{CARD_FILE} {key!r}"
        if key not in card:
            continue
        value = card[key]
        if not _is(value, spec.types):
            problems.append(f"{where} is {_type_name(value)}, expected {' or '.join(_JSON_NAMES[t] for t in spec.types)}")
            continue
        if isinstance(value, list) and spec.items is not None:
            wrong = next((i for i, item in enumerate(value) if not _is(item, (spec.items,))), None)
            if wrong is not None:
                problems.append(f"{where}[{wrong}] is {_type_name(value[wrong])}, expected {_JSON_NAMES[spec.items]}")
                continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or (spec.low is not None and value < spec.low) or \
                    (spec.high is not None and value > spec.high):
                problems.append(f"{where} is {value!r}, expected a finite number in "
                                f"{'-inf' if spec.low is None else spec.low}..{'inf' if spec.high is None else spec.high}")
                continue
        if spec.size is not None:
            _bind(sizes, spec.size, len(value) if isinstance(value, list) else int(value), where, problems)


def _member_headers(handle: BinaryIO, file: str, problems: list[str]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) of every array in an .npz, from each member's .npy header alone."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zipfile.ZipFile(handle) as archive:
        members = archive.infolist()
        if len(members) > 64:
            problems.append(f"{file} holds {len(members)} members; a model file holds a few arrays")
            return {}
        for info in members:
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if name is None:
                problems.append(f"{file} member {info.filename[:80]!r} is not an array")
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    problems.append(f"{file} {name!r}: .npy format {version} is not read")
                    continue
            headers[name] = (tuple(int(n) for n in shape), dtype)
    return headers


def _check_headers(file: str, headers: Mapping[str, tuple[tuple[int, ...], np.dtype]], sizes: dict[str, int],
                   problems: list[str]) -> None:
    """dtype kind, dimensions and shared sizes of every declared array, and their total bytes."""
    total = 0
    for name, spec in ARRAY_SPECS[file].items():
        where = f"{file} {name!r}"
        if name not in headers:
            problems.append(f"{where} is missing")
            continue
        shape, dtype = headers[name]
        if dtype.kind not in spec.kinds or dtype.hasobject or dtype.fields is not None:
            problems.append(f"{where} has dtype {dtype}, expected {'/'.join(_KIND_NAMES[k] for k in spec.kinds)}")
            continue
        if len(shape) != len(spec.dims):
            problems.append(f"{where} has {len(shape)} dimensions {shape}, expected {len(spec.dims)} "
                            f"({', '.join(map(str, spec.dims))})")
            continue
        for axis, (length, want) in enumerate(zip(shape, spec.dims)):
            if isinstance(want, int):
                if length != want:
                    problems.append(f"{where} dimension {axis} is {length}, expected {want}")
                    break
            elif not _bind(sizes, want, length, f"{where} dimension {axis}", problems):
                break
        else:
            total += math.prod(shape) * dtype.itemsize
    if total > MAX_FILE_ARRAY_BYTES:
        problems.append(f"{file} declares {total:,} bytes of arrays, more than {MAX_FILE_ARRAY_BYTES:,}")


_KIND_NAMES = {"f": "float", "i": "integer", "u": "unsigned integer", "b": "bool"}


def _check_values(file: str, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int], problems: list[str]) -> None:
    for name, spec in ARRAY_SPECS[file].items():
        array = arrays[name]
        where = f"{file} {name!r}"
        if array.size == 0:
            continue
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            problems.append(f"{where} holds NaN or infinite values")
            continue
        high = spec.high if spec.below is None else sizes[spec.below] - 1
        low, top = array.min(), array.max()
        if (spec.low is not None and low < spec.low) or (high is not None and top > high):
            problems.append(f"{where} spans {low:.4g}..{top:.4g}, outside "
                            f"{'-inf' if spec.low is None else spec.low}..{'inf' if high is None else high}")


def _read_npz(folder: Path, file: str, sizes: dict[str, int], problems: list[str]) -> dict[str, np.ndarray]:
    """The arrays of `folder/file` once their headers passed (else {} with the problems noted)."""
    path = folder / file
    found = len(problems)
    try:
        with open_regular(path) as handle:
            headers = _member_headers(handle, file, problems)
            _check_headers(file, headers, sizes, problems)
            if len(problems) > found:
                return {}
            handle.seek(0)
            with np.load(handle, allow_pickle=False) as data:
                arrays = {name: data[name] for name in ARRAY_SPECS[file]}
    except FileNotFoundError:
        problems.append(f"no {file}")
        return {}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        problems.append(f"{file} is unreadable ({str(exc)[:200]})")
        return {}
    _check_values(file, arrays, sizes, problems)
    return arrays if len(problems) == found else {}


def _read_card(folder: Path, problems: list[str]) -> Any:
    try:
        with open_regular(folder / CARD_FILE, MAX_CARD_BYTES) as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        problems.append(f"no {CARD_FILE}")
    except (OSError, ValueError) as exc:  # a FIFO, a link, too large, not UTF-8, not JSON
        problems.append(f"{CARD_FILE} is unreadable ({str(exc)[:200]})")
    return None


def _fail(folder: Path, problems: list[str]) -> FaceModelError:
    shown = problems[:SHOWN_PROBLEMS]
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return FaceModelError(f"{folder}: " + "; ".join(shown) + more)


def read_model_folder(folder: str | Path, head_sizes: Mapping[str, int], head_version: str) -> ModelFiles:
    """The checked card and arrays of model folder `folder`, or one FaceModelError naming every
    problem (file and key). `head_sizes`: the built-in head's sizes the arrays must match ({"S":
    shape coefficients, "V": vertices}); `head_version`: the built-in head a model must have been
    fitted to. A folder that is a link, and files that are links, FIFOs or devices, are refused
    before they are opened."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise FaceModelError(f"{folder}: not a model folder ({'a link' if folder.is_symlink() else 'no such folder'})")
    if not os.path.lexists(folder / MODEL_FILE):
        raise FaceModelError(f"{folder}: no {MODEL_FILE} (the fit did not finish, or this is not a face model folder)")
    problems: list[str] = []
    sizes = dict(head_sizes)
    card = _read_card(folder, problems)
    if not problems:
        check_card(card, sizes, problems)
    card_ok = not problems
    if card_ok and card["builtin_version"] != head_version:
        raise FaceModelError(f"{folder}: fitted to built-in head {card['builtin_version']!r}, this is {head_version!r}; "
                             f"{REFIT_HINT}")
    if card_ok and card["kind"] != "learned":
        problems.append(f"{CARD_FILE} 'kind' is {card['kind']!r}, expected 'learned'")
    arrays = _read_npz(folder, MODEL_FILE, sizes, problems)
    if arrays and int(arrays["format"][0]) != LEARNED_FORMAT:
        raise FaceModelError(f"{folder / MODEL_FILE}: model format {int(arrays['format'][0])}, this version reads format "
                             f"{LEARNED_FORMAT} (texture maps); {REFIT_HINT}")
    textures = _read_textures(folder, arrays, sizes, problems) if arrays else None
    sources = _read_npz(folder, SOURCES_FILE, sizes, problems) if arrays and card_ok else {}
    if arrays:
        empty = np.flatnonzero(arrays["eligible"].sum(1) == 0)
        if len(empty):
            problems.append(f"{MODEL_FILE} 'eligible': region {int(empty[0])} has no bank person to draw from")
    if arrays and card_ok and card["version"] != model_version(card["name"], arrays):
        problems.append(f"{CARD_FILE} 'version' {card['version'][:80]!r} does not describe this {MODEL_FILE} "
                        f"({model_version(card['name'], arrays)}): an interrupted or mixed refit; fit the model again")
    if problems:
        raise _fail(folder, problems)
    return ModelFiles(folder, card, arrays, sources, textures)  # type: ignore[arg-type]  # no textures: a problem above


def _read_textures(folder: Path, arrays: Mapping[str, np.ndarray], sizes: dict[str, int],
                   problems: list[str]) -> np.ndarray | None:
    """The texture maps the model file's digest names (header, size and bytes checked, then
    memory-mapped), their people and side tied to the arrays' sizes."""
    try:
        textures = read_textures(folder / TEXTURE_FILE, arrays["texture_digest"], people=sizes["P"])
    except TextureFileError as exc:
        problems.append(f"{TEXTURE_FILE}: {str(exc).removeprefix(str(folder / TEXTURE_FILE) + ': ')}")
        return None
    side = textures.shape[1]
    if sizes.get("TT") != side * side:
        problems.append(f"{MODEL_FILE} 'regions' covers {sizes.get('TT'):,} texels, the textures {side} x {side}")
    return textures
