"""Camera matching of composites (synface.data.context_match) on images made here."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from synface.data.context_match import (
    detail_energy,
    hull_mask,
    jpeg_quality,
    match_summary,
    match_to_photo,
    noise_level,
)

SIZE = 112


def _jpeg_bytes(quality: int) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.parametrize("quality", [30, 60, 75, 90, 95])
def test_jpeg_quality_is_read_from_the_files_table(quality) -> None:
    assert abs(jpeg_quality(_jpeg_bytes(quality)) - quality) <= 1


def test_jpeg_quality_of_other_files_is_none() -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    assert jpeg_quality(png.getvalue()) is None
    assert jpeg_quality(b"not an image at all") is None
    assert jpeg_quality(_jpeg_bytes(80)[:10]) is None  # cut inside the header: no table to read


def test_hull_mask_covers_the_polygon_and_nothing_else() -> None:
    corners = np.array([[20, 20], [80, 20], [80, 90], [20, 90], [50, 50]], np.float64)  # an inner point too
    mask = hull_mask(corners, SIZE)
    assert mask[30:80, 30:70].min() == 1.0 and mask[:15].max() == 0.0 and mask[:, 85:].max() == 0.0
    assert abs(mask.sum() - 60 * 70) < 70  # the area, up to the antialiased rim
    assert hull_mask(corners[:2], SIZE).max() == 0.0  # no area: no mask


def _scene(seed: int = 0, photo_noise: float = 0.03, blur_photo: bool = False, stripes: float = 0.08):
    """A 'photo' (textured skin-coloured oval on a striped background, with grain) and a composite
    whose oval is a flat, darker, noise-free face."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    oval = ((xx - 56) / 30.0) ** 2 + ((yy - 60) / 38.0) ** 2 <= 1.0
    photo = np.where((xx // 8) % 2 == 0, 0.2, 0.5)[..., None] * np.ones(3)
    skin = np.array([0.78, 0.6, 0.5])
    texture = 0.04 * np.sin(xx / 1.3) * np.sin(yy / 1.7)
    photo[oval] = skin + texture[oval][:, None]
    if blur_photo:
        photo = gaussian_filter(photo, (1.5, 1.5, 0))
    photo = np.clip(photo + rng.normal(0, photo_noise, (SIZE, SIZE, 1)), 0, 1).astype(np.float32)
    face = 0.8 * skin + stripes * np.sign(np.sin(xx / 1.1))[..., None]  # sharp stripes: a crisp render
    composite = photo.copy()
    composite[oval] = face[oval]
    points = np.stack([xx[oval], yy[oval]], 1).astype(np.float64) + 0.5
    return np.clip(composite * 255 + 0.5, 0, 255).astype(np.uint8), photo, hull_mask(points, SIZE), oval


def test_matching_keeps_the_photo_and_brings_the_face_to_its_colour_and_grain() -> None:
    composite, photo, mask, oval = _scene()
    out, report = match_to_photo(composite, photo, mask, None, np.random.default_rng(1))
    outside = mask == 0
    assert np.array_equal(out[outside], composite[outside])  # the photo's own pixels are kept
    before = np.median(composite[oval] / 255.0, 0)
    after = np.median(out[oval] / 255.0, 0)
    target = np.median(photo[oval], 0)
    assert (np.abs(after - target) < np.abs(before - target)).all()
    assert min(report.gain) > 1.0 and report.noise_added > 0.01
    gray = lambda im: im.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0  # noqa: E731
    interior = mask > 0.99
    assert noise_level(gray(out), interior) > 2 * noise_level(gray(composite), interior)


def test_the_seam_between_face_and_photo_softens() -> None:
    """A flat face darker than the photo's skin under it: the edges across the region's rim that
    the photo itself lacks shrink."""
    from scipy.ndimage import binary_dilation

    composite, photo, mask, _ = _scene(photo_noise=0.0, stripes=0.0)
    out, _ = match_to_photo(composite, photo, mask, None, np.random.default_rng(1))
    ring = binary_dilation((mask > 0.05) & (mask < 0.95), iterations=2)
    grad = lambda im: np.diff(im.astype(np.float32) / 255.0, axis=1)[ring[:, 1:]]  # noqa: E731
    excess = lambda im: float(np.abs(grad(im) - grad(photo * 255.0)).mean())  # the edges the photo lacks  # noqa: E731
    assert excess(out) < 0.5 * excess(composite)


def test_a_face_sharper_than_its_blurred_photo_is_blurred() -> None:
    composite, photo, mask, oval = _scene(blur_photo=True, photo_noise=0.0)
    out, report = match_to_photo(composite, photo, mask, None, np.random.default_rng(1))
    assert report.blur_sigma > 0
    gray = lambda im: im.astype(np.float32).mean(2) / 255.0  # noqa: E731
    interior = mask > 0.99
    assert detail_energy(gray(out), interior) < 0.6 * detail_energy(gray(composite), interior)


def test_matching_is_seeded_and_jpeg_is_applied_to_the_face_only() -> None:
    composite, photo, mask, _ = _scene()
    a, _ = match_to_photo(composite, photo, mask, 40, np.random.default_rng(5))
    b, _ = match_to_photo(composite, photo, mask, 40, np.random.default_rng(5))
    c, _ = match_to_photo(composite, photo, mask, 40, np.random.default_rng(6))
    plain, _ = match_to_photo(composite, photo, mask, None, np.random.default_rng(5))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, plain)  # the JPEG round trip changed the face
    assert np.array_equal(a[mask == 0], composite[mask == 0])


def test_too_little_face_is_left_as_drawn() -> None:
    composite, photo, _, _ = _scene()
    tiny = np.zeros((SIZE, SIZE), np.float32)
    tiny[50:53, 50:53] = 1.0
    out, report = match_to_photo(composite, photo, tiny, 75, np.random.default_rng(0))
    assert out is composite and report.gain == (1.0, 1.0, 1.0)


def test_match_summary_counts_what_was_done() -> None:
    composite, photo, mask, _ = _scene()
    reports = [match_to_photo(composite, photo, mask, q, np.random.default_rng(q or 0))[1] for q in (75, None, 90)]
    summary = match_summary(reports)
    assert summary["composites"] == 3 and summary["not_jpeg"] == 1 and summary["jpeg_quality_median"] in (75, 90, 82)
    assert len(summary["gain_median"]) == 3


def test_shared_context_counts_pairs_within_and_across_identities() -> None:
    from synface.data.synth_context import shared_context

    # identity 0's two images share one context person; identity 1's do not
    person, label = np.array([7, 7, 8, 9]), np.array([0, 0, 1, 1])
    assert shared_context(person, label) == {"within_identity": 0.5, "across_identities": 0.0}
    # every identity's images on different people, repeated across identities: a context is no cue
    person, label = np.array([1, 2, 1, 2]), np.array([0, 0, 1, 1])
    assert shared_context(person, label) == {"within_identity": 0.0, "across_identities": 0.5}
