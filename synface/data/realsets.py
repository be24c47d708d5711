"""The registry of real face sets a workspace knows about (`<workspace>/real_sets.json`).

Real data arrives in many shapes (an identity-per-folder tree, an LFW download with pairs.txt,
an insightface verification `.bin`, a RecordIO `train.rec`/`train.idx`). The app and the CLI
register a set once: its format is detected, image folders are aligned to the ArcFace template
into `<workspace>/real/<name>/` (so real and synthetic crops match), and the counts are recorded.
Training and evaluation then refer to a set by name. No Streamlit here.

An LFW copy is both a training and a test set, so registering one says which people.txt folds
train (`train_folds`): their people become `<workspace>/real_train/<name>/` (links to the image
folders, nothing copied), the set's `train_root`, and its evaluation scores only the pairs of the
other folds. Every `.bin` and every LFW copy with test pairs is a verification set, offered to
every run (`verification_sets`, `eval_specs`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from synface.base.files import atomic_path, locked, utc_now
from synface.base.names import child_path
from synface.base.workspace import workspace_root
from synface.data.errors import DataError
from synface.data.imagefolder import IMAGE_EXTENSIONS, ImageFolderIndex

__all__ = ["RealSet", "detect_format", "register_real_set", "list_real_sets", "get_real_set",
           "remove_real_set", "registry_path", "FORMATS", "lfw_fold_count", "parse_train_folds",
           "verification_sets", "eval_specs"]

REGISTRY = "real_sets.json"
#: <workspace>/TRAIN_VIEWS/<name>/: the training people of a registered LFW copy (links)
TRAIN_VIEWS = "real_train"
#: format id -> what the app shows
FORMATS = {
    "imagefolder": "ImageFolder (<identity>/<image>)",
    "lfw": "LFW layout (images + pairs.txt / people.txt)",
    "bin": "insightface verification .bin",
    "recordio": "insightface RecordIO (train.rec + train.idx)",
    "ijb": "IJB-B/C 1:1 verification (insightface layout: meta/ + loose_crop/)",
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
    #: LFW: the 0-based people.txt folds that train (None: not chosen, registered before folds were asked)
    train_folds: list[int] | None = None
    #: LFW with train folds: the folder of links to the training people's images
    train_view: str | None = None
    train_people: int = 0
    pair_folds: int = 0

    @property
    def train_root(self) -> str | None:
        """What a run trains on: an LFW copy's training people, the aligned copy, or an ImageFolder as it is."""
        if self.format == "lfw" and self.train_folds is not None:
            return self.train_view if self.train_folds else None
        if self.aligned:
            return self.aligned
        if self.format == "lfw":
            images = Path(self.source) / "images"
            return str(images) if images.is_dir() else self.source
        return self.source if self.format == "imagefolder" else None

    @property
    def test_folds(self) -> list[int] | None:
        """The 0-based pairs folds evaluation scores: those not training (None: every fold)."""
        if not self.train_folds:
            return None
        return [f for f in range(self.pair_folds) if f not in self.train_folds]

    @property
    def can_verify(self) -> bool:
        """True for sets with verification pairs left to score (LFW layout with pairs.txt, or .bin)."""
        if self.format in ("bin", "ijb"):
            return True
        return self.format == "lfw" and self.pairs_file is not None and self.test_folds != []

    def eval_spec(self, center_crop: float | None = None) -> dict[str, Any]:
        """The run config's `eval_sets` entry; `center_crop` applies to an LFW copy that was not aligned."""
        if not self.can_verify:
            raise DataError(f"real set {self.name!r} has no verification pairs to score ({FORMATS[self.format]}"
                            + (", every pairs fold trains" if self.test_folds == [] else "") + ")")
        if self.format == "bin":
            return {"path": self.source, "name": self.name}
        if self.format == "ijb":
            return {"path": self.aligned or self.source, "name": self.name}
        crop = None if self.aligned or center_crop is None or center_crop >= 1 else float(center_crop)
        return {"path": self.aligned or self.source, "name": self.name, "pairs": self.pairs_file,
                "folds": self.test_folds, "center_crop": crop}

    def describe(self) -> str:
        """One line for lists: format, counts, and for LFW which folds train and which test."""
        if self.format in ("bin", "ijb"):
            faces = f"{self.images:,} faces, " if self.format == "ijb" else ""
            return f"{self.name}: {FORMATS[self.format]}, {faces}{self.pairs:,} pairs ({self.source})"
        text = f"{self.name}: {FORMATS[self.format]}, {self.identities:,} identities, {self.images:,} images"
        if self.pairs:
            text += f", {self.pairs:,} pairs"
        if self.train_folds is not None:
            train = ",".join(str(f + 1) for f in self.train_folds) or "none"
            test = "all" if self.test_folds is None else ",".join(str(f + 1) for f in self.test_folds) or "none"
            text += f"; trains on folds {train} ({self.train_people:,} people), tests on pairs folds {test}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- detection


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()
               if not p.name.startswith("."))


def detect_format(path: str | Path) -> str:
    """'imagefolder', 'lfw', 'bin', 'recordio' or 'ijb'; a DataError that says what is wrong otherwise."""
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
    from synface.data.ijb import is_ijb_folder

    if is_ijb_folder(p):
        return "ijb"
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

        from synface.data.imageio import image_problem

        try:
            pairs = read_bin(path)
        except DataError as exc:
            raise DataError(f"not an insightface verification .bin: {exc.message}", path=path) from None
        for label, data in (("first", pairs.images_a[0]), ("last", pairs.images_b[-1])):  # cheap: two decodes
            problem = image_problem(data)  # type: ignore[arg-type]  # a .bin holds encoded bytes
            if problem:
                raise DataError(f"not an insightface verification .bin: its {label} image does not decode ({problem})",
                                path=path)
        return {"pairs": len(pairs), "images": 2 * len(pairs)}
    if fmt == "ijb":
        from synface.data.ijb import read_ijb

        ijb = read_ijb(path)  # every meta file checked, naming the file and line
        return {"images": len(ijb.names), "pairs": len(ijb.pair_labels)}
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


# ----------------------------------------------------------------------------- LFW training folds


def lfw_fold_count(path: str | Path) -> int | None:
    """The number of people.txt folds of an LFW folder (None without a people.txt)."""
    from synface.data.lfw import LFWLayout, read_people

    layout = LFWLayout(Path(str(path).strip()).expanduser())
    return len(read_people(layout.people_file)) if layout.people_file.is_file() else None


def parse_train_folds(text: str, folds: int) -> list[int]:
    """'1,2,3' or '1-3' (1-based, as people.txt counts), 'all' or 'none' -> sorted 0-based folds."""
    raw = str(text).strip().lower()
    if raw == "all":
        return list(range(folds))
    if raw == "none":
        return []
    chosen: set[int] = set()
    for item in raw.split(","):
        ends = [e.strip() for e in item.split("-")]
        if len(ends) > 2 or not all(e.isdigit() and 1 <= int(e) <= folds for e in ends) or int(ends[0]) > int(ends[-1]):
            raise DataError(f"training folds {text!r}: each must be a fold number 1..{folds} or a range such as 1-3 "
                            f"(or 'all', 'none'), got {item.strip()!r}")
        chosen.update(range(int(ends[0]) - 1, int(ends[-1])))
    return sorted(chosen)


def _check_train_folds(src: Path, train_folds: Sequence[int]) -> tuple[list[str], int]:
    """(training people, pairs folds) of an LFW copy whose people.txt folds `train_folds` train."""
    from synface.data.lfw import LFWLayout, people_of_folds, people_without_images, read_pairs, read_people

    if not train_folds:  # a test set only: every pairs fold scores
        return [], 0
    layout = LFWLayout(src)
    if not layout.people_file.is_file():
        raise DataError("training folds need people.txt (which people are in which fold)", path=src)
    people = read_people(layout.people_file)
    folds = sorted({int(f) for f in train_folds})
    names = people_of_folds(people, folds)
    missing = people_without_images(layout, names)
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        raise DataError(f"{len(missing)} training people have no images under {layout.images_root}: "
                        f"{', '.join(missing[:5])}{more}", path=layout.people_file)
    pair_folds = 0
    if layout.pairs_file.is_file():
        pair_folds = 1 + max(p.fold for p in read_pairs(layout.pairs_file))
        if pair_folds != len(people):
            raise DataError(f"pairs.txt has {pair_folds} folds but people.txt {len(people)}: the training folds "
                            "cannot tell which pairs are on training people", path=layout.pairs_file)
        left = pair_folds - len(folds)
        if left == 1:
            raise DataError(f"training on folds {','.join(str(f + 1) for f in folds)} leaves 1 test fold; k-fold "
                            "verification needs 2 (train on fewer folds, or on all of them)", path=src)
    return names, pair_folds


def _build_view(view: Path, images_root: Path, names: list[str]) -> None:
    """`view/<name>` -> `images_root/<name>` for each training person, replacing an older view whole."""
    staging = view.parent / f".{view.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in names:
        target = images_root / name
        if target.is_dir():
            os.symlink(target.resolve(), staging / name)
    old = view.parent / f".{view.name}.{os.getpid()}.old"
    if view.exists():
        os.replace(view, old)
    os.replace(staging, view)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- the registry


def registry_path(root: str | Path | None = None) -> Path:
    return workspace_root(root) / REGISTRY


@contextlib.contextmanager
def _locked(root: str | Path | None) -> Iterator[Path]:
    """Serialise read-modify-write of the registry between the app and CLI processes."""
    path = registry_path(root)
    with locked(path.parent / f".{REGISTRY}.lock"):
        yield path


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
    """Forget a set (its aligned copy stays on disk; its links to training people go)."""
    with _locked(root) as path:
        data = _read(path)
        entry = data.pop(name, None)
        _write(path, data)
    view = (entry or {}).get("train_view")
    if view and Path(view).parent == workspace_root(root) / TRAIN_VIEWS:
        shutil.rmtree(view, ignore_errors=True)


def verification_sets(root: str | Path | None = None) -> list[RealSet]:
    """The registered sets with pairs to score (every .bin, LFW copies with test folds)."""
    return [s for s in list_real_sets(root) if s.can_verify]


def eval_specs(names: Sequence[str] | None = None, root: str | Path | None = None,
               center_crop: float | None = None) -> list[dict[str, Any]]:
    """`eval_sets` entries of registered sets: the named ones; "all" among the names (or None) adds
    every verification set. Every other name must be a registered set: an unknown one is an error
    naming it, also beside "all" (never silently dropped)."""
    names = ["all"] if names is None else list(names)
    chosen = [get_real_set(n, root) for n in names if n != "all"]
    if "all" in names:
        have = {s.name for s in chosen}
        chosen += [s for s in verification_sets(root) if s.name not in have]
    return [s.eval_spec(center_crop) for s in chosen]


def default_set_name(path: str | Path) -> str:
    p = Path(str(path).strip()).expanduser()
    base = p.parent.name if p.is_file() and p.name in ("train.rec", "train.idx") else (p.stem or p.name)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.")
    return slug[:64] or "real"


def register_real_set(path: str | Path, name: str | None = None, align: bool = True,
                      progress: Callable[[int, int], None] | None = None, root: str | Path | None = None,
                      workers: int = 2, replace: bool = False, train_folds: Sequence[int] | None = None) -> RealSet:
    """Detect the format, count, align image folders into `<workspace>/real/<name>/`, record it.

    .bin and RecordIO sets are insightface's already-aligned 112x112 crops and are not re-aligned.
    Alignment is resumable (existing outputs are kept), so re-registering after an interruption
    only aligns what is missing. `train_folds` (LFW only, 0-based people.txt folds; [] for a test
    set only) says which people train; a .bin is parsed whole, so one that is not a verification
    file is refused here, naming it.
    """
    fmt = detect_format(path)
    src = Path(str(path).strip()).expanduser().resolve()
    name = default_set_name(src) if name is None else name  # an empty name given is refused, not replaced
    if not _NAME.match(name):
        raise DataError(f"set name {name!r} must be 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)")
    existing = {s.name: s for s in list_real_sets(root)}
    if name in existing and not replace and Path(existing[name].source) != src:
        raise DataError(f"a real set named {name!r} already exists (from {existing[name].source}); choose another name")
    if train_folds is not None and fmt != "lfw":
        raise DataError(f"training folds are for LFW copies (people.txt); this is {FORMATS[fmt]}", path=src)
    train_names, pair_folds = _check_train_folds(src, train_folds) if train_folds is not None else ([], 0)
    counts = _counts(src, fmt)
    entry = RealSet(name=name, source=str(src), format=fmt, identities=int(counts.get("identities", 0)),
                    images=int(counts.get("images", 0)), pairs=int(counts.get("pairs", 0)),
                    pairs_file=counts.get("pairs_file"), registered=utc_now())
    if align and fmt in ("imagefolder", "lfw"):
        from synface.data.align import align_folder

        dst = child_path(workspace_root(root) / "real", name, "real set name")
        report = align_folder(src, dst, progress=progress, workers=workers)
        entry.aligned = str(dst)
        entry.align_report = report.to_dict()
    elif align and fmt == "ijb":
        from synface.data.ijb import align_ijb

        dst = child_path(workspace_root(root) / "real", name, "real set name")
        entry.align_report = align_ijb(src, dst, progress=progress, workers=workers)
        entry.aligned = str(dst)
    if train_folds is not None:
        from synface.data.align import images_root_of

        entry.train_folds, entry.pair_folds = sorted({int(f) for f in train_folds}), pair_folds
        entry.train_people = len(train_names)
        if train_names:
            view = child_path(workspace_root(root) / TRAIN_VIEWS, name, "real set name")
            _build_view(view, Path(entry.aligned) if entry.aligned else images_root_of(src), train_names)
            entry.train_view = str(view)
    with _locked(root) as reg:
        data = _read(reg)
        data[name] = entry.to_dict()
        _write(reg, data)
    return entry
