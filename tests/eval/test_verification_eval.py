"""k-fold verification, TAR@FAR and flip-summed embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synface.eval.verification import (
    contiguous_folds,
    embed_pairs,
    kfold_verification,
    pair_scores,
    tar_at_far,
)

# Hand-worked case, 2 folds x 4 pairs (T = same person, F = different):
#   fold 0: 0.9 T, 0.6 T, 0.22 F, 0.2 F
#   fold 1: 0.8 T, 0.4 T, 0.45 F, 0.1 F
# Test fold 0, threshold from fold 1: sorted 0.1 0.4 0.45 0.8 -> candidates
#   0.1-eps (acc 2/4), 0.25 (3/4), 0.425 (2/4), 0.625 (3/4), 0.8+eps (2/4); tie -> lowest: 0.25.
#   Fold 0 at 0.25: 0.9, 0.6 accepted; 0.22, 0.2 rejected -> 4/4.
# Test fold 1, threshold from fold 0: sorted 0.2 0.22 0.6 0.9 -> candidates
#   0.2-eps (2/4), 0.21 (3/4), 0.41 (4/4), 0.75 (3/4), 0.9+eps (2/4) -> 0.41.
#   Fold 1 at 0.41: 0.8 ok, 0.4 T rejected (wrong), 0.45 F accepted (wrong), 0.1 ok -> 2/4.
# Mean 0.75, population std 0.25.
# All 8 pairs: best threshold 0.31 (between 0.22 and 0.4; only 0.45 F wrong) -> 7/8; the other
#   7/8 threshold 0.525 loses the tie. AUC: of the 16 genuine/impostor orderings only
#   (0.4 T, 0.45 F) is wrong -> 15/16.
HAND_SCORES = np.array([0.9, 0.6, 0.22, 0.2, 0.8, 0.4, 0.45, 0.1])
HAND_SAME = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
HAND_FOLDS = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_hand_computed_case() -> None:
    res = kfold_verification(HAND_SCORES, HAND_SAME, HAND_FOLDS)
    np.testing.assert_allclose(res.fold_thresholds, [0.25, 0.41])
    np.testing.assert_allclose(res.fold_accuracies, [1.0, 0.5])
    assert res.mean_accuracy == pytest.approx(0.75)
    assert res.std_accuracy == pytest.approx(0.25)
    assert res.best_accuracy == pytest.approx(0.875)
    assert res.best_threshold == pytest.approx(0.31)
    assert res.auc == pytest.approx(15 / 16)
    assert (res.num_pairs, res.num_genuine, res.num_impostor) == (8, 4, 4)


def test_perfectly_separable_scores() -> None:
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 300)
    scores = np.where(same, rng.uniform(0.5, 1.0, 600), rng.uniform(-0.5, 0.3, 600))
    order = rng.permutation(600)
    res = kfold_verification(scores[order], same[order], contiguous_folds(600, 10))
    np.testing.assert_allclose(res.fold_accuracies, 1.0)
    assert res.std_accuracy == 0.0 and res.auc == 1.0 and res.tar_at_far == 1.0
    assert np.all((res.fold_thresholds > 0.3) & (res.fold_thresholds < 0.5))


def test_tar_at_far_constructed() -> None:
    # 1000 impostors at 0.000, 0.001, ..., 0.999. FAR 1e-2 allows k = 10 false accepts, so the
    # threshold is the 11th highest impostor score, 0.989, and acceptance is score > 0.989:
    # impostors 0.990..0.999 (FAR exactly 0.01). Genuine 0.989 (a tie) is rejected -> TAR 3/5.
    impostor = np.arange(1000) / 1000
    genuine = np.array([0.95, 0.989, 0.9891, 0.995, 1.0])
    scores = np.concatenate([impostor, genuine])
    same = np.concatenate([np.zeros(1000, bool), np.ones(5, bool)])
    tar, far, thr = tar_at_far(scores, same, 1e-2)
    assert thr == pytest.approx(0.989) and far == pytest.approx(0.01) and tar == pytest.approx(0.6)
    tar3, far3, thr3 = tar_at_far(scores, same, 1e-3)  # k = 1: threshold 0.998
    assert thr3 == pytest.approx(0.998) and far3 == pytest.approx(0.001) and tar3 == pytest.approx(0.2)
    res = kfold_verification(scores, same, contiguous_folds(len(scores), 5), far_target=1e-2)
    assert res.tar_at_far == pytest.approx(0.6)


def test_to_dict_is_json_and_downsampled() -> None:
    rng = np.random.default_rng(1)
    same = rng.random(2000) < 0.5
    scores = rng.normal(same * 0.5, 0.3)
    res = kfold_verification(scores, same, contiguous_folds(2000))
    d = res.to_dict(roc_points=50)
    text = json.dumps(d, allow_nan=False)
    assert len(d["roc"]["fpr"]) <= 50 and d["roc"]["fpr"][0] == 0.0 and d["roc"]["tpr"][-1] == 1.0
    assert len(json.loads(text)["fold_accuracies"]) == 10
    assert len(res.to_dict(roc_points=None)["roc"]["fpr"]) == len(res.fpr)


def test_exact_tars_survive_the_thinned_roc() -> None:
    """eval.json keeps TAR at 1e-2/1e-3/1e-4 from the full ROC; the Results table reads those, and
    they equal the threshold rule of tar_at_far, which a thinned ROC can only understate."""
    from synface.eval.verification import VerificationResult

    def _tar(stored: dict, far: float) -> float | None:
        return VerificationResult.from_dict(stored).tar_at(far)

    rng = np.random.default_rng(3)
    same = rng.random(30000) < 0.5
    scores = rng.normal(same * 1.0, 0.4)
    d = kfold_verification(scores, same, contiguous_folds(30000)).to_dict(roc_points=50)
    for far in (1e-2, 1e-3, 1e-4):
        exact = tar_at_far(scores, same, far)[0]
        assert d["tar_at_fars"][f"{far:g}"] == pytest.approx(exact)
        assert _tar(d, far) == pytest.approx(exact)
    thinned = {k: v for k, v in d.items() if k != "tar_at_fars"}
    assert _tar(thinned, 1e-4) < d["tar_at_fars"]["0.0001"]  # what the Results page showed before


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        kfold_verification(HAND_SCORES, HAND_SAME, np.zeros(8))  # one fold
    with pytest.raises(ValueError):
        kfold_verification(HAND_SCORES, np.ones(8, bool), HAND_FOLDS)


def test_contiguous_folds_like_kfold() -> None:
    np.testing.assert_array_equal(contiguous_folds(7, 3), [0, 0, 0, 1, 1, 2, 2])


class _Linear(nn.Module):
    """Tiny embedding model; `symmetric` makes it invariant to horizontal flips."""

    def __init__(self, size: int, symmetric: bool) -> None:
        super().__init__()
        self.input_size = size
        self.symmetric = symmetric
        self.fc = nn.Linear(3 * size * size, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled() and not self.training
        if self.symmetric:
            x = x + torch.flip(x, dims=[3])
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("symmetric", [True, False])
def test_embed_pairs_flip_sum(symmetric: bool) -> None:
    torch.manual_seed(0)
    images = torch.rand(10, 3, 8, 8) * 2 - 1
    model = _Linear(8, symmetric).train()
    calls: list[tuple[int, int]] = []
    emb_a, emb_b = embed_pairs(model, lambda i, j: images[i:j], 5, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert model.training  # mode restored
    assert calls == [(4, 10), (8, 10), (10, 10)]
    model.eval()
    with torch.no_grad():
        plain = F.normalize(model(images), dim=1)
        summed = F.normalize(model(images) + model(images.flip(3)), dim=1)
    np.testing.assert_allclose(emb_a, summed[0::2].numpy(), atol=1e-6)
    np.testing.assert_allclose(emb_b, summed[1::2].numpy(), atol=1e-6)
    # a flip-invariant model gives the same embedding with or without the flip; another does not
    assert np.allclose(emb_a, plain[0::2].numpy(), atol=1e-5) == symmetric
    np.testing.assert_allclose(np.linalg.norm(emb_a, axis=1), 1.0, atol=1e-6)


def test_embed_resizes_to_model_input() -> None:
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    model = _Linear(8, symmetric=False)
    emb_a, _ = embed_pairs(model, lambda i, j: images[i:j], 2, flip=False)
    with torch.no_grad():
        model.eval()
        expected = F.normalize(model(F.avg_pool2d(images, 2)), dim=1)[0::2].numpy()
    np.testing.assert_allclose(emb_a, expected, atol=1e-6)


def test_pair_scores_cosine() -> None:
    a = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    b = np.array([[0.0, 2.0], [3.0, 4.0], [-1.0, -1.0]])
    np.testing.assert_allclose(pair_scores(a, b), [0.0, 1.0, -1.0])


def test_a_stored_result_reads_back_whatever_version_wrote_it() -> None:
    """`VerificationResult.from_dict` is the one reader of eval.json entries: today's form, older
    ones without exact TARs or per-fold accuracies, and hand-edited ones."""
    from synface.eval.verification import VerificationResult

    rng = np.random.default_rng(5)
    same = rng.random(4000) < 0.5
    result = kfold_verification(rng.normal(same * 1.0, 0.5), same, contiguous_folds(4000))
    stored = json.loads(json.dumps(result.to_dict(roc_points=40)))
    back = VerificationResult.from_dict(stored)
    assert back.mean_accuracy == pytest.approx(result.mean_accuracy) and back.num_pairs == 4000
    assert back.fold_accuracies.tolist() == pytest.approx(result.fold_accuracies.tolist())
    assert back.tar_at(1e-3) == pytest.approx(result.tars_at([1e-3])["0.001"])  # exact, not from the thinned ROC
    assert back.to_dict()["tar_at_fars"] == stored["tar_at_fars"]
    old = {k: v for k, v in stored.items() if k not in ("tar_at_fars", "fold_accuracies")}
    old_back = VerificationResult.from_dict(old)
    assert old_back.fold_accuracies.tolist() == [pytest.approx(stored["mean_accuracy"])]  # the mean stands in
    assert old_back.tar_at(stored["far_target"]) == pytest.approx(stored["tar_at_far"])  # its own target
    assert old_back.tar_at(1e-4) <= stored["tar_at_fars"]["0.0001"] + 1e-12  # the thinned ROC never overstates
    edited = VerificationResult.from_dict({"mean_accuracy": "high", "roc": {"fpr": [0.0, 1.0], "tpr": [0.5]},
                                           "num_pairs": -3, "tar_at_fars": {"0.001": "x"}})
    assert np.isnan(edited.mean_accuracy) and edited.num_pairs == 0 and edited.fpr.size == 0
    assert edited.tar_at(1e-3) is None and edited.fold_accuracies.size == 0
    assert VerificationResult.from_dict("not a record").num_pairs == 0  # type: ignore[arg-type]
