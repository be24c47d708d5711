"""Long benchmarks report progress in every stage, from 0 to the end (issue 18 item 4; bench realism's
stages are checked in tests/bench/test_bench_realism.py, on the run that test makes anyway)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from synface.bench.realism import RENDER_CHUNK, real_pairs_reference, render_images


def test_render_images_reports_chunks_and_keeps_the_images(gen):
    coeffs = gen.sample(RENDER_CHUNK + 5, 4)
    ticks: list[tuple] = []
    images = render_images(gen, coeffs, "render", lambda *t: ticks.append(t), offset=10, total=300)
    assert ticks == [("render", 10 + RENDER_CHUNK, 300), ("render", 10 + RENDER_CHUNK + 5, 300)]
    assert np.array_equal(images[-5:], gen.render(coeffs[RENDER_CHUNK:]).images.cpu().numpy())


def test_real_pairs_reference_ticks_from_zero_to_every_pair(tmp_path):
    from synface.data.verification_bin import write_bin

    rng = np.random.default_rng(0)

    def png() -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    write_bin(tmp_path / "real.bin", [png() for _ in range(60)], [i % 2 == 0 for i in range(30)])
    ticks: list[tuple] = []
    fake_descriptor = lambda images: images.reshape(len(images), -1)[:, :128].astype(np.float64)  # noqa: E731
    real_pairs_reference(str(tmp_path / "real.bin"), fake_descriptor, lambda *t: ticks.append(t))
    assert ticks[0] == ("real pairs", 0, 30) and ticks[-1] == ("real pairs", 30, 30)
    assert [d for _, d, _ in ticks] == sorted(d for _, d, _ in ticks)


def test_bench_spread_ticks_per_image():
    pytest.importorskip("dlib")
    from synface.bench.spread import bench_spread

    ticks: list[tuple] = []
    bench_spread(identities=3, draws=2, progress=lambda *t: ticks.append(t))
    assert ticks[0] == (0, 6) and ticks[-1] == (6, 6)
