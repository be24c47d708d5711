"""`python -m synface bench spread`: how far apart identities are, and how much one identity moves,
in dlib's descriptor space, for renders and for real aligned photographs.

Why: `bench realism` gives one number (verification accuracy) and `bench identity` one distance per
coefficient; neither says whether the generator falls short because its identities are too close
together or because pose, light and expression move one identity too far. The descriptor's
between-identity and within-identity covariances answer that directly, and the same statistics on
real people (an identity-per-folder set of aligned crops) say what the generator should reach.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from synface.bench.crop_regions import check_region, mask_to_region
from synface.data.errors import DataError
from synface.data.imageio import read_rgb

TOP_WITHIN_DIRECTIONS = 5  # how many of the largest within-identity directions the overlap uses
TOP_SHARE_DIRECTIONS = 10
def spread_statistics(embeddings: np.ndarray) -> dict:
    """Between/within-identity statistics of (M identities, R images, D) descriptors.

    `between_variance` is the trace of the covariance of identity means minus the part the
    finite R adds (trace(within) / R), so sets with different R compare fairly.
    `between_in_top_within` is the share of that between-identity variance lying in the
    TOP_WITHIN_DIRECTIONS directions along which one identity varies most: if identities differ
    mostly where pose and light also move them, a verifier cannot tell the two apart. With few
    identities the corrected between matrix can have negative directions; the share is taken on
    its positive part so it stays in [0, 1].
    """
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 3 or e.shape[0] < 3 or e.shape[1] < 2:
        raise ValueError(f"embeddings must be (identities >= 3, images >= 2, dims), got shape {e.shape}")
    m, r, d = e.shape
    means = e.mean(1)
    deviations = (e - means[:, None]).reshape(-1, d)
    within = deviations.T @ deviations / (m * (r - 1))
    centred = means - means.mean(0)
    between = centred.T @ centred / (m - 1) - within / r
    eigenvalues, eigenvectors = np.linalg.eigh(within)  # ascending
    top = eigenvectors[:, -TOP_WITHIN_DIRECTIONS:]
    between_trace = float(np.trace(between))
    b_values, b_vectors = np.linalg.eigh(between)
    between_positive = (b_vectors * np.clip(b_values, 0.0, None)) @ b_vectors.T
    positive_trace = float(np.trace(between_positive))
    within_trace = float(np.trace(within))
    genuine = [np.linalg.norm(e[i, a] - e[i, b]) for i in range(m) for a in range(r) for b in range(a + 1, r)]
    impostor = np.linalg.norm(e[:, 0] - np.roll(e[:, 0], 1, axis=0), axis=1)
    return {
        "identities": m,
        "images_per_identity": r,
        "between_variance": round(between_trace, 5),
        "within_variance": round(within_trace, 5),
        "between_to_within": round(between_trace / max(within_trace, 1e-12), 3),
        "within_top10_share": round(float(eigenvalues[-TOP_SHARE_DIRECTIONS:].sum() / max(eigenvalues.sum(), 1e-12)), 3),
        "between_in_top_within": round(float(np.trace(top.T @ between_positive @ top) / max(positive_trace, 1e-12)), 3),
        "top_within_isotropic_share": round(TOP_WITHIN_DIRECTIONS / d, 3),
        "genuine_dist_mean": round(float(np.mean(genuine)), 4),
        "impostor_dist_mean": round(float(impostor.mean()), 4),
    }


def real_identity_images(root: str | Path, identities: int, images_per_identity: int,
                         need: str = "the spread statistics need 3 or more (lower --draws?)") -> list[list[Path]]:
    """The first `images_per_identity` images (sorted) of the first `identities` people that have
    that many, from an identity-per-folder set of aligned crops; `need` ends the error message
    when fewer than 3 people qualify."""
    from synface.data.imagefolder import ImageFolderIndex  # noqa: PLC0415

    index = ImageFolderIndex(root)
    chosen = [files[:images_per_identity] for files in index.images.values() if len(files) >= images_per_identity]
    if len(chosen) < 3:
        raise DataError(f"only {len(chosen)} identities have at least {images_per_identity} images; {need}",
                        path=root)
    return chosen[:identities]


def load_aligned_crop(path: Path) -> np.ndarray:
    image = np.asarray(read_rgb(path, what="aligned crop"))
    if image.shape[0] != image.shape[1]:
        raise DataError(f"expected a square aligned face crop (e.g. 112x112), got {image.shape[1]}x{image.shape[0]}; "
                        "align the set first with `python -m synface align`", path=path)
    return image


def bench_spread(identities: int = 100, draws: int = 4, seed: int = 31, identity_scale: float = 1.0,
                 device: str = "auto", real: str | Path | None = None, region: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Spread statistics of `identities` rendered identities, each under `draws` random attribute
    draws (pose, light, expression, background) from the default prior; with `real`, the same
    statistics on as many real people with `draws` aligned images each. `region` (one of REGIONS)
    masks every crop of both sets to that region first."""
    from synface.generator import FaceGenerator  # noqa: PLC0415
    from synface.data.realface import aligned_descriptor  # noqa: PLC0415

    def describe(image: np.ndarray) -> np.ndarray:
        return aligned_descriptor(mask_to_region(image, region) if region else image)

    if region is not None:
        check_region(region)  # before minutes of rendering, not at the first crop
    if identities < 3 or draws < 2:
        raise ValueError(f"need at least 3 identities and 2 draws, got identities={identities}, draws={draws}")
    real_sets = real_identity_images(real, identities, draws) if real is not None else []
    total = identities * draws + sum(len(files) for files in real_sets)
    done = 0
    tick = progress or (lambda done, total: None)

    def described(images) -> np.ndarray:
        """Descriptors of `images`, one tick every 25 (dlib takes tens of ms an image)."""
        nonlocal done
        rows = []
        for image in images:
            rows.append(describe(image))
            done += 1
            if done % 25 == 0 or done == total:
                tick(done, total)
        return np.stack(rows)

    tick(0, total)
    gen = FaceGenerator(device=device)
    ids = gen.sample(identities, seed, identity_scale=identity_scale)
    rendered = []
    for r in range(draws):
        attrs = gen.sample_attributes(identities, seed + 1000 + r)
        rendered.append(described(gen.render(ids.replace(**attrs)).images.cpu().numpy()))
    result = {"bench": "spread", "recogniser": "dlib 128-D descriptor (face_recognition_models weights)",
              "generator": gen.version, "seed": seed, "identity_scale": identity_scale, "region": region or "whole crop",
              "renders": spread_statistics(np.stack(rendered, 1))}
    if real_sets:
        embedded = []
        for files in real_sets:
            embedded.append(described(load_aligned_crop(path) for path in files))
        result["real"] = {"source": str(real), **spread_statistics(np.stack(embedded))}
    return result
