"""Camera matching of a composite: the drawn face given its context photo's colour, blur, grain
and JPEG level, so the seam between the synthetic face and the real photo is no shortcut.

Why: a rendered face is noise-free, never JPEG-compressed, often sharper or blurrier than the
camera that took the photo around it, and lit with a fitted light whose overall gain drifts from
the photo's. A recogniser (or a person) then finds the face region by its look alone. Each step
measures the photo in the same crop and changes only the face region, weighted by a soft mask of
it, so the photo's own pixels stay as they were:

1. colour: per-channel gain so the face's rim matches the photo's skin under it (medians, clamped),
   then a smooth local correction from the rim inwards, and a feathered edge;
2. blur: a Gaussian on the face when it is sharper than the photo's face was (Laplacian energy);
3. grain: Gaussian noise up to the photo's noise level (robust estimate, Immerkaer's operator);
4. JPEG: a round trip at the photo's own quality, read from its quantisation table.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numba
import numpy as np

#: the JPEG standard's example luminance quantisation table (ITU-T T.81, Annex K, Table K.1): the
#: table encoders scale by the quality setting, so a file's table says its quality
STANDARD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)
#: the colour gain's range: enough to take up a fitted light's drift, not to repaint a face
GAIN_LIMITS = (0.8, 1.25)
#: blur widths tried on a face sharper than its photo (output pixels)
BLUR_SIGMAS = (0.35, 0.5, 0.7, 0.9, 1.2, 1.6)
#: the rim correction: colours within this distance of the rim's median count as skin; the
#: correction spreads this far (output pixels) and changes a channel by at most this much
RIM_COLOUR_SPREAD, RIM_SPREAD_PX, RIM_MAX_CHANGE = 0.12, 6.0, 0.15
#: the soft edge of the drawn face (output pixels)
FEATHER_PX = 2
#: Immerkaer's noise operator; on white noise of std s its response has std 6 s
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_MAD_TO_STD = 1.0 / 0.6745


def jpeg_quality(data: bytes) -> int | None:
    """The quality (1-100) a JPEG file was saved at, estimated from its luminance table as the
    IJG scaling of the standard table nearest it; None for other formats or unreadable data."""
    from PIL import Image  # noqa: PLC0415

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                return None
            tables = getattr(image, "quantization", None) or {}
    except (OSError, ValueError, SyntaxError):
        return None
    if 0 not in tables or len(tables[0]) != 64:
        return None
    total = float(np.sum(np.asarray(tables[0], np.float64)))  # the sum: independent of the table's order
    qualities = np.arange(1, 101)
    scale = np.where(qualities < 50, 5000.0 / qualities, 200.0 - 2.0 * qualities)
    sums = np.clip(np.floor((STANDARD_LUMA[None] * scale[:, None] + 50) / 100), 1, 255).sum(1)
    return int(qualities[int(np.argmin(np.abs(sums - total)))])


def hull_mask(points: np.ndarray, size: int, oversample: int = 4) -> np.ndarray:
    """(size, size) float32 coverage of the convex hull of `points` (N, 2) in output pixels
    (continuous, pixel centres at +0.5): the share of each pixel's oversample x oversample
    sample points (at their centres) that lie inside it."""
    hull = _convex_hull(np.asarray(points, np.float64))
    out = np.zeros((size, size), np.float32)
    if len(hull) >= 3:
        _fill_convex(np.ascontiguousarray(hull), int(oversample), out)
    return out


@numba.njit(cache=True, nogil=True)
def _fill_convex(hull, n, out):  # pragma: no cover (compiled)
    """Per row of samples, the span the convex polygon `hull` covers there, counted into `out`."""
    size = out.shape[0]
    rows = size * n
    corners = hull.shape[0]
    share = np.float32(1.0 / (n * n))
    for sy in range(rows):
        y = (sy + 0.5) / n
        left = np.inf
        right = -np.inf
        for k in range(corners):
            x0, y0 = hull[k, 0], hull[k, 1]
            x1, y1 = hull[(k + 1) % corners, 0], hull[(k + 1) % corners, 1]
            if (y0 <= y < y1) or (y1 <= y < y0):
                x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
                left = min(left, x)
                right = max(right, x)
        if left > right:
            continue
        first = max(int(np.ceil(left * n - 0.5)), 0)  # samples whose centre (sx + 0.5) / n lies in [left, right]
        last = min(int(np.floor(right * n - 0.5)), rows - 1)
        r = sy // n
        for sx in range(first, last + 1):
            out[r, sx // n] += share


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """The hull's corners in order (qhull); none for fewer than 3 points or points on a line."""
    from scipy.spatial import ConvexHull, QhullError  # noqa: PLC0415

    pts = points[np.isfinite(points).all(1)]
    if len(pts) < 3:
        return pts[:0]
    try:
        return pts[ConvexHull(pts).vertices]
    except QhullError:  # all on one point or one line: no area
        return pts[:0]


def _gray(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.ndimage import convolve  # noqa: PLC0415

    return convolve(image, kernel, mode="nearest")


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter  # noqa: PLC0415

    return gaussian_filter(image, sigma=(sigma, sigma, 0) if image.ndim == 3 else sigma, mode="nearest")


def noise_level(gray: np.ndarray, where: np.ndarray) -> float:
    """Std of the white noise in `gray` (values in [0, 1]) over the pixels `where`: the median
    absolute response of Immerkaer's operator, which edges and texture barely move."""
    response = np.abs(_filter(gray, _NOISE_KERNEL))[where]
    return float(np.median(response) * _MAD_TO_STD / 6.0) if response.size else 0.0


def detail_energy(gray: np.ndarray, where: np.ndarray) -> float:
    """Mean absolute Laplacian over `where`: how sharp the pixels there are."""
    lap = _filter(gray, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32))
    return float(np.abs(lap[where]).mean()) if where.any() else 0.0


@dataclass
class MatchReport:
    """What matching did to one composite (for cards and benchmarks)."""
    gain: tuple[float, float, float]
    blur_sigma: float
    noise_added: float
    jpeg_quality: int | None


def match_to_photo(composite: np.ndarray, photo: np.ndarray, mask: np.ndarray, quality: int | None,
                   rng: np.random.Generator) -> tuple[np.ndarray, MatchReport]:
    """`composite` (S, S, 3) uint8 with its face region (`mask`, (S, S) in [0, 1]) given the
    colour, blur, grain and JPEG level of `photo` (S, S, 3) float in [0, 1], the context photo
    warped into the same crop. Pixels outside the mask become the photo's own (which they already
    are, but for the faint outer rim a render draws beyond its region's hull)."""
    out = composite.astype(np.float32) / 255.0
    weight = mask[..., None].astype(np.float32)
    inside = mask > 0.5
    interior = mask > 0.97
    rim = inside & (_blur(mask.astype(np.float32), 2.5) < 0.97)
    if rim.sum() < 20 or interior.sum() < 50:  # too little face to measure: left as drawn
        return composite, MatchReport((1.0, 1.0, 1.0), 0.0, 0.0, None)
    # 1. colour
    face_med = np.median(out[rim], axis=0)
    photo_med = np.median(photo[rim], axis=0)
    gain = np.clip(photo_med / np.maximum(face_med, 1e-3), *GAIN_LIMITS).astype(np.float32)
    out = out * (1.0 + (gain - 1.0) * weight)
    out = out + _rim_correction(out, photo, mask, rim) * weight
    # 2. blur
    sigma = 0.0
    target = detail_energy(_gray(photo), interior)
    if detail_energy(_gray(out), interior) > 1.1 * target:
        gray = _gray(out)  # grey is linear in the channels: blurring it is blurring them, at a third of the cost
        candidates = [(abs(detail_energy(_blur(gray, s), interior) - target), s) for s in BLUR_SIGMAS]
        sigma = min(candidates)[1]
        out = weight * _blur(out, sigma) + (1.0 - weight) * out
    # 3. grain
    photo_noise = noise_level(_gray(photo), ~inside | interior)
    face_noise = noise_level(_gray(out), interior)
    added = float(np.sqrt(max(photo_noise ** 2 - face_noise ** 2, 0.0)))
    if added > 0:
        grain = rng.normal(0.0, added, out.shape[:2]).astype(np.float32)[..., None]
        out = out + grain * weight
    # the seam: the face's outer pixels fade into the photo rather than ending at a hard edge
    feather = _feather(mask)[..., None]
    out = feather * out + (1.0 - feather) * photo
    result = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    # 4. JPEG
    if quality is not None:
        result = _jpeg_face(result, weight, quality)
    return result, MatchReport(tuple(round(float(g), 4) for g in gain), sigma, round(added, 5), quality)  # type: ignore[arg-type]


def _rim_correction(face: np.ndarray, photo: np.ndarray, mask: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """(S, S, 3) a smooth colour correction that makes the face meet the photo's skin at its rim
    and fades towards the face's middle (a cheap stand-in for gradient-domain blending): the
    rim's differences, weighted by how skin-like the photo is there (hair and background that
    cross the rim count little), spread by normalised Gaussian filtering and clipped."""
    reference = np.median(photo[rim], axis=0)
    skin_like = np.exp(-((photo - reference) ** 2).sum(2) / (2 * RIM_COLOUR_SPREAD ** 2)) * rim
    weighted = _blur((photo - face) * skin_like[..., None], RIM_SPREAD_PX)
    total = _blur(skin_like.astype(np.float32), RIM_SPREAD_PX)[..., None]
    field = np.clip(weighted / np.maximum(total, 1e-4), -RIM_MAX_CHANGE, RIM_MAX_CHANGE)
    field = np.where(total > 1e-3, field, 0.0)
    fade = np.clip(2.0 * (1.0 - _blur(mask.astype(np.float32), RIM_SPREAD_PX / 2)), 0.0, 1.0)[..., None]
    return (field * fade).astype(np.float32)


def _feather(mask: np.ndarray) -> np.ndarray:
    """The face's weight over the photo: the mask's inside shrunk by FEATHER_PX and blurred by
    as much, so the drawn face ends in a soft edge inside its region."""
    from scipy.ndimage import binary_erosion  # noqa: PLC0415

    core = binary_erosion(mask > 0.5, iterations=FEATHER_PX)
    return np.minimum(_blur(core.astype(np.float32), FEATHER_PX / 1.5), mask).astype(np.float32)


def _jpeg_face(image: np.ndarray, weight: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        coded = np.asarray(decoded.convert("RGB"), np.float32)
    mixed = weight * coded + (1.0 - weight) * image.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def match_summary(reports: list[MatchReport]) -> dict:
    """What matching did over many composites: median gain and grain, the share blurred, the
    JPEG qualities met (for a dataset card)."""
    gains = np.array([r.gain for r in reports], np.float64)
    qualities = [r.jpeg_quality for r in reports if r.jpeg_quality is not None]
    return {"composites": len(reports), "gain_median": [round(float(g), 3) for g in np.median(gains, 0)],
            "gain_at_limit": round(float(np.mean((gains <= GAIN_LIMITS[0]) | (gains >= GAIN_LIMITS[1]))), 3),
            "blurred": round(float(np.mean([r.blur_sigma > 0 for r in reports])), 3),
            "grain_median": round(float(np.median([r.noise_added for r in reports])), 5),
            "jpeg_quality_median": int(np.median(qualities)) if qualities else None,
            "not_jpeg": len(reports) - len(qualities)}
