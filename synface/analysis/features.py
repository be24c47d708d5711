"""Face embeddings of a whole dataset under one model, cached on disk (Figure 3's input).

A dataset is a synthetic set (`SynthSet`: soft labels, phi and coefficients), an
ImageFolder (aligned real crops) or an LFW-layout folder (250x250 deep-funneled photos, which
get align.py's fixed LFW crop so they meet the ArcFace template like every other input).
A model is a training checkpoint, a backbone module, or "dlib": dlib's 128-D descriptor, a
recogniser trained on real photographs, as a neutral reference for comparing sets.

Extraction is the slow part of the Features page, so results are cached under
`<workspace>/features/<key>.npz`, keyed by the model (checkpoint path + size + mtime, or the
weights' bytes), the dataset (path + card/manifest stamp) and `max_images`, and written
atomically (a reader never sees half a file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from synface.base.files import atomic_path
from synface.data.errors import DataError
from synface.data.imagefolder import ImageFolderIndex
from synface.data.imageio import read_rgb
from synface.data.synth_set import SynthSet

__all__ = ["FeatureSet", "DatasetSource", "resolve_dataset", "extract_features", "list_datasets", "gallery_order",
           "list_checkpoints", "load_image_112", "DLIB"]

DLIB = "dlib"
#: 2: FeatureSet records its domain, and real images have no phi (NaN instead of 1)
CACHE_VERSION = 2
Progress = Callable[[int, int], None]


@dataclass
class FeatureSet:
    """(N, D) unit-length float32 features with labels and one metadata row per image.

    `domain` is "synthetic" (a set this project rendered) or "real" (photographs), so plots can
    tell them apart; real images have no phi (NaN)."""

    features: np.ndarray
    labels: np.ndarray
    dataset: str
    model: str
    meta: Any  # pandas DataFrame: path, identity, label, phi, partner, attribute columns
    cache_path: str = ""
    from_cache: bool = False
    domain: str = "real"

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: str | Path) -> None:
        """Atomic .npz (no pickles: metadata columns are stored as typed arrays)."""
        arrays: dict[str, np.ndarray] = {
            "features": self.features.astype(np.float32), "labels": self.labels.astype(np.int64),
            "info": np.array(json.dumps({"dataset": self.dataset, "model": self.model, "version": CACHE_VERSION,
                                         "domain": self.domain})),
            "meta_columns": np.array(list(self.meta.columns), dtype=str),
        }
        for i, col in enumerate(self.meta.columns):
            values = self.meta[col].to_numpy()
            arrays[f"meta_{i}"] = values.astype(str) if values.dtype == object else values
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle among the **kwds

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        import pandas as pd  # noqa: PLC0415

        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            columns = [str(c) for c in z["meta_columns"]]
            meta = pd.DataFrame({c: z[f"meta_{i}"] for i, c in enumerate(columns)})
            # a version-1 file names no domain: only synthetic sets have pose columns
            domain = info.get("domain") or ("synthetic" if "yaw_deg" in columns else "real")
            return cls(z["features"], z["labels"], info["dataset"], info["model"], meta, str(path), True, domain)


# ----------------------------------------------------------------------------- datasets


@dataclass
class DatasetSource:
    """Where a dataset's images are and how to read them."""

    root: Path
    kind: str  # "synthetic" | "imagefolder" | "lfw"
    name: str
    stamp: str = ""  # changes when the set's content changes (card / manifest mtime)
    extra: dict = field(default_factory=dict)


def _mtime(path: Path) -> str:
    try:
        st = path.stat()
        return f"{st.st_size}-{st.st_mtime_ns}"
    except OSError:
        return ""


def resolve_dataset(path: str | Path) -> DatasetSource:
    """Classify a folder; DataError with a readable message when it is none of the three kinds."""
    root = Path(path).expanduser()
    if not str(path).strip():
        raise DataError("no dataset path given")
    if not root.is_dir():
        raise DataError("dataset folder not found", path=root)
    synth = SynthSet(root)
    if synth.has_manifest():
        name = synth.card_or_empty().get("name") or root.name
        return DatasetSource(root, "synthetic", name, _mtime(synth.manifest_path) + _mtime(synth.card_path))
    if (root / "pairs.txt").is_file() or (root / "people.txt").is_file():
        return DatasetSource(root, "lfw", root.name, _mtime(root / "pairs.txt") + _mtime(root / "people.txt"))
    images_root = root / "images" if (root / "images").is_dir() else root
    ImageFolderIndex(images_root)  # raises DataError when there are no identity folders
    return DatasetSource(images_root, "imagefolder", root.name, _mtime(images_root))


def _pick_identities(groups: dict[str, list[Any]], max_images: int | None, seed: int = 0) -> list[str]:
    """Whole identities in a seeded order until `max_images` (class statistics need whole classes)."""
    names = sorted(groups)
    if max_images is None or sum(len(v) for v in groups.values()) <= max_images:
        return names
    order = np.random.default_rng(seed).permutation(len(names))
    chosen, total = [], 0
    for i in order:
        if total >= max_images:
            break
        chosen.append(names[i])
        total += len(groups[names[i]])
    return sorted(chosen)


def _synthetic_meta(src: DatasetSource, max_images: int | None):
    import pandas as pd  # noqa: PLC0415

    df = SynthSet(src.root).read_manifest()
    groups = {str(k): list(v) for k, v in df.groupby("label").groups.items()}
    keep = _pick_identities(groups, max_images)
    df = df[df["label"].astype(str).isin(keep)].sort_values(["label", "path"]).reset_index(drop=True)
    meta = pd.DataFrame({
        "path": [str(src.root / p) for p in df["path"].astype(str)],
        "identity": df["label"].astype(int).map(lambda i: f"{i:05d}"),
        "label": df["label"].astype(np.int64),
        "phi": df["phi"].astype(np.float32) if "phi" in df else 1.0,
        "partner": df["partner"].astype(np.int64) if "partner" in df else -1,
    })
    cols = set(df.columns)
    for i, name in enumerate(("yaw_deg", "pitch_deg", "roll_deg")):
        if f"pose_{i:03d}" in cols:
            meta[name] = np.degrees(df[f"pose_{i:03d}"].to_numpy(np.float64)).astype(np.float32)
    expr = [c for c in df.columns if c.startswith("expr_")]
    if expr:
        meta["expression"] = np.linalg.norm(df[expr].to_numpy(np.float64), axis=1).astype(np.float32)
    light = [c for c in df.columns if c.startswith("light_")]
    if len(light) == 27:
        sh = df[light].to_numpy(np.float64).reshape(-1, 3, 9)
        meta["light_ambient"] = sh[:, :, 0].mean(1).astype(np.float32)
        meta["light_directional"] = np.linalg.norm(sh[:, :, 1:4], axis=(1, 2)).astype(np.float32)
    return meta


def _folder_meta(src: DatasetSource, max_images: int | None):
    import pandas as pd  # noqa: PLC0415

    images_root = src.root / "images" if src.kind == "lfw" and (src.root / "images").is_dir() else src.root
    index = ImageFolderIndex(images_root)
    keep = _pick_identities(index.images, max_images)
    rows = [(str(p), name) for name in keep for p in index.images[name]]
    label_of = {name: i for i, name in enumerate(keep)}
    return pd.DataFrame({
        "path": [r[0] for r in rows],
        "identity": [r[1] for r in rows],
        "label": np.array([label_of[r[1]] for r in rows], dtype=np.int64),
        "phi": np.full(len(rows), np.nan, dtype=np.float32),  # a photographed person is no identity mix
        "partner": np.full(len(rows), -1, dtype=np.int64),
    })


def load_image_112(path: str | Path, lfw_crop: bool = False) -> np.ndarray:
    """(112,112,3) uint8: LFW photos get the fixed LFW crop, other sizes a plain resize."""
    from synface.data.align import fallback_matrix, warp_with_matrix  # noqa: PLC0415

    img = read_rgb(path)
    if img.size == (112, 112):
        return np.asarray(img, dtype=np.uint8)
    if lfw_crop:
        return warp_with_matrix(np.asarray(img), fallback_matrix(*img.size))
    return np.asarray(img.resize((112, 112), Image.Resampling.BILINEAR), dtype=np.uint8)


# ----------------------------------------------------------------------------- models


def _model_key(model: Any) -> tuple[str, str]:
    """(cache key part, display name) of a model reference."""
    if isinstance(model, str) and model == DLIB:
        return "dlib-resnet-v1", "dlib"
    if isinstance(model, (str, Path)):
        path = Path(model).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {model}")
        name = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
        return f"ckpt:{path}:{_mtime(path)}", name
    if isinstance(model, torch.nn.Module):
        h = hashlib.sha256()
        for key, tensor in model.state_dict().items():
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"module:{h.hexdigest()[:24]}", type(model).__name__
    raise TypeError(f"model must be 'dlib', a checkpoint path or a torch module, got {type(model).__name__}")


def _load_model(model: Any) -> torch.nn.Module:
    if isinstance(model, torch.nn.Module):
        return model
    from synface.models.checkpoint import load_checkpoint_model  # noqa: PLC0415

    net, _ = load_checkpoint_model(model, "cpu")
    return net


def _embed_torch(model: torch.nn.Module, paths: list[str], lfw_crop: bool, progress: Progress | None,
                 batch_size: int = 64) -> np.ndarray:
    from synface.eval.verification import embed_images  # noqa: PLC0415

    device = next(model.parameters()).device

    def load_batch(start: int, stop: int) -> torch.Tensor:
        arr = np.stack([load_image_112(p, lfw_crop) for p in paths[start:stop]])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    return embed_images(model, load_batch, len(paths), batch_size=batch_size, device=device, progress=progress)


def _embed_dlib(paths: list[str], lfw_crop: bool, progress: Progress | None) -> np.ndarray:
    """dlib's descriptor of each crop upscaled 2x, as the realism bench shows renders to dlib."""
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415

    out = np.zeros((len(paths), 128), dtype=np.float32)
    for i, p in enumerate(paths):
        img = load_image_112(p, lfw_crop)
        out[i] = aligned_descriptor(img)
        if progress is not None and (i % 16 == 15 or i == len(paths) - 1):
            progress(i + 1, len(paths))
    return out


# ----------------------------------------------------------------------------- entry point


def cache_key(model: Any, dataset: str | Path, max_images: int | None) -> str:
    src = resolve_dataset(dataset)
    model_key, _ = _model_key(model)
    blob = json.dumps({"v": CACHE_VERSION, "model": model_key, "root": str(src.root.resolve()),
                       "stamp": src.stamp, "max_images": max_images}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def extract_features(model: Any, dataset: str | Path, max_images: int | None = 2000,
                     progress: Progress | None = None, root: str | Path | None = None,
                     use_cache: bool = True) -> FeatureSet:
    """Unit-length embeddings of (up to max_images of) a dataset under a model, cached on disk.

    model: "dlib", a checkpoint path, or a backbone module. dataset: a synthetic set root, an
    ImageFolder root or an LFW folder. Whole identities are kept when subsampling.
    """
    from synface.base.workspace import workspace_root  # noqa: PLC0415

    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    src = resolve_dataset(dataset)
    model_key, model_name = _model_key(model)
    cache = workspace_root(root) / "features" / f"{cache_key(model, dataset, max_images)}.npz"
    if use_cache and cache.is_file():
        try:
            return FeatureSet.load(cache)
        except (OSError, ValueError, KeyError):
            cache.unlink(missing_ok=True)  # unreadable cache: recompute
    meta = _synthetic_meta(src, max_images) if src.kind == "synthetic" else _folder_meta(src, max_images)
    if len(meta) == 0:
        raise DataError("no images to embed", path=src.root)
    paths = meta["path"].tolist()
    lfw_crop = src.kind == "lfw"
    if model_key.startswith("dlib"):
        feats = _embed_dlib(paths, lfw_crop, progress)
    else:
        feats = _embed_torch(_load_model(model), paths, lfw_crop, progress)
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    fs = FeatureSet(feats.astype(np.float32), meta["label"].to_numpy(np.int64), src.name, model_name, meta,
                    str(cache), False, "synthetic" if src.kind == "synthetic" else "real")
    if use_cache:
        fs.save(cache)
    return fs


# ----------------------------------------------------------------------------- discovery (for the app)


def _registered_sources(root: str | Path | None) -> dict[Path, Path]:
    """Aligned copy -> source folder of every registered real set (empty when the registry is
    unreadable: the folders on disk are still listed)."""
    from synface.data.realsets import list_real_sets  # noqa: PLC0415

    try:
        sets = list_real_sets(root)
    except DataError:
        return {}
    return {Path(s.aligned).resolve(): Path(s.source).resolve() for s in sets if s.aligned}


def list_datasets(root: str | Path | None = None, lfw: str | Path | None = None) -> list[dict[str, str]]:
    """Synthetic sets in <workspace>/datasets, real sets in <workspace>/real, and the LFW folder
    `lfw` (the app's sidebar choice): name, path, kind and a label to show.

    Each source is listed once: a registered real set is the aligned copy of its source folder,
    so `lfw` is left out when a registered set comes from it (that set is labelled as LFW), and
    two registered copies of one folder are one entry."""
    from synface.base.workspace import workspace_root  # noqa: PLC0415

    ws = workspace_root(root)
    sources = _registered_sources(root)
    lfw_path = Path(lfw).expanduser().resolve() if lfw and str(lfw).strip() and Path(lfw).expanduser().is_dir() else None
    out, seen = [], set()
    for sub, kind in (("datasets", "synthetic"), ("real", "real")):
        base = ws / sub
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            if not p.is_dir() or p.name.startswith((".", "_")):
                continue
            if kind == "synthetic" and not SynthSet(p).is_complete():
                continue  # an unfinished build
            if kind == "real" and not any(c.is_dir() for c in p.iterdir()):
                continue
            source = sources.get(p.resolve(), p.resolve())
            if source in seen:
                continue
            seen.add(source)
            label = f"{p.name} (LFW, aligned)" if source == lfw_path else f"{p.name} ({kind})"
            out.append({"name": p.name, "path": str(p), "kind": kind, "label": label})
    if lfw_path is not None and lfw_path not in seen:
        out.append({"name": "LFW", "path": str(lfw), "kind": "lfw", "label": f"LFW ({lfw})"})
    return out


def list_checkpoints(root: str | Path | None = None) -> list[dict[str, str]]:
    """Runs that have a checkpoint (id, name, path of last.pt), newest first."""
    from synface.runs.registry import list_runs  # noqa: PLC0415

    out = []
    for r in reversed(list_runs(root)):
        ckpt = Path(r.path) / "checkpoints" / "last.pt"
        if ckpt.is_file():
            out.append({"id": r.id, "name": r.name, "path": str(ckpt), "status": r.status})
    return out


def gallery_order(datasets: Sequence[str], rows: Sequence[int]) -> list[int]:
    """Selected rows (indices into `datasets`, each row's dataset name) taking turns by dataset,
    in order of first appearance: a page of the selection shows every selected set's faces, not
    only the first rows of the first set."""
    by_set: dict[str, list[int]] = {}
    for row in rows:
        by_set.setdefault(str(datasets[row]), []).append(int(row))
    queues = list(by_set.values())
    return [q[k] for k in range(max((len(q) for q in queues), default=0)) for q in queues if k < len(q)]
