"""Face-recognition backbones: IResNet (insightface layout), MobileFaceNet and a CPU-friendly `compact` net.

All backbones map an aligned RGB crop with pixels in [-1, 1] to an (unnormalised) embedding;
the margin head (`synface.train.heads`) L2-normalises it. Each module carries `input_size`
(112, or 56 for `compact`) so that callers can resize crops before the forward pass.

FLOP convention (used by `count_flops` and the MFU benchmark): one multiply-add = 2 FLOPs,
counted by forward hooks on `nn.Conv2d` and `nn.Linear` only (biases, BatchNorm, activations,
pooling, residual adds and dropout are not counted; they are memory-bound and small).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Backbone",
    "IResNet",
    "MobileFaceNet",
    "CompactNet",
    "BACKBONES",
    "build_backbone",
    "count_flops",
    "count_train_flops",
    "matmul_peak_flops",
    "measure_train_mfu",
]

_BN_EPS = 1e-5


class Backbone(nn.Module):
    """What every backbone here is: a module with the crop side it expects and its embedding size."""

    input_size: int
    embedding_dim: int


def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs/linears, unit-gamma BN: a standard start that trains without warm-up tricks."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, 0.0, 0.01)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) and mod.affine:
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)


class _EmbeddingHead(nn.Module):
    """insightface "E" output: BN2d -> Dropout -> Flatten -> FC -> BN1d (gamma frozen at 1).

    Freezing the BN1d scale (as arcface_torch does) leaves only a learned shift, so the
    embedding's scale cannot drift to game the normalised margin head.
    """

    def __init__(self, channels: int, spatial: int, embedding_dim: int, dropout: float) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels * spatial * spatial, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=_BN_EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.bn(x))
        return self.features(self.fc(torch.flatten(x, 1)))


# ----------------------------------------------------------------------------- IResNet


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=_BN_EPS)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout, eps=_BN_EPS)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(x)
        out = self.prelu(self.bn2(self.conv1(out)))
        out = self.bn3(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(Backbone):
    """LResNet-E-IR / insightface iresnet: 112x112 -> 7x7x512 -> FC embedding."""

    input_size = 112

    def __init__(
        self, layers: Sequence[int], embedding_dim: int = 512, dropout: float = 0.0,
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        self.input_size = 112
        self.embedding_dim = embedding_dim
        self.stem = nn.Sequential(_conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0], eps=_BN_EPS), nn.PReLU(widths[0]))
        stages: list[nn.Module] = []
        cin = widths[0]
        for n_blocks, width in zip(layers, widths):
            blocks = [IBasicBlock(cin, width, stride=2)]
            blocks += [IBasicBlock(width, width, stride=1) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.head = _EmbeddingHead(widths[-1], 7, embedding_dim, dropout)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


# ----------------------------------------------------------------------------- MobileFaceNet


class _ConvBN(nn.Sequential):
    """conv -> BN (-> PReLU unless linear): the unit MobileFaceNet is built from."""

    def __init__(
        self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
        linear: bool = False, padding: int | None = None,
    ) -> None:
        pad = k // 2 if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=_BN_EPS),
        ]
        if not linear:
            layers.append(nn.PReLU(cout))
        super().__init__(*layers)


class _Bottleneck(nn.Module):
    """MobileNetV2 inverted residual: expand 1x1 -> depthwise 3x3 -> linear project 1x1."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            _ConvBN(cin, hidden, 1),
            _ConvBN(hidden, hidden, 3, stride=stride, groups=hidden),
            _ConvBN(hidden, cout, 1, linear=True),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileFaceNet(Backbone):
    """MobileFaceNet (Chen et al., 2018) with a global depthwise (GDC) head.

    Table 1 of the paper: conv3x3/2 64, dw3x3 64, bottlenecks (t,c,n,s) = (2,64,5,2),
    (4,128,1,2), (2,128,6,1), (4,128,1,2), (2,128,2,1), conv1x1 512, linear GDConv7x7 512,
    then (here, as insightface does) FC to `embedding_dim` and BN1d instead of the paper's
    linear 1x1 conv to 128.
    """

    SETTINGS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))

    def __init__(self, embedding_dim: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.input_size = 112
        self.embedding_dim = embedding_dim
        layers: list[nn.Module] = [_ConvBN(3, 64, 3, stride=2), _ConvBN(64, 64, 3, groups=64)]
        cin = 64
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        # conv1x1 to 512, then GDC: a linear 7x7 depthwise conv without padding (7x7 -> 1x1).
        layers += [_ConvBN(cin, 512, 1), _ConvBN(512, 512, 7, groups=512, linear=True, padding=0)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(512, embedding_dim, bias=False)
        self.bn = nn.BatchNorm1d(embedding_dim, eps=_BN_EPS)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.bn(self.fc(self.dropout(x)))


# ----------------------------------------------------------------------------- compact (CPU)


class _PlainBlock(nn.Module):
    """Two wide 3x3 conv-BN-ReLU layers with an identity shortcut (VGG/RepVGG-like, GEMM-bound)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(width, width)
        self.bn1 = nn.BatchNorm2d(width, eps=_BN_EPS)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + x, inplace=True)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv3x3(cin, cout, stride=2), nn.BatchNorm2d(cout, eps=_BN_EPS), nn.ReLU(inplace=True))


class CompactNet(Backbone):
    """Small backbone for 10-minute CPU runs on 56x56 crops (aligned 112x112 crops downsampled by 2).

    Designed for CPU matmul efficiency rather than minimum FLOPs: a handful of dense 3x3
    convolutions whose channel counts are multiples of 64 (oneDNN GEMM-friendly, channels_last
    friendly), few elementwise ops (ReLU in place, one residual add per block, no PReLU or
    depthwise convs). Default layout: stem conv3x3/2 3->32 (56 -> 28), conv 32->64 at 28x28,
    conv/2 64->128 + one residual block at 14x14, conv/2 128->256 + one residual block at 7x7,
    then the insightface BN-Dropout-FC-BN head. 0.33 GFLOPs forward, 8.3M parameters (6.4M of
    them in the FC). Measured on a 2-core AVX-512 CPU (2 threads, batch 64-128, channels_last
    on or off): 0.6-0.75 of the fp32 torch.mm peak, about 190-240 training images/s; see
    `measure_train_mfu`. (MobileFaceNet reaches about 0.15 there: depthwise convs are memory-bound.)
    """

    def __init__(
        self, embedding_dim: int = 512, dropout: float = 0.0,
        widths: Sequence[int] = (32, 64, 128, 256), blocks: Sequence[int] = (0, 1, 1),
    ) -> None:
        super().__init__()
        if len(widths) != 4 or len(blocks) != 3:
            raise ValueError("CompactNet needs 4 widths (stem + 3 stages) and 3 block counts")
        self.input_size = 56
        self.embedding_dim = embedding_dim
        layers: list[nn.Module] = [_down(3, widths[0])]
        for cin, cout, n in zip(widths[:-1], widths[1:], blocks):
            stride = 1 if cin == widths[0] else 2
            layers.append(nn.Sequential(_conv3x3(cin, cout, stride), nn.BatchNorm2d(cout, eps=_BN_EPS), nn.ReLU(inplace=True)))
            layers += [_PlainBlock(cout) for _ in range(n)]
        self.features = nn.Sequential(*layers)
        self.head = _EmbeddingHead(widths[-1], 7, embedding_dim, dropout)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ----------------------------------------------------------------------------- factory

BACKBONES: dict[str, Callable[[int, float], Backbone]] = {
    "iresnet18": lambda e, d: IResNet((2, 2, 2, 2), e, d),
    "iresnet34": lambda e, d: IResNet((3, 4, 6, 3), e, d),
    "iresnet50": lambda e, d: IResNet((3, 4, 14, 3), e, d),
    "iresnet100": lambda e, d: IResNet((3, 13, 30, 3), e, d),
    "mobilefacenet": lambda e, d: MobileFaceNet(e, d),
    "compact": lambda e, d: CompactNet(e, d),
}


def build_backbone(name: str, embedding_dim: int = 512, dropout: float = 0.0) -> Backbone:
    """Build a backbone by name; the returned module has `input_size` (112 or 56) and `embedding_dim`."""
    key = name.lower()
    if key not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(BACKBONES)}")
    return BACKBONES[key](embedding_dim, dropout)


# ----------------------------------------------------------------------------- FLOPs and MFU


def _layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    return out.numel() * cast(nn.Linear, module).in_features  # hooks sit on Conv2d and Linear only


def _count(model: nn.Module, input_size: int, training: bool) -> int:
    """Run one image through `model` (eval mode, weights untouched) with counting hooks."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        macs = _layer_macs(module, out)
        if training:
            # forward + weight gradient, plus input gradient when the input needs one
            # (the first conv's input is the image, whose gradient autograd never computes).
            macs *= 3 if inputs[0].requires_grad else 2
        total += macs

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x = torch.zeros(1, 3, input_size, input_size, device=param.device, dtype=param.dtype)
        with torch.set_grad_enabled(training):
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return 2 * total


def count_flops(model: nn.Module, input_size: int) -> int:
    """Forward FLOPs for one image (2 x multiply-adds of Conv2d and Linear layers)."""
    return _count(model, input_size, training=False)


def count_train_flops(model: nn.Module, input_size: int) -> int:
    """FLOPs of one training step per image: forward + weight grads + input grads (none for the image)."""
    return _count(model, input_size, training=True)


def _time_matmul(a: torch.Tensor, b: torch.Tensor) -> float:
    start = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - start


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
    """Best achieved fp32 FLOP/s of a square torch.mm: the denominator of MFU on this CPU."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.mm(a, b)
    return 2.0 * n**3 / min(_time_matmul(a, b) for _ in range(repeats))


def measure_train_mfu(
    name: str = "compact", batch_size: int = 128, steps: int = 5, channels_last: bool = True,
    num_classes: int = 0, matmul_n: int = 2048,
) -> dict[str, float]:
    """Time SGD training steps of a backbone on random data and report achieved FLOP/s and MFU.

    The peak is a square fp32 torch.mm (n = `matmul_n`) timed between the training steps, so
    that both see the same load on a shared CPU; `mfu` compares the fastest step with the
    fastest matmul, `mfu_median` the medians. With `num_classes` > 0 a linear classifier and
    cross-entropy join the step and the FLOP count. Uses the current torch thread count.
    """
    model = build_backbone(name)
    size = model.input_size
    flops = count_train_flops(model, size)
    classifier = nn.Linear(model.embedding_dim, num_classes, bias=False) if num_classes > 0 else None
    if classifier is not None:
        flops += 2 * 3 * model.embedding_dim * num_classes  # forward + weight grad + input grad
    params = list(model.parameters()) + (list(classifier.parameters()) if classifier is not None else [])
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    # Module.to takes memory_format; torch's type overloads omit it
    model = model.to(memory_format=fmt).train()  # type: ignore[call-overload]
    x = torch.randn(batch_size, 3, size, size).to(memory_format=fmt)
    y = torch.randint(0, max(num_classes, 1), (batch_size,))
    a, b = torch.randn(matmul_n, matmul_n), torch.randn(matmul_n, matmul_n)

    def step() -> float:
        start = time.perf_counter()
        emb = model(x)
        loss = F.cross_entropy(classifier(emb), y) if classifier is not None else emb.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    step(), step(), _time_matmul(a, b)
    step_times, mm_times = [], []
    for _ in range(steps):
        step_times.append(step())
        mm_times.append(min(_time_matmul(a, b) for _ in range(3)))
    step_times.sort()
    mm_times.sort()
    mm_flops = 2.0 * matmul_n**3
    best, median = step_times[0], step_times[len(step_times) // 2]
    peak, peak_median = mm_flops / mm_times[0], mm_flops / mm_times[len(mm_times) // 2]
    return {
        "train_flops_per_image": float(flops),
        "step_seconds_best": best,
        "step_seconds_median": median,
        "images_per_second": batch_size / median,
        "achieved_flops": flops * batch_size / best,
        "peak_flops": peak,
        "mfu": flops * batch_size / best / peak,
        "mfu_median": flops * batch_size / median / peak_median,
    }
