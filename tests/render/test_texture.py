"""Texture maps: the head's texture square, baking, mip chains, lookups, the learned bank's
composition and detail hand-over, and the texture file's checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from synface.face.learned_bank import (
    SWITCH_WIDTH, TextureFileError, bank_for_size, detail_weights, read_textures, switch_points, textures_digest,
)
from synface.render import texture_cpu, texture_torch


def test_the_texel_map_reproduces_fields_linear_over_the_grid(gen) -> None:
    """Each grid cell maps affinely onto the square, so baking the vertices' own v (and u, away
    from the wrap) gives every texel its own coordinate back."""
    layout = gen.model.uv_layout
    size = 128
    ids, w = layout.texel_map(size)
    assert ids.shape == (size * size, 3) and np.allclose(w.sum(1), 1.0, atol=1e-6) and (w >= -1e-6).all()
    field = np.zeros((gen.model.num_vertices, 3), np.float32)
    field[:, 0] = layout.uv[:, 0]
    field[:, 1] = layout.uv[:, 1]
    baked = np.zeros((size * size, 3), np.float32)
    texture_cpu.bake_field(field, ids, w, baked)
    y, x = np.divmod(np.arange(size * size), size)
    u, v = (x + 0.5) / size, (y + 0.5) / size
    rows, cols = layout.rows, layout.cols
    body = (v > 1 / (rows + 1)) & (v < rows / (rows + 1))
    inner = body & (u > 0.5 / cols) & (u < 1 - 0.5 / cols)
    assert np.abs(baked[body, 1] - v[body]).max() < 1e-5
    assert np.abs(baked[inner, 0] - u[inner]).max() < 1e-5
    torch_baked = texture_torch.bake_field(torch.from_numpy(field)[None], torch.from_numpy(ids).long(),
                                           torch.from_numpy(w), size)
    assert np.allclose(torch_baked[0].permute(1, 2, 0).reshape(-1, 3).numpy(), baked, atol=1e-6)


def test_the_square_is_symmetric_about_the_face_midline(gen) -> None:
    layout = gen.model.uv_layout
    verts = gen.model.mean_vertices.numpy()
    j = np.arange(layout.cols)
    mirror = [layout.vertex(40, layout.cols - 1 - k) for k in j]
    straight = [layout.vertex(40, k) for k in j]
    assert np.allclose(verts[straight, 0], -verts[mirror, 0], atol=1e-5)
    assert np.allclose(layout.uv[straight, 0], 1 - layout.uv[mirror, 0], atol=1e-6)


def _chain(texture: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = texture.shape[0]
    sizes, offsets = texture_cpu.mip_offsets(size)
    buf = np.zeros((int(offsets[-1]), 3), np.float32)
    buf[: size * size] = texture.reshape(-1, 3)
    texture_cpu.clamp_and_mip(buf, sizes, offsets)
    return buf, sizes, offsets


def test_lookups_filter_wrap_in_u_and_clamp_in_v() -> None:
    size = 32
    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 1, (size, size, 3)).astype(np.float32)
    buf, sizes, offsets = _chain(texture)
    out, tmp = np.zeros(3, np.float32), np.zeros(3, np.float32)
    # a texel centre at level 0 reads that texel; u wraps across the seam; v clamps at the edges
    texture_cpu.sample(buf, sizes, offsets, np.float32(5.5 / size), np.float32(7.5 / size), np.float32(0.0), out, tmp)
    assert np.allclose(out, texture[7, 5], atol=1e-6)
    texture_cpu.sample(buf, sizes, offsets, np.float32(1.0 + 5.5 / size), np.float32(7.5 / size), np.float32(0.0), out, tmp)
    assert np.allclose(out, texture[7, 5], atol=1e-5)
    texture_cpu.sample(buf, sizes, offsets, np.float32(0.0), np.float32(0.2 / size), np.float32(0.0), out, tmp)
    assert np.allclose(out, 0.5 * (texture[0, 0] + texture[0, -1]), atol=1e-5)
    # a wide footprint reads the coarsest level, whose mean is the texture's
    texture_cpu.sample(buf, sizes, offsets, np.float32(0.3), np.float32(0.6), np.float32(20.0), out, tmp)
    coarse = out.copy()
    texture_cpu.sample(buf, sizes, offsets, np.float32(0.3), np.float32(0.6), np.float32(len(sizes) - 1), out, tmp)
    assert np.array_equal(coarse, out)
    assert np.allclose(buf[offsets[-2]: offsets[-1]].mean(0), texture.reshape(-1, 3).mean(0), atol=1e-5)
    texture_cpu.sample(buf, sizes, offsets, np.float32(0.3), np.float32(0.6), np.float32(1.25), out, tmp)
    lo, hi = np.zeros(3, np.float32), np.zeros(3, np.float32)
    texture_cpu.sample(buf, sizes, offsets, np.float32(0.3), np.float32(0.6), np.float32(1.0), lo, tmp)
    texture_cpu.sample(buf, sizes, offsets, np.float32(0.3), np.float32(0.6), np.float32(2.0), hi, tmp)
    assert np.allclose(out, 0.75 * lo + 0.25 * hi, atol=1e-6)  # trilinear between levels
    # the torch path reads the same values
    levels = texture_torch.mip_chain(torch.from_numpy(texture).permute(2, 0, 1)[None])
    u = torch.tensor([[[5.5 / size, 1.0 + 5.5 / size]]])
    v = torch.tensor([[[7.5 / size, 7.5 / size]]])
    got = texture_torch.sample(levels, u, v, torch.zeros_like(u))[0, :, 0].T.numpy()
    assert np.allclose(got, texture[7, 5][None].repeat(2, 0), atol=1e-5)


def _bank(size: int = 64, people: int = 3, regions: int = 2):
    rng = np.random.default_rng(1)
    textures = rng.integers(0, 256, (people, 128, 128, 3), dtype=np.uint8)
    masks = np.zeros((regions, 128 * 128), np.float32)
    masks[0] = 1.0
    y, x = np.divmod(np.arange(128 * 128), 128)
    centre = (np.abs(x - 64) < 20) & (np.abs(y - 64) < 20)
    masks[1, centre] = 1.0
    masks[0, centre] = 0.0
    tones = rng.uniform(0.2, 0.8, (people, 3)).astype(np.float32)
    return textures, masks, tones, bank_for_size(textures, masks, tones, size)


def test_one_person_everywhere_gives_their_texture_back() -> None:
    """Low band upsampled plus detail is the person's own texture (their tone replaced by their own)."""
    textures, masks, tones, bank = _bank()
    size, R = 64, masks.shape[0]
    low_img = np.zeros((bank["low"].shape[1], 3), np.float32)
    out = np.zeros((size * size, 3), np.float32)
    idx = np.full((R, 1), 2, np.int64)
    ones = np.ones((R, 1), np.float32)
    texture_cpu.compose_low(bank["low"], bank["wide"], bank["tones"], idx, ones, low_img)
    texture_cpu.add_bank(out, low_img, bank["up_idx"], bank["up_w"], bank["narrow"], bank["detail"], idx, ones)
    full = textures[2].reshape(64, 2, 64, 2, 3).mean(axis=(1, 3)).reshape(-1, 3) / 255.0
    assert np.abs(out - full).max() < 1e-4
    torch_bank = {k: torch.from_numpy(v) for k, v in bank.items()}
    torch_bank["up_idx"] = torch_bank["up_idx"].long()
    got = texture_torch.compose_bank(torch_bank, torch.from_numpy(idx)[None], torch.from_numpy(ones)[None],
                                     torch.from_numpy(ones)[None], size)
    assert np.abs(got[0].permute(1, 2, 0).reshape(-1, 3).numpy() - out).max() < 1e-5


def test_a_region_takes_its_detail_from_its_own_person() -> None:
    """The centre region's detail is person 1's, the rest person 0's, with person 0's tone everywhere."""
    textures, masks, tones, bank = _bank()
    size = 64
    low_img = np.zeros((bank["low"].shape[1], 3), np.float32)
    out = np.zeros((size * size, 3), np.float32)
    idx = np.array([[0], [1]], np.int64)
    ones = np.ones((2, 1), np.float32)
    texture_cpu.compose_low(bank["low"], bank["wide"], bank["tones"], idx, ones, low_img)
    texture_cpu.add_bank(out, low_img, bank["up_idx"], bank["up_w"], bank["narrow"], bank["detail"], idx, ones)
    y, x = np.divmod(np.arange(size * size), size)
    centre = (np.abs(x - 32) < 6) & (np.abs(y - 32) < 6)
    corner = (x < 8) & (y < 8)
    assert np.allclose(out[centre] - bank["detail"][1][centre], low_img.mean(0), atol=0.25)  # sanity: finite, bounded
    assert np.abs(out[corner] - (bank["detail"][0][corner] + 0)).mean() < np.abs(out[corner] - bank["detail"][1][corner]).mean()


def test_detail_changes_hands_once_per_region_along_phi() -> None:
    R = 4
    t = switch_points(R)
    assert len(set(t.tolist())) == R and (t.diff() > 2 * SWITCH_WIDTH).all()  # one region at a time
    phis = torch.linspace(0, 1, 101)
    low = torch.stack([torch.stack([phis, 1 - phis], 1)] * R, 1)  # (101, R, 2): the lower-indexed person's share phi
    high = detail_weights(low)
    assert torch.allclose(high.sum(2), torch.ones(101, R))
    first = high[:, :, 0]
    assert ((first == 0) | (first == 1)).float().mean() > 0.8  # mostly one person's detail, never a long blend
    assert (first.diff(dim=0) >= 0).all()  # each region switches once, towards the person phi grows
    for r in range(R):
        assert first[phis < t[r] - SWITCH_WIDTH, r].eq(0).all() and first[phis > t[r] + SWITCH_WIDTH, r].eq(1).all()
    one = detail_weights(torch.tensor([[[0.7, 0.0]]]))
    assert one.tolist() == [[[1.0, 0.0]]]
    three = detail_weights(torch.tensor([[[0.5, 0.3, 0.2]]]))
    assert torch.allclose(three.sum(), torch.tensor(1.0)) and three[0, 0, 0] > 0.95


def test_texture_files_are_checked_before_use(tmp_path) -> None:
    textures = np.random.default_rng(2).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    good = tmp_path / "textures.npy"
    np.save(good, textures)
    digest = textures_digest(textures)
    assert np.array_equal(read_textures(good, digest, 3), textures)
    with pytest.raises(TextureFileError, match="expected 4"):
        read_textures(good, digest, 4)
    wrong = tmp_path / "float.npy"
    np.save(wrong, textures.astype(np.float32))
    with pytest.raises(TextureFileError, match="expected uint8"):
        read_textures(wrong, digest, 3)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(TextureFileError, match="truncated"):
        read_textures(cut, digest, 3)
    changed = tmp_path / "changed.npy"
    data = bytearray(good.read_bytes())
    data[-1] ^= 0xFF
    changed.write_bytes(bytes(data))
    with pytest.raises(TextureFileError, match="differ"):
        read_textures(changed, digest, 3)
    fifo = tmp_path / "fifo.npy"
    os.mkfifo(fifo)
    with pytest.raises(TextureFileError, match="not a regular file"):
        read_textures(fifo, digest, 3)
    with pytest.raises(TextureFileError, match="missing"):
        read_textures(tmp_path / "none.npy", digest, 3)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(TextureFileError, match="not a texture file"):
        read_textures(junk, digest, 3)
