"""Contexts of a synthetic set: which photo each image is drawn into, and the privacy of that.

Each image of a set built with `context` "photo" or "background" takes one of its learned model's
context photos (`synface.data.contexts`): chosen near the image's drawn pose and its identity's
skin tone, seeded by (set seed, identity, sample) so a row re-renders exactly, or by (seed,
identity) alone with one context per identity. With `min_context_distance` > 0 every composite is
checked: its dlib descriptor must lie at least that far from every photo of the context's person,
else the image takes the next candidate (a new seeded draw), up to MAX_ATTEMPTS. Accepted draws
are kept in the set's folder (context_check.json) like the source check's, so a resumed build
and the manifest agree with what was rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synface.data.check_state import load_check_state, save_check_state
from synface.data.context_match import match_summary
from synface.data.contexts import ContextRenderer, render_in_context, with_context
from synface.data.synth_config import stream_seed

CONTEXT_CHECK_FILE = "context_check.json"
#: context draws tried per image before the build stops, naming the image
MAX_ATTEMPTS = 8
#: an image whose context photo's yaw or pitch lies further than this from the requested pose counts
#: as one the pool could not serve (the photo's pose is used, the nearest the pool has)
FAR_POSE_DEG = 15.0
#: composites whose camera matching a card summarises at most (the first ones a build renders)
MATCH_SAMPLE = 20_000


class ContextSpec:
    """The context draws of one set (`config`), rendered by `generator` (a learned model)."""

    def __init__(self, config, generator, identity_albedo: Callable[[int], Any] | None = None) -> None:
        """`identity_albedo(i)`: identity i's albedo coefficients before any privacy redraw (the
        set's own draw), which one context per identity needs for every identity at once."""
        self.renderer = ContextRenderer(generator, config.context)
        self._identity_albedo = identity_albedo
        #: with one context per identity: each identity's first-choice row (`assign_per_identity`)
        self._per_identity: np.ndarray | None = None
        self.pool, self.reader = self.renderer.pool, self.renderer.reader
        self.config = config
        self.gen = generator
        self.seed = stream_seed("context", config.seed, config.purpose)
        #: (identity, sample) -> (accepted attempt, distance to the context person or -1 unchecked)
        self.accepted: dict[tuple[int, int], tuple[int, float]] = {}
        #: (identity, sample) -> degrees between the requested pose and its context photo's
        self.pose_gap: dict[tuple[int, int], float] = {}
        self._dirty = False
        self._sources: tuple[np.ndarray, np.ndarray] | None = None
        #: what camera matching did to the composites this build rendered (this process, at most
        #: MATCH_SAMPLE; for the card)
        self.match_reports: list = []

    # ------------------------------------------------------------------ choice
    def _key(self, i: int, k: int, attempt: int) -> int:
        base = i if self.config.contexts_per_identity else i * self.config.samples + k
        return base * MAX_ATTEMPTS + attempt

    def rows(self, i: int, ks, coeffs, own=None) -> np.ndarray:
        """(len(ks),) context rows of identity i's samples `ks` (their drawn poses in `coeffs`).
        With one context per identity, every sample asks for the same thing (a frontal photo of
        the identity's own tone, from `own`: its coefficients before identity mixup, picked from
        a wide share of the pool so that identities rarely share one), so they share one photo,
        and with it its pose, expression and light (a sample whose composite had to be redrawn
        takes another)."""
        import torch  # noqa: PLC0415

        if self.config.contexts_per_identity:
            pose = torch.zeros_like(coeffs.pose)
            tone = self.renderer.identity_tone(coeffs if own is None else own)
            tone = None if tone is None else tone[:1].expand(len(ks), -1)
        else:
            pose, tone = coeffs.pose, self.renderer.identity_tone(coeffs)
        attempts = np.array([self.accepted.get((i, int(k)), (0, -1.0))[0] for k in ks], np.int64)
        keys = torch.tensor([self._key(i, int(k), int(a)) for k, a in zip(ks, attempts)])
        if self.config.contexts_per_identity and self._identity_albedo is not None:
            # first draws: the identity's own, unshared photo; a redrawn sample hashes for another
            rows = np.full(len(ks), self.identity_rows()[i], np.int64)
            redrawn = torch.from_numpy(np.flatnonzero(attempts > 0))
            if len(redrawn):
                rows[redrawn.numpy()] = self.pool.choose(len(redrawn), self.seed, pose[redrawn],
                                                         None if tone is None else tone[redrawn], keys[redrawn],
                                                         spread=True)
        else:
            rows = self.pool.choose(len(ks), self.seed, pose, tone, keys, spread=self.config.contexts_per_identity)
        wanted = np.degrees(coeffs.pose[:, :2].detach().double().cpu().numpy())
        gaps = np.abs(np.degrees(self.pool.arrays["pose"][rows, :2].astype(np.float64)) - wanted).max(1)
        for k, gap in zip(ks, gaps):
            self.pose_gap[(i, int(k))] = round(float(gap), 2)
        self._dirty = True
        return rows

    def identity_rows(self) -> np.ndarray:
        """(ids,) every identity's first-choice context with one context per identity: assigned
        in identity order so that identities share a context person only when the pool near
        their tone runs out (`ContextPool.assign_per_identity`)."""
        import torch  # noqa: PLC0415

        if self._per_identity is None:
            if self._identity_albedo is None:
                raise ValueError("one context per identity needs every identity's draw")
            tone = self.renderer.albedo_tone(torch.stack([self._identity_albedo(i) for i in range(self.config.ids)]))
            tones = np.zeros((self.config.ids, 3)) if tone is None else tone.double().numpy()
            self._per_identity = self.pool.assign_per_identity(self.seed, tones)
        return self._per_identity

    def grain_keys(self, i: int, ks) -> np.ndarray:
        """(len(ks),) seeds of the camera grain of identity i's samples `ks` (their current draw):
        one per image and attempt, whatever the context sharing, so a row re-renders exactly."""
        keys = [(i * self.config.samples + int(k)) * MAX_ATTEMPTS + self.accepted.get((i, int(k)), (0, -1.0))[0]
                for k in ks]
        return (np.asarray(keys, np.int64) ^ np.int64(self.seed % (1 << 62)))

    def apply(self, coeffs, rows: np.ndarray):
        return with_context(coeffs, self.pool, rows)

    def render(self, coeffs, rows: np.ndarray, keys: np.ndarray | None = None, collect: bool = False) -> np.ndarray:
        """Composites of `coeffs` into `rows` (grain seeded by `keys`); with `collect` (a build),
        what camera matching did is kept for the card, up to MATCH_SAMPLE composites."""
        reports: list | None = [] if collect and len(self.match_reports) < MATCH_SAMPLE else None
        images, _ = render_in_context(self.gen, coeffs, self.pool, rows, self.config.context, self.reader, keys,
                                      match=self.config.camera_match, reports=reports)
        if reports:
            self.match_reports.extend(reports[:MATCH_SAMPLE - len(self.match_reports)])
        return images

    # ------------------------------------------------------------------ privacy
    def distances(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(N,) each composite's dlib distance to the nearest photo of its context's person."""
        from synface.face.model_files import SOURCES_FILE  # noqa: PLC0415
        from synface.data.realface import aligned_descriptor  # noqa: PLC0415

        if self._sources is None:
            with np.load(Path(self.gen.model.folder) / SOURCES_FILE, allow_pickle=False) as data:
                self._sources = (data["descriptors"].astype(np.float64), data["person"].astype(np.int64))
        descriptors, person = self._sources
        out = np.empty(len(images))
        for n, (image, k) in enumerate(zip(images, rows)):
            own = descriptors[person == int(self.pool.arrays["person"][k])]
            d = aligned_descriptor(image)
            out[n] = float(np.linalg.norm(own - d, axis=1).min()) if len(own) else np.inf
        return out

    def render_checked(self, spec, items: Sequence[tuple[int, Sequence[int]]]) -> np.ndarray:
        """Images of (identity, samples) `items`, in order, each one's context redrawn while the
        composite lies nearer than min_context_distance to its context person."""
        from synface.face.coeffs import FaceCoeffs  # noqa: PLC0415

        def draw(pairs: list[tuple[int, int]]):
            parts = [spec.identity_batch(i, [k]) for i, k in pairs]
            coeffs = FaceCoeffs.cat([c for c, _ in parts])
            rows = np.concatenate([labels.context for _, labels in parts])
            keys = np.concatenate([labels.context_key for _, labels in parts])
            return coeffs, rows, keys

        pairs = [(i, k) for i, ks in items for k in ks]
        coeffs, rows, keys = draw(pairs)
        images = self.render(coeffs, rows, keys, collect=True)
        limit = self.config.min_context_distance
        if limit <= 0:
            return images
        todo = list(range(len(pairs)))
        while todo:
            dist = self.distances(images[todo], rows[todo])
            again = []
            for n, d in zip(todo, dist):
                attempt = self.accepted.get(pairs[n], (0, -1.0))[0]
                if d >= limit:
                    self.accepted[pairs[n]] = (attempt, float(d))
                elif attempt + 1 >= MAX_ATTEMPTS:
                    i, k = pairs[n]
                    raise ValueError(f"identity {i}, image {k}: all {MAX_ATTEMPTS} context photos drawn for it leave "
                                     f"it nearer than --min-context-distance {limit:g} to the context's person; lower it")
                else:
                    self.accepted[pairs[n]] = (attempt + 1, -1.0)
                    again.append(n)
            self._dirty = True
            if again:
                coeffs_again, rows_again, keys_again = draw([pairs[n] for n in again])
                images[again] = self.render(coeffs_again, rows_again, keys_again, collect=True)
                rows[again] = rows_again
            todo = again
        return images

    def summary(self, yardstick: float | None, rows: np.ndarray, labels: np.ndarray | None = None) -> dict:
        """The card's context section: the mode, the photos used (`rows`: every image's context),
        how often two images share a context person within an identity and across identities
        (`labels`: every image's identity; a context shared within an identity is a cue a
        recogniser could learn instead of the face), and (when checked) each composite's distance
        to its context person beside the strangers' yardstick."""
        used = sorted({int(r) for r in rows})
        checked = np.array([d for _, d in self.accepted.values() if d >= 0])
        redrawn = sum(1 for a, _ in self.accepted.values() if a > 0)
        out = {"mode": self.config.context, "per_identity": bool(self.config.contexts_per_identity),
               "pool": len(self.pool), "photos_used": len(used),
               "photos": [str(self.pool.arrays["path"][r]) for r in used[:2000]],
               "photos_missing": sorted(self.reader.problems.values())[:50],
               "photos_missing_count": len(self.reader.problems), "min_context_distance": self.config.min_context_distance,
               "redrawn": redrawn}
        pose = np.degrees(self.pool.arrays["pose"][:, :2].astype(np.float64))
        gaps = np.array(list(self.pose_gap.values()))
        out.update({"pool_yaw_deg": [round(float(pose[:, 0].min()), 1), round(float(pose[:, 0].max()), 1)],
                    "pool_pitch_deg": [round(float(pose[:, 1].min()), 1), round(float(pose[:, 1].max()), 1)],
                    "far_pose_threshold_deg": FAR_POSE_DEG,
                    "far_pose_count": int((gaps > FAR_POSE_DEG).sum()) if len(gaps) else 0,
                    "pose_gap_median_deg": round(float(np.median(gaps)), 2) if len(gaps) else None})
        if labels is not None and len(labels) == len(rows) and len(rows) > 1:
            out["shared_context_person"] = shared_context(self.pool.arrays["person"][np.asarray(rows, np.int64)],
                                                          np.asarray(labels, np.int64))
        out["camera_match"] = self.config.camera_match
        if self.match_reports:
            out["camera_match_sample"] = match_summary(self.match_reports)
        if len(checked):
            out.update({"checked": int(len(checked)), "distance_median": round(float(np.median(checked)), 4),
                        "distance_p01": round(float(np.percentile(checked, 1)), 4),
                        "strangers_nearest_p01": yardstick,
                        "under_strangers_p01": None if yardstick is None else round(float((checked < yardstick).mean()), 4)})
        return out

    # ------------------------------------------------------------------ persistence
    def load(self, path: Path, key: dict) -> bool:
        """Adopt the accepted draws stored by an earlier build of the same set (`key` matches);
        a file that does not parse whole, or holds a non-finite number, is ignored (redone).
        True when adopted."""
        data = load_check_state(path, key)
        if data is None:
            return False
        accepted: dict[tuple[int, int], tuple[int, float]] = {}
        gaps: dict[tuple[int, int], float] = {}
        try:
            for name, (attempt, dist) in data["accepted"].items():
                i, k = (int(x) for x in name.split(":"))
                if not (0 <= int(attempt) < MAX_ATTEMPTS and math.isfinite(float(dist))):
                    return False
                accepted[(i, k)] = (int(attempt), float(dist))
            for name, gap in (data.get("pose_gap") or {}).items():
                i, k = (int(x) for x in name.split(":"))
                if not 0.0 <= float(gap) <= 360.0:
                    return False
                gaps[(i, k)] = float(gap)
        except (ValueError, TypeError, KeyError, AttributeError):
            return False
        self.accepted.update(accepted)
        self.pose_gap.update(gaps)
        return True

    def save(self, path: Path, key: dict, force: bool = False) -> None:
        """The accepted draws, when any changed since the last save (or `force`: a merge's joined file)."""
        if not (self._dirty or force):
            return
        save_check_state(path, key, {"accepted": {f"{i}:{k}": list(v) for (i, k), v in sorted(self.accepted.items())},
                                     "pose_gap": {f"{i}:{k}": v for (i, k), v in sorted(self.pose_gap.items())}})
        self._dirty = False


def shared_context(person: np.ndarray, label: np.ndarray) -> dict:
    """Share of image pairs whose contexts show the same real person, within an identity and
    across identities (exact pair counts)."""
    def pairs(counts: np.ndarray) -> float:
        counts = counts.astype(np.float64)
        return float((counts * (counts - 1) / 2).sum())

    n = len(person)
    _, by_identity = np.unique(label, return_counts=True)
    _, by_both = np.unique(np.stack([label, person], 1), axis=0, return_counts=True)
    _, by_person = np.unique(person, return_counts=True)
    within_pairs, within_shared = pairs(by_identity), pairs(by_both)
    across_pairs = n * (n - 1) / 2 - within_pairs
    across_shared = pairs(by_person) - within_shared
    return {"within_identity": round(within_shared / within_pairs, 5) if within_pairs else None,
            "across_identities": round(across_shared / across_pairs, 5) if across_pairs else None}
