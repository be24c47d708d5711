"""IJB-B / IJB-C 1:1 verification: template features from image features, TAR at FAR 1e-6 .. 1e-1.

The protocol (as insightface's IJB evaluation scores it): every face image is embedded (here like
every other set: image plus its mirror, summed, L2-normalised); the images of one media (a photo,
or the frames of one video) within a template are averaged; the template's feature is the mean of
its media means, L2-normalised; a pair's score is the cosine of its two templates' features.
Media are averaged first so that a video of 200 frames counts as much as one photo. insightface's
script can also weigh each image by its detector score and keep un-normalised image features;
this module does neither, so every set the tool scores uses the same image features.

The result is an ordinary `VerificationResult`, so runs store, list and plot it like any set: its
TAR at each of IJB_FARS is kept exactly (`exact_tars`), and its accuracy is 10-fold over the pairs
interleaved (pair i in fold i mod 10; IJB's pair list is sorted by label, contiguous folds would
hold one class each). IJB papers report TAR@FAR only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synface.data.ijb import IJBSet, read_ijb
from synface.eval.run_eval import EvalSet
from synface.eval.verification import REPORTED_FARS, VerificationResult, kfold_verification

__all__ = ["IJB_FARS", "IJBEvalSet", "template_features", "template_scores", "ijb_result"]

IJB_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
FOLDS = 10
#: pairs scored per step (a step holds two (chunk, dim) feature blocks)
SCORE_CHUNK = 65_536


def _group_means(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """Mean row of `values` per group id 0..count-1 (every group non-empty)."""
    order = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[order], np.arange(count))
    sums = np.add.reduceat(values[order], starts, axis=0)
    return sums / np.bincount(groups, minlength=count)[:, None]


def template_features(features: np.ndarray, templates: np.ndarray, medias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted template ids, their L2-normalised features): per template, the mean of its media
    means (a media's mean over its images within that template)."""
    feats = np.asarray(features, dtype=np.float64)
    templates, medias = np.asarray(templates, np.int64), np.asarray(medias, np.int64)
    if not (len(feats) == len(templates) == len(medias)):
        raise ValueError(f"{len(feats)} features for {len(templates)} faces")
    media_keys, media_of = np.unique(np.stack([templates, medias], 1), axis=0, return_inverse=True)
    media_means = _group_means(feats, media_of.ravel(), len(media_keys))
    template_ids, template_of = np.unique(media_keys[:, 0], return_inverse=True)
    means = _group_means(media_means, template_of.ravel(), len(template_ids))
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return template_ids, means / np.maximum(norms, 1e-12)


def template_scores(template_ids: np.ndarray, template_feats: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine score of each (template 1, template 2) row of `pairs` (ids in `template_ids`)."""
    index = np.searchsorted(template_ids, pairs)
    if (index >= len(template_ids)).any() or (template_ids[np.minimum(index, len(template_ids) - 1)] != pairs).any():
        raise ValueError("a pair names a template without features")
    scores = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), SCORE_CHUNK):
        a, b = index[start:start + SCORE_CHUNK, 0], index[start:start + SCORE_CHUNK, 1]
        scores[start:start + SCORE_CHUNK] = np.einsum("ij,ij->i", template_feats[a], template_feats[b])
    return scores


def ijb_result(scores: np.ndarray, labels: np.ndarray, far_target: float = 1e-3) -> VerificationResult:
    """The VerificationResult of template-pair scores, with TAR at every IJB FAR kept exactly."""
    folds = np.arange(len(scores)) % min(FOLDS, len(scores))
    result = kfold_verification(scores, labels, folds, far_target)
    result.exact_tars = result.tars_at(sorted(set(IJB_FARS) | set(REPORTED_FARS)))
    return result


@dataclass
class IJBEvalSet(EvalSet):
    """An IJB set as an evaluation set: image j is face j of the face list (aligned on reading
    unless the copy is aligned already); `verify` scores template pairs."""

    ijb: IJBSet = None  # type: ignore[assignment]  # always given (from_spec); a default only to follow EvalSet's

    @classmethod
    def from_spec(cls, spec: Any) -> "IJBEvalSet":
        get = spec.get if isinstance(spec, dict) else lambda k, d=None: getattr(spec, k, d)
        path = Path(str(get("path")))
        return cls(get("name") or path.name, None, None, ijb=read_ijb(path))  # type: ignore[arg-type]  # no image pairs

    @property
    def num_images(self) -> int:
        return len(self.ijb.names)

    @property
    def num_pairs(self) -> int:
        return len(self.ijb.pair_labels)

    def decode(self, j: int, size: int) -> np.ndarray:
        return self.ijb.load_face(j, size)

    def verify(self, embeddings: np.ndarray, far_target: float = 1e-3) -> VerificationResult:
        ids, feats = template_features(embeddings, self.ijb.templates, self.ijb.medias)
        return ijb_result(template_scores(ids, feats, self.ijb.pair_templates), self.ijb.pair_labels, far_target)
