"""`bench reconstruct`: a held-out photo re-rendered from its own fit, scored by SSIM over the face."""

from __future__ import annotations

import numpy as np
import pytest

from synface.bench.reconstruct import ssim_map
from tests.support import LFW_ROOT, requires_lfw


def test_ssim_is_one_for_equal_images_and_falls_with_noise() -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (40, 40))
    assert np.allclose(ssim_map(image, image), 1.0)
    noisy = np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1)
    blurred = np.full_like(image, image.mean())
    assert ssim_map(image, noisy).mean() < 0.9 and ssim_map(image, blurred).mean() < 0.2


@pytest.mark.slow
@requires_lfw
def test_a_texture_map_keeps_more_of_a_photo_than_colours_at_the_vertices(gen) -> None:
    """Three LFW photos of folds the suite does not fit: each re-rendered with its texture map
    matches the photo well, and better on average than with its colours at the vertices only."""
    from synface.bench.reconstruct import reconstruct_one
    from synface.data.imageio import read_rgb
    from synface.fitting.landmarks import calibrate_landmark_vertices, photo_landmarks
    from synface.fitting.unwrap import texel_geometry

    ids, _ = calibrate_landmark_vertices(gen)
    geo = texel_geometry(gen)
    texture, vertex = [], []
    for name in ("Zico/Zico_0001.jpg", "Sophie/Sophie_0001.jpg", "Timothy_Rigas/Timothy_Rigas_0001.jpg"):
        image = np.asarray(read_rgb(LFW_ROOT / "images" / name))
        points = photo_landmarks(image)
        assert points is not None
        result = reconstruct_one(gen, image, points + 0.5, ids, geo)
        assert result["real"].shape == result["texture"].shape == (112, 112, 3) and result["face_pixels"] > 2000
        texture.append(result["texture_ssim"])
        vertex.append(result["per_vertex_ssim"])
    assert min(texture) > 0.8 and np.mean(texture) > np.mean(vertex) + 0.01, (texture, vertex)


def test_bad_photo_folders_are_named(tmp_path, capsys) -> None:
    from tests.support import cli_error

    cli_error(capsys, ["bench", "reconstruct", "--photos", tmp_path / "nowhere"], "not found")
    cli_error(capsys, ["bench", "reconstruct", "--photos", tmp_path, "--folds", "x"], "--folds")
