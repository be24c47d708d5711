"""Could an observer tell our renders from real aligned crops by how they look? A classifier
two-sample test (Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests", ICLR 2017): train a
classifier to separate real crops from renders and measure its accuracy on held-out crops. 50 %
means it cannot tell them apart; 100 % means every render is given away.

Why this and not only dlib's figures (synface/bench/realism.py): a render can pass a face detector
and carry a verifiable identity while looking like a wax mask. The classifier reads colour,
framing, detail and texture (synface/bench/image_features.py), not identity, and its folds keep
each person on one side (identity-disjoint), so it cannot win by recognising people either.

References make the number readable: the same protocol between two identity-disjoint halves of
the real crops (the floor: what sampling alone gives, about 50 %) and between real crops and other
people's real crops slightly blurred (how keen the classifier's eye for detail is). The same test
on one region of the crop at a time (the inner face alone, or everything but it) and on one part of
the description at a time says where and how renders are given away; a Fréchet distance on the
description keeps moving once every render is told apart.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from synface.bench.crop_regions import MASK_GREY, in_region
from synface.bench.frechet import frechet_distance
from synface.data.errors import DataError

#: folds of the cross-validation (every crop is predicted once, by a classifier that never saw its person)
FOLDS = 5
#: L2 penalty of the ridge classifier on standardised features. Why ridge: a closed-form linear fit
#: is deterministic and several times faster than a logistic regression of the same power; this
#: penalty keeps ~1,000 features from fitting noise on a few hundred crops while a slight blur or
#: colour cast of real crops still stands well above the real-vs-real floor
RIDGE_ALPHA = 10.0
#: the sensitivity controls: real crops against real crops of other people softened by a Gaussian
#: blur of these standard deviations (px): how far losing a photograph's finest detail alone goes,
#: from barely visible to plainly soft, as a scale for the synthetic figure
CONTROL_BLUR_SIGMAS = (0.5, 1.0)
#: real crops used by default (and as many renders)
DEFAULT_CROPS = 1000
#: at most this many crops of one person, so a few much-photographed people cannot make up the real set
MAX_PER_IDENTITY = 3
#: two-sided 95 % normal quantile, for the Wilson interval
Z95 = 1.959964
#: principal directions of the real crops' standardised description kept for the Fréchet distance: few
#: enough for a few hundred crops to estimate their covariance, many enough to hold most of its variance
FRECHET_DIMS = 32
#: the region the secondary test keeps or removes (synface/bench/crop_regions.py)
FACE_REGION = "inner-face"

Tick = Callable[[str, int, int], None]


@dataclass
class CropSet:
    """(N,H,W,3) uint8 crops with a group label each (a person, or the crop itself when unknown)."""

    images: np.ndarray
    groups: np.ndarray
    source: str
    identities_known: bool

    def __len__(self) -> int:
        return len(self.images)


def minimum_crops(folds: int = FOLDS) -> tuple[int, int]:
    """(crops, people) a real set needs: each half of the real-vs-real floor must put at least one
    person, and two crops, in every fold."""
    return 4 * folds, 2 * folds


def _candidates(root: Path) -> tuple[list[Path], list[str], bool]:
    """Every crop file with its person: `root/<person>/<crop>` (at most MAX_PER_IDENTITY each, the
    first by name), else the image files directly in `root` (people unknown)."""
    from synface.data.imagefolder import IMAGE_EXTENSIONS, ImageFolderIndex  # noqa: PLC0415

    has_folders = any(entry.is_dir() and not entry.name.startswith(".") for entry in root.iterdir())
    if has_folders:
        index = ImageFolderIndex(root)
        pairs = [(path, person) for person, files in index.images.items() for path in files[:MAX_PER_IDENTITY]]
        return [p for p, _ in pairs], [person for _, person in pairs], True
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    return files, [p.name for p in files], False


def load_real_crops(root: str | Path, limit: int, seed: int, side: int, folds: int = FOLDS,
                    tick: Tick | None = None) -> CropSet:
    """Up to `limit` aligned `side` x `side` crops from `root` (a seeded choice when it holds more),
    validated before any rendering starts: a missing folder, too few crops or people, or a crop
    of another size is one DataError naming it."""
    from synface.data.imageio import read_rgb  # noqa: PLC0415

    root = Path(root)
    if not root.is_dir():
        raise DataError("real crops folder not found", path=root)
    need_crops, need_people = minimum_crops(folds)
    if limit < need_crops:
        raise ValueError(f"--crops must be at least {need_crops} (the real-vs-synthetic classifier's "
                         f"{folds} folds), got {limit}")
    try:
        files, people, known = _candidates(root)
    except DataError:
        files, people, known = [], [], True
    order = np.random.default_rng(seed).permutation(len(files))[:limit]
    chosen = sorted(order.tolist())
    n_people = len({people[i] for i in chosen}) if known else len(chosen)
    if len(chosen) < need_crops or n_people < need_people:
        raise DataError(f"too few real crops: {len(chosen)} crops of {n_people} people "
                        f"(at most {MAX_PER_IDENTITY} each); the real-vs-synthetic classifier needs at least "
                        f"{need_crops} crops of {need_people} people ({folds} folds)", path=root)
    images = np.empty((len(chosen), side, side, 3), np.uint8)
    for n, i in enumerate(chosen):
        image = np.asarray(read_rgb(files[i], what="aligned crop"))
        if image.shape[:2] != (side, side):
            raise DataError(f"expected {side}x{side} aligned crops like the renders, got "
                            f"{image.shape[1]}x{image.shape[0]}; align the set first with `python -m synface align`",
                            path=files[i])
        images[n] = image
        if tick and ((n + 1) % 100 == 0 or n + 1 == len(chosen)):
            tick("real crops", n + 1, len(chosen))
    return CropSet(images, np.array([people[i] for i in chosen]), str(root), known)


def group_folds(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold per item such that each group lies in one fold and folds hold about equal counts:
    groups in a seeded order, largest first, each to the currently smallest fold."""
    names, counts = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(folds, int)
    fold_of = {}
    for g in order:
        target = int(np.argmin(load))
        fold_of[names[g]] = target
        load[target] += counts[g]
    return np.array([fold_of[g] for g in groups], int)


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound near 0 and 1, where accuracies end up)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def classifier_test(a: np.ndarray, a_groups: np.ndarray, b: np.ndarray, b_groups: np.ndarray,
                    folds: int = FOLDS, seed: int = 0) -> dict:
    """Held-out accuracy of a ridge classifier telling feature rows `a` from `b` (equal counts),
    with each class's groups kept within one fold. Reports the mean and standard deviation over
    folds, and the Wilson 95 % interval of the pooled held-out predictions (every row predicted
    once; it treats rows as independent, so it is a little narrow when people repeat)."""
    from sklearn.linear_model import RidgeClassifier  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    if len(a) != len(b):
        raise ValueError(f"classes must hold equal counts, got {len(a)} and {len(b)}")
    fold = np.concatenate([group_folds(a_groups, folds, seed), group_folds(b_groups, folds, seed + 1)])
    x = np.concatenate([a, b]).astype(np.float64)
    y = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    accuracies, correct, predicted = [], 0, 0
    for f in range(folds):
        train, test = fold != f, fold == f
        scaler = StandardScaler().fit(x[train])
        model = RidgeClassifier(alpha=RIDGE_ALPHA).fit(scaler.transform(x[train]), y[train])
        hits = model.predict(scaler.transform(x[test])) == y[test]
        accuracies.append(float(hits.mean()))
        correct += int(hits.sum())
        predicted += int(test.sum())
    low, high = wilson_interval(correct, predicted)
    return {"accuracy": round(correct / predicted, 4), "fold_mean": round(float(np.mean(accuracies)), 4),
            "fold_std": round(float(np.std(accuracies)), 4), "ci95": [round(low, 4), round(high, 4)],
            "crops": f"{len(a)} + {len(b)}"}


def split_halves(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two person-disjoint halves of equal size (the larger one trimmed by a seeded choice)."""
    side = group_folds(groups, 2, seed)
    first, second = np.flatnonzero(side == 0), np.flatnonzero(side == 1)
    n = min(len(first), len(second))
    rng = np.random.default_rng(seed)
    trim = lambda idx: np.sort(rng.choice(idx, n, replace=False)) if len(idx) > n else idx  # noqa: E731
    return trim(first), trim(second)


def region_views(images: np.ndarray) -> dict[str, np.ndarray]:
    """The crops as the secondary test sees them: the inner face alone (rest mid grey), and
    everything but the inner face (it mid grey: hair, ears, contour, background)."""
    h, w = images.shape[1:3]
    yy, xx = np.mgrid[0:h, 0:w]
    face = in_region((xx + 0.5) / w, (yy + 0.5) / h, FACE_REGION)
    inner, outer = images.copy(), images.copy()
    inner[:, ~face] = MASK_GREY
    outer[:, face] = MASK_GREY
    return {"inner face only": inner, "outside the inner face": outer}


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    """(N,H,W,3) uint8 crops under a Gaussian blur of `sigma` px (edges mirrored), rounded back to uint8."""
    from scipy.ndimage import gaussian_filter  # noqa: PLC0415

    soft = gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="mirror")
    return np.clip(np.rint(soft), 0, 255).astype(np.uint8)


def description_frechet(renders: np.ndarray, reference: np.ndarray, other_real: np.ndarray) -> dict:
    """Fréchet distance between Gaussians fitted to the description (crop_features rows) of renders
    and of `reference` real crops, beside the same distance from `other_real` (real crops of other
    people, as many as the renders used): the floor. Why, beside the classifier: once every render
    is told apart (100 %), accuracy cannot show renders coming closer; a distance can. Measured on
    the FRECHET_DIMS principal directions of the reference's standardised description."""
    mean, scale = reference.mean(0), reference.std(0) + 1e-6
    centred = (reference - mean) / scale
    basis = np.linalg.svd(centred - centred.mean(0), full_matrices=False)[2][:FRECHET_DIMS].T

    def project(rows: np.ndarray) -> np.ndarray:
        return ((rows.astype(np.float64) - mean) / scale) @ basis

    n = len(other_real)
    ref = project(reference)
    return {"renders": round(frechet_distance(project(renders[:n]), ref), 3),
            "real_vs_real": round(frechet_distance(project(other_real), ref), 3),
            "dims": int(basis.shape[1]), "crops": f"{n} vs {len(reference)}"}


def jpeg_round_trip(images: np.ndarray) -> np.ndarray:
    """Crops after the JPEG round trip a synthetic dataset (and an aligned crop) goes through, at
    SynthConfig's default quality. Why: real crops are JPEG files, and the classifier must not win
    on codec traces that renders in a dataset carry too; renders and blurred real crops are
    compared as they would be stored."""
    from PIL import Image  # noqa: PLC0415

    from synface.data.synth_config import SynthConfig  # noqa: PLC0415

    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=SynthConfig.jpeg_quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def image_realism_report(renders: np.ndarray, real: CropSet, seed: int = 0, folds: int = FOLDS,
                         tick: Tick | None = None) -> dict:
    """Real-vs-synthetic accuracy of `renders` (one person each) against `real` (as many crops),
    with two references on the real crops alone (two halves of different people: the floor; one
    half blurred: the classifier's eye for detail), and the real-vs-synthetic test again on each
    region of the crop and on each part of the description, to say what gives renders away.
    Renders and blurred crops are compared after a dataset's JPEG round trip (jpeg_round_trip)."""
    from synface.bench.image_features import crop_features, feature_columns  # noqa: PLC0415

    tick = tick or (lambda stage, done, total: None)
    if len(renders) != len(real):
        raise ValueError(f"need as many renders as real crops, got {len(renders)} and {len(real)}")
    renders = jpeg_round_trip(renders)
    render_groups = np.arange(len(renders)).astype(str)
    first, second = split_halves(real.groups, seed)
    described = {"whole crop": (renders, real.images), **{
        name: (r, q) for (name, r), q in zip(region_views(renders).items(), region_views(real.images).values())}}
    columns = feature_columns(renders.shape[1])
    steps = 2 * len(described) + 2 * len(CONTROL_BLUR_SIGMAS) + len(described) + len(columns) + 1
    progress = iter(range(1, steps + 1))
    tick("image realism", 0, steps)

    def step() -> None:
        tick("image realism", next(progress), steps)

    features: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (syn_images, real_images) in described.items():
        syn_x = crop_features(syn_images)
        step()
        features[name] = (syn_x, crop_features(real_images))
        step()
    softened_x = {}
    for sigma in CONTROL_BLUR_SIGMAS:
        softened_x[sigma] = crop_features(jpeg_round_trip(blurred(real.images[second], sigma)))
        step()

    def test(a: np.ndarray, a_groups: np.ndarray, b: np.ndarray, b_groups: np.ndarray) -> dict:
        result = classifier_test(a, a_groups, b, b_groups, folds, seed)
        step()
        return result

    by_region = {name: test(syn_x, render_groups, real_x, real.groups) for name, (syn_x, real_x) in features.items()}
    syn_x, real_x = features["whole crop"]
    by_feature = {group: test(syn_x[:, cols], render_groups, real_x[:, cols], real.groups)
                  for group, cols in columns.items()}
    floor = test(real_x[first], real.groups[first], real_x[second], real.groups[second])
    frechet = description_frechet(syn_x, real_x[first], real_x[second])
    controls = {f"{sigma:g} px": test(real_x[first], real.groups[first], x, real.groups[second])
                for sigma, x in softened_x.items()}
    n_people = len(np.unique(real.groups)) if real.identities_known else "unknown"
    return {
        "classifier": f"ridge (alpha={RIDGE_ALPHA}) on a fixed colour, detail and texture description of each "
                      "crop (synface/bench/image_features.py)",
        "real_crops": f"{len(real)} crops of {n_people} people (at most {MAX_PER_IDENTITY} each) from {real.source}",
        "renders": f"{len(renders)}, through the JPEG round trip of a synthetic dataset",
        "folds": folds,
        "identity_disjoint": real.identities_known,
        "synthetic_vs_real": by_region.pop("whole crop"),
        "real_vs_real": floor,
        "real_vs_real_blurred": controls,
        "synthetic_vs_real_by_region": by_region,
        "frechet_on_description": frechet,
        "synthetic_vs_real_by_feature": by_feature,
    }
