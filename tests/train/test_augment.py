"""DigiFace-1M's published augmentation: each op keeps shape and range, is a pure function of its
seed, does what its name says, and the preset applies each step at the paper's probability."""

from __future__ import annotations

import math

import pytest
import torch

from synface.train import augment as A

SEEDS = range(6)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def picture(h: int = 24, w: int = 24, seed: int = 0) -> torch.Tensor:
    """A smooth coloured picture in [-1, 1] (a face-like mix of gradients plus texture)."""
    g = gen(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = torch.stack([0.4 * xx, 0.3 * yy, -0.2 * xx * yy])
    return (base + 0.3 * torch.rand(3, h, w, generator=g) - 0.15).clamp(-1, 1)


def ramp(size: int = 40) -> torch.Tensor:
    """Channels 0 and 1 hold half of each pixel's normalised x and y: a warp's output shows where it sampled."""
    yy, xx = torch.meshgrid(*(((torch.arange(size) + 0.5) * 2 / size - 1),) * 2, indexing="ij")
    return torch.stack([0.5 * xx, 0.5 * yy, torch.zeros_like(xx)])


def fit_affine(out: torch.Tensor, size: int) -> tuple[torch.Tensor, float]:
    """Least-squares 2x2 linear part of out(p) = M p + b over the central pixels; the max residual.

    The centre (within 0.6 of the half-side) samples well inside the frame under every warp's
    bounds, so no mirrored border enters the fit.
    """
    src = ramp(size)[:2].reshape(2, -1).T * 2
    dst = out[:2].reshape(2, -1).T * 2
    inside = (src.abs() < 0.6).all(dim=1)
    design = torch.cat([src[inside], torch.ones(int(inside.sum()), 1)], dim=1).double()
    sol = torch.linalg.lstsq(design, dst[inside].double()).solution
    residual = float((design @ sol - dst[inside].double()).abs().max())
    return sol[:2].T, residual


RANDOM_OPS = [A.gaussian_blur, A.motion_blur, A.gaussian_noise, A.brightness, A.contrast, A.saturation,
              A.hue_shift, A.down_up, A.jpeg, A.aspect_change, A.scale_rotate_shift, A.perspective]


@pytest.mark.parametrize("op", RANDOM_OPS + [A.grayscale, A.digiface_published], ids=lambda f: f.__name__)
def test_op_keeps_shape_and_range_and_is_a_function_of_its_seed(op):
    x = picture(20, 28)
    outs = [op(x, gen(s)) for s in SEEDS]
    for y in outs:
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= -1 - 1e-5 and float(y.max()) <= 1 + 1e-5
    for s, y in zip(SEEDS, outs):
        assert torch.equal(op(x, gen(s)), y)
    if op in RANDOM_OPS:
        assert any(not torch.equal(outs[0], y) for y in outs[1:])


def test_warps_and_hue_are_the_identity_at_zero_strength():
    x = picture(18, 26)
    assert torch.allclose(A.aspect_change(x, gen(1), ratio=(1.0, 1.0)), x, atol=1e-5)
    assert torch.allclose(A.scale_rotate_shift(x, gen(1), scale=(1.0, 1.0), degrees=0.0, shift=0.0), x, atol=1e-5)
    assert torch.allclose(A.perspective(x, gen(1), distortion=0.0), x, atol=1e-5)
    assert torch.allclose(A.hue_shift(x, gen(1), max_turn=0.0), x, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_aspect_change_stretches_one_axis_and_keeps_the_area(seed):
    size = 40
    m, residual = fit_affine(A.aspect_change(ramp(size), gen(seed)), size)
    assert residual < 1e-3
    assert abs(m[0, 1]) < 1e-4 and abs(m[1, 0]) < 1e-4
    assert m[0, 0] * m[1, 1] == pytest.approx(1.0, abs=1e-3)        # area kept
    ratio = float(m[1, 1] / m[0, 0])                                  # content width/height stretch
    assert 0.8 - 1e-3 <= ratio <= 1.25 + 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_scale_rotate_shift_is_a_similarity_within_its_bounds(seed):
    size = 40
    out = A.scale_rotate_shift(ramp(size), gen(seed), scale=(0.9, 1.1), degrees=10.0, shift=0.06)
    m, residual = fit_affine(out, size)
    assert residual < 1e-3
    zoom = 1 / math.sqrt(float(torch.linalg.det(m)))
    assert 0.9 - 1e-3 <= zoom <= 1.1 + 1e-3
    rotation = m * zoom
    assert torch.allclose(rotation @ rotation.T, torch.eye(2, dtype=rotation.dtype), atol=1e-3)
    assert abs(math.degrees(math.atan2(float(rotation[1, 0]), float(rotation[0, 0])))) <= 10.0 + 1e-2


@pytest.mark.parametrize("seed", SEEDS)
def test_perspective_moves_each_corner_within_its_bound_and_is_not_affine(seed):
    size, distortion = 40, 0.06
    x = ramp(size)
    out = A.perspective(x, gen(seed), distortion=distortion)
    moved = (out[:2] - x[:2]).abs() * 2                 # normalised units: the side is 2
    centre = (x[:2].abs() * 2 < 0.6).all(dim=0)         # samples inside the frame: no mirrored border
    assert float(moved[:, centre].max()) <= 2 * distortion * 1.5
    assert float(moved.mean()) > 1e-3
    _, residual = fit_affine(out, size)
    assert residual > 1e-3                              # a homography, not an affine map


def test_motion_blur_smears_a_point_along_one_line_and_keeps_its_light():
    x = -torch.ones(3, 64, 64)
    x[:, 32, 32] = 1.0
    y = A.motion_blur(x, gen(3), length=(0.2, 0.2))
    light = (y[0] + 1) / 2
    assert float(light.sum()) == pytest.approx(1.0, abs=1e-4)        # kernel sums to 1, point far from borders
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    w = light / light.sum()
    cy, cx = float((w * yy).sum()), float((w * xx).sum())
    cov = torch.tensor([[float((w * (xx - cx) ** 2).sum()), float((w * (xx - cx) * (yy - cy)).sum())],
                        [float((w * (xx - cx) * (yy - cy)).sum()), float((w * (yy - cy) ** 2).sum())]])
    small, large = torch.linalg.eigvalsh(cov).tolist()
    assert large > 8 * small and large > 4.0                          # a streak, not a disc
    flat = torch.full((3, 16, 16), 0.25)
    assert torch.allclose(A.motion_blur(flat, gen(0)), flat, atol=1e-5)


def test_hue_shift_keeps_luma_and_leaves_grey_alone():
    g = gen(0)
    x = 0.1 * (torch.rand(3, 12, 12, generator=g) - 0.5)                # low chroma: no clamping
    y = A.hue_shift(x, gen(4), max_turn=0.1)

    def luma(t):
        return 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]

    assert torch.allclose(luma(y), luma(x), atol=1e-4) and not torch.allclose(y, x, atol=1e-4)
    grey = torch.full((3, 8, 8), 0.2)
    assert torch.allclose(A.hue_shift(grey, gen(4), max_turn=0.1), grey, atol=1e-5)


def test_brightness_contrast_saturation_do_what_they_say():
    x = 0.3 * (torch.rand(3, 10, 10, generator=gen(0)) - 0.5)          # mid-range: no clamping
    img, b = (x + 1) / 2, (A.brightness(x, gen(2)) + 1) / 2
    ratio = b / img
    assert float(ratio.max() - ratio.min()) < 1e-4 and 0.7 - 1e-4 <= float(ratio.mean()) <= 1.3 + 1e-4
    c = (A.contrast(x, gen(2)) + 1) / 2
    assert float(c.mean()) == pytest.approx(float(img.mean()), abs=1e-5) and not torch.allclose(c, img)
    grey = torch.full((3, 8, 8), -0.3)
    assert torch.allclose(A.saturation(grey, gen(2)), grey, atol=1e-5)
    assert not torch.allclose(A.saturation(x, gen(2)), x)


#: DigiFace-1M's published probabilities (Bae et al., WACV 2023).
PUBLISHED = {"aspect": 0.1, "blur": 0.05, "motion_blur": 0.05, "noise": 0.035, "brightness": 0.15,
             "contrast": 0.3, "hue": 0.1, "saturation": 0.1, "grayscale": 0.01, "down_up": 0.01, "jpeg": 0.05}


def test_the_preset_uses_the_published_probabilities_and_warps():
    steps = {name: p for name, p, _ in A.DIGIFACE_PUBLISHED_STEPS}
    for name, p in PUBLISHED.items():
        assert steps[name] == p
    assert {"scale_rotate_shift", "perspective"} <= set(steps)
    assert A.build_augment("digiface-published") is A.digiface_published


def test_every_config_preset_builds():
    from synface.train.config import AUGMENT_PRESETS, config_from_dict

    assert "digiface-published" in AUGMENT_PRESETS
    for name in AUGMENT_PRESETS:
        assert callable(A.build_augment(name))
    cfg = config_from_dict({"data": "somewhere", "augment": "digiface-published"})
    assert cfg.augment == "digiface-published"


def binomial_ok(count: int, n: int, p: float) -> bool:
    """Within 6 standard deviations of n p: a correct chain fails this about once in 10^9 tries."""
    return abs(count - n * p) <= 6 * math.sqrt(n * p * (1 - p)) + 1


def test_the_chain_applies_each_step_at_its_probability():
    calls = {name: 0 for name, _, _ in A.DIGIFACE_PUBLISHED_STEPS}

    def recorder(name):
        def op(x, g):
            calls[name] += 1
            return x
        return op

    chain = A.probability_chain(tuple((name, p, recorder(name)) for name, p, _ in A.DIGIFACE_PUBLISHED_STEPS))
    n, x = 20_000, torch.zeros(3, 2, 2)
    for s in range(n):
        chain(x, gen(s))
    for name, p, _ in A.DIGIFACE_PUBLISHED_STEPS:
        assert binomial_ok(calls[name], n, p), (name, calls[name], n * p)


@pytest.mark.parametrize("step", A.DIGIFACE_PUBLISHED_STEPS, ids=lambda s: s[0])
def test_each_real_op_changes_the_image_exactly_when_its_draw_says_so(step):
    name, p, op = step
    one = A.probability_chain(((name, p, op),))
    x, n, applied = picture(16, 16), 1_500, 0
    for s in range(n):
        drawn = float(torch.rand((), generator=gen(s))) < p
        changed = not torch.equal(one(x, gen(s)), x)
        assert changed == drawn, (name, s)
        applied += changed
    assert binomial_ok(applied, n, p)


def test_the_preset_is_flip_then_the_chain_and_reproducible():
    x = picture(20, 20)
    chain = A.probability_chain(A.DIGIFACE_PUBLISHED_STEPS)
    for s in range(40):
        g = gen(s)
        expected = chain(A.hflip(x, g), g)
        assert torch.equal(A.digiface_published(x, gen(s)), expected)
        assert torch.equal(A.digiface_published(x, gen(s)), A.build_augment("digiface-published")(x, gen(s)))
