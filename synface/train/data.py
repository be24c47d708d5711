"""Training datasets and the epoch sampler.

- Synthetic sets: the manifest (`SynthSet`: path, label, partner, phi) gives soft labels
  [(label, phi), (partner, 1 - phi)]; a folder without a manifest is read as an ImageFolder
  with hard labels.
- Real sets: an ImageFolder, optionally cut to Real_{R_ID}_{k}; labels are offset by the
  number of synthetic classes so both share one classifier.
- Domain mixup: `PairedDataset` returns a synthetic and a real image per item; the real set is
  cycled (reshuffled each cycle) up to the synthetic length by `EpochSampler`.

Every item is keyed by what `EpochSampler` yields: (index[, real index], sample seed). The
order and the augmentation seeds are a function of (seed, epoch) only, so a run resumed from
a checkpoint sees exactly the batches an uninterrupted run would, with any number of workers.
Pixels are float32 in [-1, 1] at the training resolution (downsized with an area filter).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from synface.data.errors import DataError
from synface.data.imagefolder import ImageFolderIndex
from synface.data.imageio import read_rgb
from synface.data.subsets import real_subset
from synface.data.synth_set import SynthSet
from synface.train.augment import Augment, build_augment
from synface.train.mixup import hard_labels, soft_labels

__all__ = [
    "ImageSet",
    "load_synthetic",
    "load_real",
    "ImageDataset",
    "PairedDataset",
    "EpochSampler",
    "load_image_uint8",
    "TrainData",
    "build_train_data",
    "check_train_data",
    "TrainDataSize",
    "check_fits_a_batch",
]

_SEED_MIX = 0x9E3779B97F4A7C15


def load_image_uint8(path: str | Path, size: int) -> torch.Tensor:
    """(3, size, size) uint8; downsizing uses PIL's BOX filter (area averaging), upsizing bilinear."""
    img = read_rgb(path, what="training image")
    if img.size != (size, size):
        smaller = img.size[0] > size or img.size[1] > size
        img = img.resize((size, size), Image.Resampling.BOX if smaller else Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


@dataclass
class ImageSet:
    """Paths with (N, 2) labels/weights and the number of classes they span."""

    paths: list[str]
    labels: torch.Tensor
    weights: torch.Tensor
    num_classes: int
    name: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    def offset(self, by: int) -> "ImageSet":
        """Labels shifted by `by` (padding labels -1 stay -1)."""
        labels = torch.where(self.labels >= 0, self.labels + by, self.labels)
        return ImageSet(self.paths, labels, self.weights, self.num_classes, self.name)

    @staticmethod
    def concat(a: "ImageSet", b: "ImageSet") -> "ImageSet":
        return ImageSet(a.paths + b.paths, torch.cat([a.labels, b.labels]), torch.cat([a.weights, b.weights]),
                        a.num_classes + b.num_classes, f"{a.name}+{b.name}")


def load_synthetic(root: str | Path) -> ImageSet:
    """A synthetic set with soft labels from its manifest, or an ImageFolder with hard labels."""
    root = Path(root)
    synth = SynthSet(root)
    if not synth.has_manifest():
        return _imagefolder_set(root, None, None)
    manifest = synth.manifest_path
    df = synth.read_manifest(columns=("path", "label", "partner", "phi"))
    num = int(max(df["label"].max(), df["partner"].max())) + 1
    if synth.is_complete():
        num = max(num, synth.identity_count())
    if int(df["label"].min()) < 0:
        raise DataError("manifest labels must be >= 0", path=manifest)
    phi = df["phi"].to_numpy(dtype=np.float32)
    if not np.all((phi >= 0) & (phi <= 1)):
        raise DataError("manifest phi must lie in [0, 1]", path=manifest)
    labels, weights = soft_labels(df["label"].to_numpy(), df["partner"].to_numpy(), phi)
    paths = [str(root / p) for p in df["path"].astype(str)]
    return ImageSet(paths, labels, weights, num, root.name)


def _imagefolder_set(root: Path, r_id: int | None, k: int | None) -> ImageSet:
    index = ImageFolderIndex(root)
    if r_id is not None and k is not None:
        sub = real_subset(index, r_id, k)
        samples, num, name = sub.samples(), len(sub.identities), sub.name
    else:
        samples, num, name = index.samples(), index.num_identities, root.name
    labels, weights = hard_labels(np.array([lab for _, lab in samples], dtype=np.int64))
    return ImageSet([str(p) for p, _ in samples], labels, weights, num, name)


def load_real(root: str | Path, r_id: int | None = None, k: int | None = None, offset: int = 0) -> ImageSet:
    """A real ImageFolder (or its Real_{r_id}_{k} subset) with hard labels shifted by `offset`."""
    return _imagefolder_set(Path(root), r_id, k).offset(offset)


class ImageDataset(Dataset):
    """Items keyed by (index, sample seed) -> (image (3,S,S) float, labels (K,), weights (K,))."""

    def __init__(self, images: ImageSet, size: int, augment: str | Augment = "none", cache: bool = False):
        self.images = images
        self.size = size
        self.augment = build_augment(augment) if isinstance(augment, str) else augment
        self._cache: torch.Tensor | None = None
        if cache:
            self._cache = torch.stack([load_image_uint8(p, size) for p in images.paths])

    def __len__(self) -> int:
        return len(self.images)

    def raw(self, index: int) -> torch.Tensor:
        if self._cache is not None:
            return self._cache[index]
        return load_image_uint8(self.images.paths[index], self.size)

    def image(self, index: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return self.augment(to_float(self.raw(index)), g)

    def __getitem__(self, key: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index, seed = (key, 0) if isinstance(key, int) else (int(key[0]), int(key[-1]))
        return self.image(index, seed), self.images.labels[index], self.images.weights[index]


class PairedDataset(Dataset):
    """Domain-mixup items: key (syn index, real index, seed) -> (x_syn, y_syn, w_syn, x_real, y_real)."""

    def __init__(self, synthetic: ImageDataset, real: ImageDataset):
        self.synthetic = synthetic
        self.real = real

    def __len__(self) -> int:
        return len(self.synthetic)

    def __getitem__(self, key: Sequence[int]) -> tuple[torch.Tensor, ...]:
        si, ri, seed = int(key[0]), int(key[1]), int(key[2])
        xs, ys, ws = self.synthetic[(si, seed)]
        xr, yr, _ = self.real[(ri, (seed ^ _SEED_MIX) & (2**63 - 1))]
        return xs, ys, ws, xr, yr[0]


def _epoch_rng(seed: int, epoch: int, tag: int) -> torch.Generator:
    mixed = np.random.SeedSequence([int(seed), int(epoch), int(tag)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(mixed[0]) << 32 | int(mixed[1]))


class EpochSampler(Sampler):
    """Deterministic per-(seed, epoch) order, sharded over DDP ranks, whole global batches only.

    Yields (index, sample seed), or (synthetic index, real index, sample seed) when `paired_len`
    is set (the real indices cycle through reshuffled permutations of the real set). Plays the
    role of torch's DistributedSampler (rank r takes every world_size-th item) but also carries
    per-sample augmentation seeds and can skip already-trained batches after a mid-epoch resume.
    """

    def __init__(
        self, length: int, global_batch: int, seed: int = 0, rank: int = 0, world_size: int = 1,
        paired_len: int | None = None, max_steps: int | None = None,
    ):
        if length < global_batch:
            raise DataError(f"the training set has {length} images, fewer than one batch of {global_batch}")
        self.length = length
        self.global_batch = global_batch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.paired_len = paired_len
        self.steps = length // global_batch if max_steps is None else min(max_steps, length // global_batch)
        self.epoch = 0
        self.skip_steps = 0

    def set_epoch(self, epoch: int, skip_steps: int = 0) -> None:
        self.epoch = epoch
        self.skip_steps = skip_steps

    def __len__(self) -> int:
        return (self.steps - self.skip_steps) * self.global_batch // self.world_size

    def _real_order(self, n: int) -> torch.Tensor:
        if self.paired_len is None:
            raise ValueError("a real order is drawn for paired (DM) training only")
        cycles = []
        total, cycle = 0, 0
        while total < n:
            cycles.append(torch.randperm(self.paired_len, generator=_epoch_rng(self.seed, self.epoch, 100 + cycle)))
            total += self.paired_len
            cycle += 1
        return torch.cat(cycles)[:n]

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        perm = torch.randperm(self.length, generator=_epoch_rng(self.seed, self.epoch, 1))
        used = self.steps * self.global_batch
        real = self._real_order(used) if self.paired_len is not None else None
        base = int(np.random.SeedSequence([self.seed, self.epoch, 2]).generate_state(1, dtype=np.uint64)[0]) >> 2
        start = self.skip_steps * self.global_batch + self.rank
        for pos in range(start, used, self.world_size):
            seed = (base + pos) & (2**62 - 1)
            if real is None:
                yield int(perm[pos]), seed
            else:
                yield int(perm[pos]), int(real[pos]), seed


@dataclass
class TrainData:
    """What the loop needs: a dataset, its sampler and the class count."""

    dataset: Dataset
    sampler: EpochSampler
    num_classes: int
    num_synthetic_classes: int
    paired: bool
    description: str


def _epoch_length(paired: bool, syn_images: int, real_images: int) -> int:
    """Samples one epoch walks: the synthetic images under DM (each drawn with a real partner),
    else every image of the sets together."""
    return syn_images if paired else syn_images + real_images


def build_train_data(cfg, size: int, rank: int = 0, world_size: int = 1) -> TrainData:
    """Datasets for a TrainConfig: synthetic only, real only, synthetic + real, or DM pairs."""
    syn = load_synthetic(cfg.data) if cfg.data is not None else None
    n_syn = syn.num_classes if syn is not None else 0
    real = load_real(cfg.real_root, cfg.real_ids, cfg.real_k, offset=n_syn) if cfg.real_root is not None else None
    num_classes = n_syn + (real.num_classes if real is not None else 0)
    paired = cfg.psi_mode != "none"

    def make(images: ImageSet) -> ImageDataset:
        return ImageDataset(images, size, cfg.augment, cache=cfg.cache_images)

    if paired:
        if syn is None or real is None:
            raise ValueError("domain mixing (psi) needs a synthetic and a real training set")
        dataset: Dataset = PairedDataset(make(syn), make(real))
        length, paired_len = _epoch_length(True, len(syn), len(real)), len(real)
        desc = f"DM {syn.name} ({len(syn)}) x {real.name} ({len(real)}), psi={cfg.psi}"
    else:
        images = syn if real is None else real if syn is None else ImageSet.concat(syn, real)
        if images is None:
            raise ValueError("no training data: give a synthetic set, a real set or both")
        dataset, paired_len = make(images), None
        length = _epoch_length(False, len(syn) if syn is not None else 0, len(real) if real is not None else 0)
        desc = f"{images.name} ({len(images)} images)"
    sampler = EpochSampler(length, cfg.batch_size, cfg.seed, rank, world_size, paired_len, cfg.steps_per_epoch)
    return TrainData(dataset, sampler, num_classes, n_syn, paired, f"{desc}, {num_classes} classes")


@dataclass(frozen=True)
class TrainDataSize:
    """What `check_train_data` found: images per epoch and classes (identities) in all."""

    images_per_epoch: int
    classes: int


def check_train_data(cfg) -> TrainDataSize:
    """Refuse training data that cannot be read, before a run folder exists: the sets are listed
    (manifest, dataset.json, identity folders; a Real_{R_ID}_{k} subset the folder cannot give is
    a DataError naming both numbers) and the first image of each is decoded, so a folder of
    non-images is one named error, not a failed run."""
    counts, classes = {}, 0
    for key, root in (("syn", cfg.data), ("real", cfg.real_root)):
        if root is None:
            continue
        try:
            images = load_synthetic(root) if key == "syn" else load_real(root, cfg.real_ids, cfg.real_k)
        except DataError as exc:
            raise exc if exc.path is not None else DataError(exc.message, path=root) from None
        if len(images) == 0:
            raise DataError("the training set has no images", path=root)
        read_rgb(images.paths[0], "first training image")  # a DataError naming the file
        counts[key] = len(images)
        classes += images.num_classes
    return TrainDataSize(_epoch_length(cfg.psi_mode != "none", counts.get("syn", 0), counts.get("real", 0)), classes)


def check_fits_a_batch(cfg, length: int) -> None:
    """A set smaller than one batch trains nothing: one error naming its folder (the sampler's own
    check comes only once the run has started)."""
    if length < cfg.batch_size:
        where = ", ".join(str(root) for root in (cfg.data, cfg.real_root) if root is not None)
        raise DataError(f"{where}: the training set has {length} images, fewer than one batch of {cfg.batch_size}")
