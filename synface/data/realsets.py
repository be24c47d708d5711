"""The registry of real face sets a workspace knows about (`<workspace>/real_sets.json`).

Real data arrives in many shapes (an identity-per-folder tree, an LFW download with pairs.txt,
an insightface verification `.bin`, a RecordIO `train.rec`/`train.idx`). The app and the CLI
register a set once: its format is detected, image folders are aligned to the ArcFace template
into `<workspace>/real/<name>/` (so real and synthetic crops match), and the counts are recorded.
Training and evaluation then refer to a set by name. No Streamlit here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from synface.base.files import atomic_path
from synface.base.names import child_path
from synface.base.workspace import workspace_root
from synface.data.errors import DataError
from synface.data.imagefolder import IMAGE_EXTENSIONS, ImageFolderIndex

__all__ = ["RealSet", "detect_format", "register_real_set", "list_real_sets", "get_real_set",
           "remove_real_set", "registry_path", "FORMATS"]

REGISTRY = "real_sets.json"
#: format id -> what the app shows
FORMATS = {
    "imagefolder": "ImageFolder (<identity>/<image>)",
    "lfw": "LFW layout (images + pairs.txt / people.txt)",
    "bin": "insightface verification .bin",
    "recordio": "insightface RecordIO (train.rec + train.idx)",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class RealSet:
    """One registered set; `train_root` is the ImageFolder a training run can read (or None)."""

    name: str
    source: str
    format: str
    identities: int = 0
    images: int = 0
    pairs: int = 0
    aligned: str | None = None
    align_report: dict[str, Any] = field(default_factory=dict)
    registered: str = ""
    pairs_file: str | None = None

    @property
    def train_root(self) -> str | None:
        """The aligned copy when there is one, else an ImageFolder source as it is."""
        if self.aligned:
            return self.aligned
        return self.source if self.format in ("imagefolder", "lfw") else None

    @property
    def can_verify(self) -> bool:
        """True for sets with verification pairs (LFW layout with pairs.txt, or .bin)."""
        return self.format == "bin" or (self.format == "lfw" and self.pairs_file is not None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- detection


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()
               if not p.name.startswith("."))


def detect_format(path: str | Path) -> str:
    """'imagefolder', 'lfw', 'bin' or 'recordio'; a DataError that says what is wrong otherwise."""
    raw = str(path).strip()
    if not raw:
        raise DataError("no path given: enter a folder or a file path")
    p = Path(raw).expanduser()
    if not p.exists():
        raise DataError("path does not exist", path=p)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".bin":
            return "bin"
        if suffix in (".rec", ".idx"):
            rec, idx = p.with_suffix(".rec"), p.with_suffix(".idx")
            if not (rec.is_file() and idx.is_file()):
                raise DataError(f"RecordIO needs both {rec.name} and {idx.name} side by side", path=p.parent)
            return "recordio"
        raise DataError(f"unsupported file type '{suffix or p.name}': give a folder, a .bin, or a train.rec", path=p)
    if (p / "train.rec").is_file():
        if not (p / "train.idx").is_file():
            raise DataError("train.rec found but train.idx is missing", path=p)
        return "recordio"
    if (p / "pairs.txt").is_file() or (p / "people.txt").is_file():
        images = p / "images" if (p / "images").is_dir() else p
        if not any(d.is_dir() and _has_images(d) for d in images.iterdir()):
            raise DataError(f"pairs.txt/people.txt found but no images found under {images}", path=p)
        return "lfw"
    subdirs = [d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if any(_has_images(d) for d in subdirs):
        return "imagefolder"
    if _has_images(p):
        raise DataError("images lie directly in this folder; an ImageFolder needs one subfolder per identity", path=p)
    raise DataError(f"no images found under {p} (expected <identity>/<image> folders, an LFW copy, .bin or train.rec)",
                    path=p)


def _counts(path: Path, fmt: str) -> dict[str, Any]:
    """Identities, images, pairs (and the pairs file) of a source in a detected format."""
    if fmt == "bin":
        from synface.data.verification_bin import read_bin

        pairs = read_bin(path)
        return {"pairs": len(pairs), "images": 2 * len(pairs)}
    if fmt == "recordio":
        from synface.data.recordio import RecordReader

        rec = path if path.is_file() else path / "train.rec"
        reader = RecordReader(rec.with_suffix(".rec"), rec.with_suffix(".idx"))
        ids = len(reader.identity_ranges) if reader.identity_ranges is not None else 0
        return {"images": len(reader.image_keys), "identities": ids}
    if fmt == "lfw":
        from synface.data.lfw import LFWLayout, read_pairs

        layout = LFWLayout(path)
        index = ImageFolderIndex(layout.images_root)
        out: dict[str, Any] = {"identities": index.num_identities, "images": len(index)}
        if layout.pairs_file.is_file():
            out["pairs"] = len(read_pairs(layout.pairs_file))
            out["pairs_file"] = str(layout.pairs_file)
        return out
    index = ImageFolderIndex(path)
    return {"identities": index.num_identities, "images": len(index)}


# ----------------------------------------------------------------------------- the registry


def registry_path(root: str | Path | None = None) -> Path:
    return workspace_root(root) / REGISTRY


@contextlib.contextmanager
def _locked(root: str | Path | None) -> Iterator[Path]:
    """Serialise read-modify-write of the registry between the app and CLI processes."""
    path = registry_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{REGISTRY}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable registry ({exc}); fix or delete it", path=path) from None
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _from_dict(d: dict[str, Any]) -> RealSet:
    known = set(RealSet.__dataclass_fields__)
    return RealSet(**{k: v for k, v in d.items() if k in known})


def list_real_sets(root: str | Path | None = None) -> list[RealSet]:
    """Every registered set, by name."""
    data = _read(registry_path(root))
    return [_from_dict(data[k]) for k in sorted(data)]


def get_real_set(name: str, root: str | Path | None = None) -> RealSet:
    data = _read(registry_path(root))
    if name not in data:
        raise DataError(f"no real set named {name!r}; registered: {', '.join(sorted(data)) or 'none'}")
    return _from_dict(data[name])


def remove_real_set(name: str, root: str | Path | None = None) -> None:
    """Forget a set (its aligned copy stays on disk)."""
    with _locked(root) as path:
        data = _read(path)
        data.pop(name, None)
        _write(path, data)


def default_set_name(path: str | Path) -> str:
    p = Path(str(path).strip()).expanduser()
    base = p.parent.name if p.is_file() and p.name in ("train.rec", "train.idx") else (p.stem or p.name)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.")
    return slug[:64] or "real"


def register_real_set(path: str | Path, name: str | None = None, align: bool = True,
                      progress: Callable[[int, int], None] | None = None, root: str | Path | None = None,
                      workers: int = 2, replace: bool = False) -> RealSet:
    """Detect the format, count, align image folders into `<workspace>/real/<name>/`, record it.

    .bin and RecordIO sets are insightface's already-aligned 112x112 crops and are not re-aligned.
    Alignment is resumable (existing outputs are kept), so re-registering after an interruption
    only aligns what is missing.
    """
    fmt = detect_format(path)
    src = Path(str(path).strip()).expanduser().resolve()
    name = (name or "").strip() or default_set_name(src)
    if not _NAME.match(name):
        raise DataError(f"set name {name!r} must be 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)")
    existing = {s.name: s for s in list_real_sets(root)}
    if name in existing and not replace and Path(existing[name].source) != src:
        raise DataError(f"a real set named {name!r} already exists (from {existing[name].source}); choose another name")
    counts = _counts(src, fmt)
    entry = RealSet(name=name, source=str(src), format=fmt, identities=int(counts.get("identities", 0)),
                    images=int(counts.get("images", 0)), pairs=int(counts.get("pairs", 0)),
                    pairs_file=counts.get("pairs_file"), registered=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if align and fmt in ("imagefolder", "lfw"):
        from synface.data.align import align_folder

        dst = child_path(workspace_root(root) / "real", name, "real set name")
        report = align_folder(src, dst, progress=progress, workers=workers)
        entry.aligned = str(dst)
        entry.align_report = report.to_dict()
    with _locked(root) as reg:
        data = _read(reg)
        data[name] = entry.to_dict()
        _write(reg, data)
    return entry
