"""A learned face model's texture bank: the texture file, checked before use, and the bank
prepared for composing textures of one size (a low band, a detail band and region masks).

Why split the bands: a new person takes each facial region from a different source person. If
whole textures were blended across a region's edge, or between two identities in identity
mixup, two people's brows, eyelids and lips would show at once. So the low band (colour and tone,
blurred beyond feature shapes) blends smoothly, and the detail band comes from one person at a
time: over a region's sharp mask, and in mixup handed over at one point of phi per region.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

#: the low band keeps structure coarser than this share of the texture's side (Gaussian sigma)
LOW_SIGMA = 1.0 / 32
#: the low band's region masks blend over this share of the texture's side (Gaussian sigma)
WIDE_SIGMA = 1.0 / 16
#: the low band is stored at this fraction of a composed texture's side
LOW_FRACTION = 4
#: bounds a texture file must keep before it is read
MAX_PEOPLE, MIN_SIZE, MAX_SIZE = 5000, 16, 2048
#: identity mixup: each region hands its detail from the lower-indexed person to the other around
#: its own share of phi, spread over this range, with a ramp of +-SWITCH_WIDTH
SWITCH_RANGE, SWITCH_WIDTH = (0.32, 0.68), 0.04
#: three or more people in one region (a whole-face blend): detail weights sharpened by this power
DETAIL_SHARPNESS = 8.0


class TextureFileError(ValueError):
    """A texture file that is missing, not a regular file, of the wrong shape or type, truncated or altered."""


def textures_digest(textures: np.ndarray) -> np.ndarray:
    """(32,) uint8 sha256 of the textures' bytes (C order)."""
    return np.frombuffer(hashlib.sha256(np.ascontiguousarray(textures, dtype=np.uint8).data).digest(), np.uint8).copy()


def read_textures(path: Path, digest: np.ndarray, people: int) -> np.ndarray:
    """The (P, S, S, 3) uint8 textures, memory-mapped read-only, after checking the file is a
    regular file whose header, size and bytes are what the model file recorded."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise TextureFileError(f"{path}: missing (the fit did not finish)") from None
    except OSError as exc:
        raise TextureFileError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise TextureFileError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"format version {version}")
            offset = handle.tell()
    except (OSError, ValueError, SyntaxError) as exc:
        raise TextureFileError(f"{path}: not a texture file ({exc})") from None
    if dtype != np.uint8 or fortran or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
        raise TextureFileError(f"{path}: holds {dtype} {shape}, expected uint8 (people, size, size, 3)")
    size = shape[1]
    if shape[0] != people or not MIN_SIZE <= size <= MAX_SIZE or size & (size - 1) or not 2 <= people <= MAX_PEOPLE:
        raise TextureFileError(f"{path}: {shape[0]} textures of {size} x {size}; expected {people} (at most "
                               f"{MAX_PEOPLE}) of a power of two between {MIN_SIZE} and {MAX_SIZE}")
    expected = offset + int(np.prod(shape))
    if info.st_size != expected:
        raise TextureFileError(f"{path}: {info.st_size} bytes, expected {expected} (truncated or padded)")
    digest = np.asarray(digest)
    if digest.dtype != np.uint8 or digest.shape != (32,):
        raise TextureFileError(f"{path}: the model file's texture digest is malformed")
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(1 << 22):
            h.update(chunk)
    if h.digest() != digest.tobytes():
        raise TextureFileError(f"{path}: its contents differ from the ones the model was fitted with (altered or corrupt)")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _area_resize(maps: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, C) -> (N, size, size, C) float32: box means when shrinking, nearest when growing."""
    s = maps.shape[1]
    if size <= s:
        f = s // size
        return maps.reshape(len(maps), size, f, size, f, maps.shape[3]).mean(axis=(2, 4), dtype=np.float64).astype(np.float32)
    f = size // s
    return np.repeat(np.repeat(maps, f, axis=1), f, axis=2).astype(np.float32)


def _blur(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (N, S, S, C) over the square, wrapping around u (x), clamped in v (y)."""
    out = ndimage.gaussian_filter1d(maps, sigma, axis=2, mode="wrap")
    return ndimage.gaussian_filter1d(out, sigma, axis=1, mode="nearest")


def upsample_taps(low: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size*size, 4) texel indices into a low x low map and their bilinear weights (u wraps)."""
    centre = (np.arange(size) + 0.5) / size * low - 0.5
    base = np.floor(centre)
    frac = (centre - base).astype(np.float32)
    x0 = base.astype(np.int64) % low
    x1 = (x0 + 1) % low
    y0 = np.clip(base.astype(np.int64), 0, low - 1)
    y1 = np.clip(base.astype(np.int64) + 1, 0, low - 1)
    fy, fx = np.meshgrid(frac, frac, indexing="ij")
    Y0, X0 = np.meshgrid(y0, x0, indexing="ij")
    Y1, X1 = np.meshgrid(y1, x1, indexing="ij")
    idx = np.stack([Y0 * low + X0, Y0 * low + X1, Y1 * low + X0, Y1 * low + X1], -1).reshape(-1, 4)
    w = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], -1).reshape(-1, 4)
    return idx.astype(np.int32), w.astype(np.float32)


def bank_for_size(textures: np.ndarray, region_masks: np.ndarray, tones: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """The bank for composing `size` x `size` textures: low (P, L*L, 3) each person's low band,
    detail (P, size*size, 3) the rest (so that low upsampled plus detail gives the person's own
    texture back), narrow (R, size*size) and wide (R, L*L) region masks, tones (P, 3), and
    up_idx/up_w the bilinear taps from L x L to size x size (L = size / LOW_FRACTION)."""
    P, S0 = textures.shape[0], textures.shape[1]
    low_size = max(4, size // LOW_FRACTION)
    idx, w = upsample_taps(low_size, size)
    low = np.empty((P, low_size * low_size, 3), np.float32)
    detail = np.empty((P, size * size, 3), np.float32)
    for p in range(P):
        full = _area_resize(np.asarray(textures[p : p + 1]), size) / np.float32(255.0)
        blurred = _blur(full, LOW_SIGMA * size)
        low_p = _area_resize(blurred, low_size).reshape(-1, 3)
        up = (low_p[idx] * w[..., None]).sum(1)
        low[p] = low_p
        detail[p] = full.reshape(-1, 3) - up
    R = region_masks.shape[0]
    masks = region_masks.reshape(R, S0, S0, 1).astype(np.float32)
    narrow = _area_resize(masks, size).reshape(R, -1)
    wide = _area_resize(_blur(masks, WIDE_SIGMA * S0), low_size).reshape(R, -1)
    narrow /= np.maximum(narrow.sum(0, keepdims=True), 1e-6)
    wide /= np.maximum(wide.sum(0, keepdims=True), 1e-6)
    return {"low": low, "detail": detail, "narrow": narrow.astype(np.float32), "wide": wide.astype(np.float32),
            "tones": np.ascontiguousarray(tones, np.float32), "up_idx": idx, "up_w": w}


def switch_points(regions: int) -> torch.Tensor:
    """(R,) the share of the lower-indexed person at which each region's detail changes hands."""
    if regions == 1:
        return torch.tensor([0.5])
    return torch.linspace(*SWITCH_RANGE, regions)


def detail_weights(low_w: torch.Tensor) -> torch.Tensor:
    """(B, R, K) detail weights from the coefficients' (B, R, K) weights of each region's people
    (ascending person index): one person keeps all; more are sharpened; two hand over at the
    region's switch point (`switch_points`). So that regions change hands one at a time along a
    mixup's phi, every region measures the share of the same side of the mix: the side of the
    lower-indexed person of the first region that mixes two people (the reference), found in
    each region as the person whose weight is nearer that reference share."""
    B, R, K = low_w.shape
    w = low_w.clamp_min(0)
    count = (w > 0).sum(2, keepdim=True)
    sharp = w ** DETAIL_SHARPNESS
    out = sharp / sharp.sum(2, keepdim=True).clamp_min(1e-30)
    if K >= 2:
        pair_share = w[:, :, 0] / (w[:, :, 0] + w[:, :, 1]).clamp_min(1e-12)  # (B, R) lower-indexed share
        two = count.squeeze(2) == 2
        first = torch.where(two.any(1), two.float().argmax(1), torch.zeros(B, dtype=torch.long))
        reference = pair_share.gather(1, first.view(B, 1))  # (B, 1)
        lower_is_x = (pair_share - reference).abs() <= ((1 - pair_share) - reference).abs()
        x_share = torch.where(lower_is_x, pair_share, 1 - pair_share)
        t = switch_points(R).to(w.device).view(1, R)
        ramp = ((x_share - (t - SWITCH_WIDTH)) / (2 * SWITCH_WIDTH)).clamp(0, 1)
        to_x = ramp * ramp * (3 - 2 * ramp)
        lower = torch.where(lower_is_x, to_x, 1 - to_x)
        pair = torch.zeros_like(w)
        pair[:, :, 0] = lower
        pair[:, :, 1] = 1 - lower
        out = torch.where(count == 2, pair, out)
    return torch.where(count <= 1, (w > 0).to(w.dtype), out)
