"""Faces in photographs: a synthetic person drawn into a real photo's context.

Why: a recogniser trained on renders learns the render's look (an egg-shaped head on a pastel
background) as much as the faces. A real aligned crop is a face with hair, ears, a collar, a scene
and a camera's look around it. So each image can take a context photo from a learned model's
source photos (`contexts.npz`, written by the fit): the synthetic person is rendered at that
photo's fitted pose, with its expression and its light, framed as real crops are (the renderer's
calibrated 5-point framing), and the photo, warped into the same crop, shows around it. In mode
"photo" only the synthetic face (hairline to jaw, cheeks to the silhouette) replaces the photo's
face, keeping the photo's hair, ears and neck; in mode "background" the whole synthetic head is
drawn over the photo. Contexts are chosen among the photos nearest the requested pose and skin
tone, seeded, so a dataset row re-renders exactly. Photos are checked against the SHA-256 the fit
recorded: one changed or gone since the fit is named and skipped, never silently used. The drawn
face then takes the photo's colour, blur, grain and JPEG level (`context_match`), so the seam is
no shortcut.
"""

from __future__ import annotations

import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synface.base.thread_pools import map_in_pool
from synface.data.context_match import MatchReport, hull_mask, jpeg_quality, match_to_photo
from synface.data.errors import DataError

CONTEXT_FILE = "contexts.npz"
from synface.data.synth_config import CONTEXT_MODES  # noqa: E402  ("plain", "photo", "background")
#: a context is drawn among this many photos nearest the requested pose, then nearest in skin tone
POSE_CANDIDATES, TONE_CANDIDATES = 64, 16
#: the arrays of a pool and their trailing shapes ("E"/"S": the model's expression/shape sizes)
FIELDS = {"path": (), "digest": (32,), "size": (2,), "person": (), "pose": (3,), "shape": ("S",), "expr": ("E",),
          "A": (2, 2), "t": (2,), "points": (68, 2), "light": (27,), "tone": (3,)}
MAX_CONTEXTS = 200_000
#: decoded context photos kept in memory (a 250 x 250 photo is 190 KB)
PHOTO_CACHE = 4096
#: the grain's random stream, beside each image's key
_GRAIN_STREAM = 0x6A41


@dataclass
class ContextPool:
    """A learned model's fitted photos (one row each) and the folder they are read from."""

    root: Path
    arrays: dict[str, np.ndarray]
    source: Path  # the contexts file, for messages

    def __len__(self) -> int:
        return len(self.arrays["path"])

    @classmethod
    def load(cls, folder: str | Path, root: str | Path, shape_size: int, expr_size: int) -> "ContextPool":
        """The pool of the model in `folder`, its photos under `root`; a DataError naming the file
        and what is wrong when it is missing, damaged or implausible."""
        path = Path(folder) / CONTEXT_FILE
        if path.is_symlink() or not path.is_file():
            raise DataError(f"no {CONTEXT_FILE}: this model has no context photos; refit it with this version "
                            "(python -m synface face-model fit --photos DIR --name NAME), or use --context plain", path=path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in FIELDS if k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"unreadable context file ({exc})", path=path) from None
        sizes: dict[object, int] = {"S": shape_size, "E": expr_size}
        n = -1
        for key, trailing in FIELDS.items():
            if key not in arrays:
                raise DataError(f"lacks the array {key!r}", path=path)
            a = arrays[key]
            want = tuple(sizes.get(d, d) for d in trailing)
            n = len(a) if n < 0 else n
            if a.ndim != 1 + len(want) or a.shape[1:] != want or len(a) != n:
                raise DataError(f"array {key!r} has shape {a.shape}, expected ({n}, {', '.join(map(str, want))})",
                                path=path)
            if key != "path" and (a.dtype.kind not in "uif" or (a.dtype.kind == "f" and not np.isfinite(a).all())):
                raise DataError(f"array {key!r} holds {a.dtype} or non-finite values", path=path)
        if arrays["path"].dtype.kind != "U":
            raise DataError("array 'path' is not text", path=path)
        if not 1 <= n <= MAX_CONTEXTS:
            raise DataError(f"{n} context photos (1 to {MAX_CONTEXTS} expected)", path=path)
        for rel in arrays["path"]:
            parts = Path(rel).parts
            if not parts or Path(rel).is_absolute() or ".." in parts:
                raise DataError(f"context photo path {rel!r} leaves the photo folder", path=path)
        return cls(Path(root), arrays, path)

    def choose(self, n: int, seed: int, pose: torch.Tensor, tone: torch.Tensor | None = None,
               keys: torch.Tensor | None = None, spread: bool = False) -> np.ndarray:
        """(n,) context rows for images with requested poses (n, 3) and skin tones (n, 3): per
        image, among the POSE_CANDIDATES photos nearest its yaw and pitch, the TONE_CANDIDATES
        nearest its tone, one picked by a hash of `seed` and the image's key (its row, or `keys`:
        images sharing a key share their context). With `spread` (one photo per identity, every
        identity asking for the same pose), the candidates are the quarter of the pool nearest
        the pose and the sixteenth of it nearest the tone, so identities rarely share a photo."""
        keys_np = np.arange(n, dtype=np.uint64) if keys is None else np.asarray(keys, dtype=np.int64).astype(np.uint64)
        yaw_pitch = self.arrays["pose"][:, :2].astype(np.float64)
        want = pose[:, :2].detach().double().cpu().numpy()
        dist = ((yaw_pitch[None, :, :] - want[:, None, :]) ** 2).sum(2)  # (n, N)
        k_pose, k_tone = _candidate_counts(len(self), spread)
        near = np.argsort(dist, axis=1, kind="stable")[:, :k_pose]
        if tone is not None:
            gap = np.abs(self.arrays["tone"].astype(np.float64)[near] - tone.detach().double().cpu().numpy()[:, None, :]).sum(2)
            near = np.take_along_axis(near, np.argsort(gap, axis=1, kind="stable")[:, :k_tone], 1)
        pick = _mix64(_salt(seed) ^ keys_np) % np.uint64(near.shape[1])
        return near[np.arange(n), pick.astype(np.int64)].astype(np.int64)

    def assign_per_identity(self, seed: int, tones: np.ndarray) -> np.ndarray:
        """(N,) one context row per identity, in identity order, for identities of skin tones
        (N, 3): each takes, among the quarter of the pool nearest frontal and the sixteenth of it
        nearest its tone (in an order hashed from `seed` and the identity), the first photo whose
        person no earlier identity has, else the photo of the least-used person. So identities
        share a context person only once the pool runs out of people near their tone."""
        k_pose, k_tone = _candidate_counts(len(self), spread=True)
        yaw_pitch = self.arrays["pose"][:, :2].astype(np.float64)
        frontal = np.argsort((yaw_pitch ** 2).sum(1), kind="stable")[:k_pose]
        person = np.asarray(self.arrays["person"], np.int64)
        used = np.zeros(int(person.max()) + 1 if len(person) else 1, np.int64)
        pool_tone = self.arrays["tone"].astype(np.float64)[frontal]
        salt = _salt(seed)
        rows = np.empty(len(tones), np.int64)
        for i, tone in enumerate(np.asarray(tones, np.float64)):
            near = frontal[np.argsort(np.abs(pool_tone - tone).sum(1), kind="stable")[:k_tone]]
            with np.errstate(over="ignore"):
                order = np.argsort(_mix64(salt ^ (np.uint64(i) * np.uint64(0x100000001B3) + near.astype(np.uint64))),
                                   kind="stable")
            near = near[order]
            pick = near[np.argmin(used[person[near]])] if len(near) else 0  # the first least-used
            rows[i] = pick
            used[person[pick]] += 1
        return rows


def _candidate_counts(pool: int, spread: bool) -> tuple[int, int]:
    """(photos nearest the pose, of those nearest the tone) a context is picked among: few for a
    photo per image; a wide share of the pool when every identity asks for one frontal photo."""
    if not spread:
        k_pose = min(POSE_CANDIDATES, pool)
        return k_pose, min(TONE_CANDIDATES, k_pose)
    k_pose = min(max(POSE_CANDIDATES, pool // 4), pool)
    return k_pose, min(max(TONE_CANDIDATES, pool // 16), k_pose)


def _salt(seed: int) -> np.uint64:
    """A set seed spread over 64 bits, xored into the keys a context hash picks by."""
    with np.errstate(over="ignore"):  # wrapping 64-bit arithmetic is the hash's point
        return np.uint64(int(seed) % (1 << 63)) * np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-mixed 64-bit hash of each value (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class PhotoReader:
    """Context photos read and checked against their digests, the last few kept in memory."""

    def __init__(self, pool: ContextPool) -> None:
        self.pool = pool
        self._cache: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self.problems: dict[int, str] = {}
        #: row -> the JPEG quality its file was saved at (None: not a JPEG), for camera matching
        self.quality: dict[int, int | None] = {}

    def __call__(self, k: int) -> np.ndarray | None:
        """Context photo `k` (H, W, 3) uint8, or None when it is gone, unreadable or changed
        since the fit (the reason in `problems`)."""
        import hashlib  # noqa: PLC0415

        from synface.data.imageio import read_rgb  # noqa: PLC0415

        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        path = self.pool.root / str(self.pool.arrays["path"][k])
        image = None
        try:
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            if data is None:
                self.problems[k] = f"{path}: gone since the fit"
            elif hashlib.sha256(data).digest() != self.pool.arrays["digest"][k].tobytes():
                self.problems[k] = f"{path}: changed since the fit"
            else:
                image = np.asarray(read_rgb(path, what="context photo"))
                self.quality[k] = jpeg_quality(data)
        except (OSError, DataError) as exc:
            self.problems[k] = f"{path}: unreadable ({exc})"
        self._cache[k] = image
        if len(self._cache) > PHOTO_CACHE:
            self._cache.popitem(last=False)
        return image


def photo_to_crop(A_r: np.ndarray, t_r: np.ndarray, A_f: np.ndarray, t_f: np.ndarray) -> np.ndarray:
    """2x3 map from photo pixels to crop pixels (integer-centre convention, as
    `synface.data.align.warp_with_matrix` takes it): a projected point lands at A_r x + t_r in the
    crop and at A_f x + t_f in the photo (both continuous, pixel centres at +0.5)."""
    lin = np.asarray(A_r, np.float64) @ np.linalg.inv(np.asarray(A_f, np.float64))
    shift = np.asarray(t_r, np.float64) - lin @ np.asarray(t_f, np.float64)
    return np.concatenate([lin, (shift + lin @ np.array([0.5, 0.5]) - 0.5)[:, None]], 1)


def with_context(coeffs, pool: ContextPool, rows: np.ndarray):
    """The coefficients with each image's pose, expression and light taken from its context photo
    (so the face is lit and turned as the photo's was, and a stored row re-renders as drawn)."""
    index = torch.as_tensor(rows, dtype=torch.long)
    take = lambda key: torch.from_numpy(pool.arrays[key][index.numpy()]).to(coeffs.pose.device, torch.float32)  # noqa: E731
    return coeffs.replace(pose=take("pose"), expr=take("expr"), light=take("light"),
                          jitter=torch.zeros_like(coeffs.jitter))


def render_in_context(generator, coeffs, pool: ContextPool, rows: np.ndarray, mode: str = "photo",
                      reader: PhotoReader | None = None, keys: np.ndarray | None = None, match: bool = True,
                      reports: list[MatchReport] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(B, 112, 112, 3) uint8 composites of `coeffs` (already `with_context`) into their context
    photos `rows`, and (B,) bool: which had their photo (the others are drawn on the procedural
    background, and counted by the caller). With `match`, each drawn face takes its photo's colour,
    blur, grain and JPEG level (`synface.data.context_match`; the grain seeded by `keys`, one per
    image: a row re-renders exactly only under its own key; default the positions in this call);
    what matching did is appended to `reports` when given."""
    from synface.data.align import warp_with_matrix  # noqa: PLC0415

    if mode not in CONTEXT_MODES[1:]:
        raise ValueError(f"context mode {mode!r}: choose from {', '.join(CONTEXT_MODES[1:])}")
    reader = reader or PhotoReader(pool)
    size = generator.pipeline.image_size
    framing = generator.pipeline.alignment(coeffs)
    A_r, t_r = (x.cpu().numpy() for x in framing)
    backdrop = np.zeros((len(rows), size, size, 3), np.float32)
    have = np.zeros(len(rows), bool)
    for i, k in enumerate(rows):
        photo = reader(int(k))
        if photo is None:
            continue
        matrix = photo_to_crop(A_r[i], t_r[i], pool.arrays["A"][k], pool.arrays["t"][k])
        backdrop[i] = warp_with_matrix(photo, matrix, size).astype(np.float32) / 255.0
        have[i] = True
    alpha = generator.model.face_region if mode == "photo" else None
    images = generator.pipeline.render(coeffs, torch.from_numpy(backdrop), alpha).images.cpu().numpy()
    if match and have.any():
        keys = np.arange(len(rows), dtype=np.int64) if keys is None else np.asarray(keys, np.int64)
        masks = face_masks(generator, coeffs, mode, np.flatnonzero(have), framing)

        def match_one(i: int) -> MatchReport:
            rng = np.random.default_rng([int(keys[i]) & ((1 << 63) - 1), _GRAIN_STREAM])
            images[i], report = match_to_photo(images[i], backdrop[i], masks[i], reader.quality.get(int(rows[i])), rng)
            return report

        done = map_in_pool("match", torch.get_num_threads(), match_one, sorted(masks))
        if reports is not None:
            reports.extend(done)
    if not have.all():  # a photo gone or changed since the fit: the procedural background instead
        missing = (~have).nonzero()[0].tolist()
        images[missing] = generator.pipeline.render(coeffs[missing]).images.cpu().numpy()
    return images, have


def face_masks(generator, coeffs, mode: str, which: np.ndarray,
               framing: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[int, np.ndarray]:
    """Image index -> (S, S) soft mask of what covers its photo: the face region (mode 'photo')
    or the whole head ('background'), as the hull of those vertices where the render put them.
    `framing`: the whole batch's `pipeline.alignment(coeffs)` when the caller has it."""
    region = generator.model.face_region
    vertices = torch.nonzero(region > 0.5).flatten() if mode == "photo" else None
    index = torch.as_tensor(np.asarray(which), dtype=torch.long)
    subset = None if framing is None else (framing[0][index], framing[1][index])
    points = generator.pipeline.vertex_pixels(coeffs[index.tolist()], vertices, subset).cpu().numpy()
    size = generator.pipeline.image_size
    # camera matching and hulls are per image, mostly in numpy, scipy, PIL and numba, which release the GIL
    hulls = map_in_pool("match", torch.get_num_threads(), lambda p: hull_mask(p, size), points)
    return dict(zip((int(i) for i in which), hulls))


class ContextRenderer:
    """Draws coefficients into context photos of a learned model in one call (benchmarks, the
    Generator page, previews): each image's context is chosen near its pose and its identity's
    tone, seeded by `seed` and its position; its pose, expression and light become the context's."""

    def __init__(self, generator, mode: str = "photo", match: bool = True) -> None:
        model = generator.model
        folder, card = getattr(model, "folder", None), getattr(model, "card", None)
        if folder is None or card is None:
            raise ValueError("contexts come from a learned face model's photos: choose one with --model NAME, or "
                             "--context plain")
        if mode not in CONTEXT_MODES[1:]:
            raise ValueError(f"context mode {mode!r}: choose from {', '.join(CONTEXT_MODES[1:])}")
        root = Path(str(card.get("photo_root") or card.get("source") or ""))
        self.pool = ContextPool.load(folder, root, model.base.layout.shape, model.layout.expr)
        self.reader = PhotoReader(self.pool)
        self.generator = generator
        self.mode = mode
        self.match = match

    def identity_tone(self, coeffs) -> torch.Tensor | None:
        """(B, 3) each identity's skin tone (its head region's bank people), or None."""
        return self.albedo_tone(coeffs.albedo)

    def albedo_tone(self, albedo: torch.Tensor) -> torch.Tensor | None:
        """(B, 3) the skin tone of albedo coefficients (their head region's bank people), or None."""
        model = self.generator.model
        tones = getattr(model, "_tones", None)
        if tones is None:
            return None
        return albedo.reshape(len(albedo), model.regions, model.people)[:, 0].cpu() @ tones.cpu()

    def choose(self, coeffs, seed: int) -> np.ndarray:
        return self.pool.choose(len(coeffs.pose), seed, coeffs.pose, self.identity_tone(coeffs))

    def render(self, coeffs, seed: int = 0, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, object]:
        """(images (B, 112, 112, 3) uint8, the context rows, the coefficients as drawn)."""
        rows = self.choose(coeffs, seed) if rows is None else np.asarray(rows)
        drawn = with_context(coeffs, self.pool, rows)
        keys = (np.int64(seed % (1 << 40)) << np.int64(20)) + np.arange(len(rows), dtype=np.int64)
        images, _ = render_in_context(self.generator, drawn, self.pool, rows, self.mode, self.reader, keys, self.match)
        return images, rows, drawn

    def context_view(self, row: int, size: int = 112) -> np.ndarray | None:
        """The context photo `row`, scaled to `size` on its longer side (for display), or None."""
        from PIL import Image  # noqa: PLC0415

        photo = self.reader(int(row))
        if photo is None:
            return None
        h, w = photo.shape[:2]
        scale = size / max(h, w)
        return np.asarray(Image.fromarray(photo).resize((max(1, round(w * scale)), max(1, round(h * scale)))))


def image_renderer(generator, context: str = "plain", seed: int = 0, match: bool = True):
    """A function from coefficients to (B, 112, 112, 3) uint8 images: plain renders, or drawn into
    context photos (`ContextRenderer`, each call's contexts seeded by `seed` and the call's number;
    camera-matched unless `match` is False)."""
    if context == "plain":
        return lambda coeffs: generator.render(coeffs).images.cpu().numpy()
    renderer = ContextRenderer(generator, context, match)
    calls = iter(range(1 << 62))
    return lambda coeffs: renderer.render(coeffs, seed * 100_003 + next(calls))[0]
