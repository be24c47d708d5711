"""Backbones (shapes, FLOPs) and the mixed-label margin head (SynFace loss)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synface.models.backbones import (
    BACKBONES,
    build_backbone,
    count_flops,
    count_train_flops,
)
from synface.train.heads import MarginHead

KINDS = ["arcface", "cosface"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("name", ["iresnet18", "iresnet34", "iresnet50", "mobilefacenet", "compact"])
def test_backbone_output_shape(name: str) -> None:
    model = build_backbone(name).eval()
    assert model.input_size == (56 if name == "compact" else 112)
    with torch.no_grad():
        out = model(torch.rand(2, 3, model.input_size, model.input_size) * 2 - 1)
    assert out.shape == (2, 512)
    assert torch.isfinite(out).all()


def test_iresnet100_builds() -> None:
    model = build_backbone("iresnet100")
    n_params = sum(p.numel() for p in model.parameters())
    assert 60e6 < n_params < 70e6  # 65.2M, the insightface r100 size
    assert model.input_size == 112


def test_embedding_dim_and_unknown_name() -> None:
    model = build_backbone("compact", embedding_dim=128, dropout=0.2).eval()
    assert model(torch.zeros(2, 3, 56, 56)).shape == (2, 128)
    with pytest.raises(ValueError, match="iresnet50"):
        build_backbone("resnet9000")


def test_iresnet_head_bn_scale_frozen() -> None:
    model = build_backbone("iresnet18")
    assert not model.head.features.weight.requires_grad
    assert torch.all(model.head.features.weight == 1)


def test_flop_counts() -> None:
    # insightface's model zoo lists r50 as "6.3 GFLOPs"; that figure is multiply-adds, so in
    # FLOPs (2 per MAC, our convention) it is 12.6G. MobileFaceNet: 221M MAdds in its paper.
    flops = count_flops(build_backbone("iresnet50"), 112)
    assert 12.3e9 < flops < 12.9e9
    mfn = count_flops(build_backbone("mobilefacenet"), 112)
    assert 0.40e9 < mfn < 0.48e9
    compact = build_backbone("compact")
    fwd = count_flops(compact, 56)
    # training = 3x forward minus the first conv's input gradient (the image needs none)
    assert 2.9 * fwd < count_train_flops(compact, 56) < 3 * fwd
    assert compact.training  # counting must restore the mode


def test_compact_channels_last_train_step() -> None:
    model = build_backbone("compact").to(memory_format=torch.channels_last).train()
    x = torch.randn(4, 3, 56, 56).to(memory_format=torch.channels_last)
    out = model(x)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def _hard_ce(head: MarginHead, emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Reference ArcFace/CosFace loss written directly from the definitions."""
    cos = F.normalize(emb, dim=1) @ F.normalize(head.weight, dim=1).T
    theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    target = torch.cos(theta + head.m) if head.kind == "arcface" else cos - head.m
    onehot = F.one_hot(y, head.num_classes).bool()
    logits = head.s * torch.where(onehot, target, cos)
    return F.cross_entropy(logits, y)


@pytest.mark.parametrize("kind", KINDS)
def test_hard_labels_match_reference(kind: str) -> None:
    head = MarginHead(16, 10, kind)
    emb = torch.randn(8, 16)
    y = torch.randint(0, 10, (8,))
    # random 16-d embeddings keep theta + m < pi, where the reference needs no fallback branch
    loss, logits = head(emb, y)
    assert logits.shape == (8, 10)
    assert torch.allclose(loss, _hard_ce(head, emb, y), atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_with_unit_weight_equals_hard(kind: str) -> None:
    head = MarginHead(16, 10, kind)
    emb = torch.randn(8, 16)
    y1 = torch.randint(0, 10, (8,))
    y2 = torch.randint(0, 10, (8,))
    w = torch.tensor([[1.0, 0.0]]).expand(8, 2)
    mixed, mixed_logits = head(emb, torch.stack([y1, y2], 1), w)
    hard, hard_logits = head(emb, y1)
    assert torch.allclose(mixed, hard, atol=1e-6)
    assert torch.allclose(mixed_logits, hard_logits, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_loss_matches_hand_computation(kind: str) -> None:
    head = MarginHead(16, 10, kind)
    emb = torch.randn(6, 16)
    y1 = torch.randint(0, 10, (6,))
    y2 = (y1 + torch.randint(1, 10, (6,))) % 10
    phi = torch.tensor([0.0, 0.05, 0.3, 0.5, 0.75, 1.0])
    w = torch.stack([phi, 1 - phi], 1)
    loss, logits = head(emb, torch.stack([y1, y2], 1), w)
    # logits_mix = phi * M(f, y1) + (1 - phi) * M(f, y2), M from the single-label head
    _, m1 = head(emb, y1)
    _, m2 = head(emb, y2)
    expected_logits = phi[:, None] * m1 + (1 - phi[:, None]) * m2
    assert torch.allclose(logits, expected_logits, atol=1e-4)
    ce1 = F.cross_entropy(expected_logits, y1, reduction="none")
    ce2 = F.cross_entropy(expected_logits, y2, reduction="none")
    assert torch.allclose(loss, (phi * ce1 + (1 - phi) * ce2).mean(), atol=1e-5)


def test_gradients_flow_and_padding() -> None:
    head = MarginHead(16, 10, "arcface")
    emb = torch.randn(4, 16, requires_grad=True)
    labels = torch.tensor([[1, 2, -1], [3, -1, -1], [4, 5, 6], [7, 7, -1]])
    weights = torch.tensor([[0.4, 0.6, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.5, 0.5, 0.0]])
    loss, _ = head(emb, labels, weights)
    loss.backward()
    assert torch.isfinite(loss)
    assert emb.grad is not None and torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    # row 1 (one real label plus two padding terms) equals its hard-label loss
    row, _ = head(emb[1:2].detach(), labels[1:2], weights[1:2])
    hard, _ = head(emb[1:2].detach(), torch.tensor([3]))
    assert torch.allclose(row, hard, atol=1e-6)
    with pytest.raises(ValueError):
        head(emb, torch.tensor([[-1], [0], [0], [0]]), torch.ones(4, 1))


def test_arcface_fallback_is_finite_at_extremes() -> None:
    head = MarginHead(4, 3, "arcface")
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4))
    # embeddings exactly on, and exactly opposite to, their class weight: theta = 0 and pi
    emb = torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]], requires_grad=True)
    loss, _ = head(emb, torch.tensor([0, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()


@pytest.mark.parametrize("kind", KINDS)
def test_head_under_bf16_autocast(kind: str) -> None:
    head = MarginHead(32, 20, kind)
    emb = torch.randn(8, 32)
    y = torch.randint(0, 20, (8,))
    ref, _ = head(emb, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits = head(emb.bfloat16(), y)
    assert loss.dtype == torch.float32 and logits.dtype == torch.float32
    assert torch.isfinite(loss)
    assert abs(loss.item() - ref.item()) < 0.05 * ref.item()


def test_compact_and_head_learn_noise_classes() -> None:
    model = build_backbone("compact", embedding_dim=64).train()
    head = MarginHead(64, 4, "cosface", s=16.0, m=0.2)
    templates = torch.rand(4, 3, 56, 56) * 2 - 1
    labels = torch.arange(4).repeat(4)
    x = (templates[labels] + 0.3 * torch.randn(16, 3, 56, 56)).clamp(-1, 1)
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        loss, _ = head(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_registry_names() -> None:
    assert set(BACKBONES) == {"iresnet18", "iresnet34", "iresnet50", "iresnet100", "mobilefacenet", "compact"}
