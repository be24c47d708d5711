"""An identity-per-folder image set (CASIA-WebFace aligned crops, LFW's `<Name>/` folders).

Identities are the sorted subfolder names and each identity's images are sorted by file name,
so labels and subsets are the same on every machine. Anything skipped is counted, not
silently dropped, so the app can say why a set is smaller than expected.
"""

from __future__ import annotations

from pathlib import Path

from synface.data.errors import DataError
from synface.data.imageio import open_image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


class ImageFolderIndex:
    """`root/<identity>/<image>` listing with deterministic labels (index in `identities`).

    Counters: `skipped_empty` identity folders without images, `ignored_files` entries that
    are not images (stray files at the root, non-image files, nested folders), `corrupt`
    images dropped by `verify_images`.
    """

    def __init__(self, root: str | Path, verify: bool = False):
        self.root = Path(root)
        self.skipped_empty = 0
        self.ignored_files = 0
        self.corrupt = 0
        self.corrupt_files: list[Path] = []
        self.images: dict[str, list[Path]] = self._scan()
        if verify:
            self.verify_images()

    def _scan(self) -> dict[str, list[Path]]:
        if not self.root.is_dir():
            raise DataError("image folder not found", path=self.root)
        images: dict[str, list[Path]] = {}
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                self.ignored_files += 1
                continue
            files = self._identity_files(entry)
            if files:
                images[entry.name] = files
            else:
                self.skipped_empty += 1
        if not images:
            raise DataError(f"no identity folders with images ({self.skipped_empty} empty)", path=self.root)
        return images

    def _identity_files(self, folder: Path) -> list[Path]:
        files = []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(entry)
            else:
                self.ignored_files += 1
        return files

    def verify_images(self) -> int:
        """Drop files PIL cannot parse (header-level check, no full decode); returns how many."""
        dropped = 0
        for name in list(self.images):
            good: list[Path] = []
            bad: list[Path] = []
            for path in self.images[name]:
                (good if _parses(path) else bad).append(path)
            self.corrupt_files.extend(bad)
            dropped += len(bad)
            if good:
                self.images[name] = good
            else:
                del self.images[name]
                self.skipped_empty += 1
        self.corrupt += dropped
        if not self.images:
            raise DataError("every image failed to open", path=self.root)
        return dropped

    @property
    def identities(self) -> list[str]:
        return list(self.images)

    @property
    def num_identities(self) -> int:
        return len(self.images)

    def __len__(self) -> int:
        return sum(len(v) for v in self.images.values())

    def samples(self) -> list[tuple[Path, int]]:
        """(path, label) for every image, identity by identity."""
        return [(p, label) for label, name in enumerate(self.images) for p in self.images[name]]


def _parses(path: Path) -> bool:
    try:
        with open_image(path) as img:
            img.verify()
        return True
    except Exception:  # noqa: BLE001 - PIL raises many types for broken files
        return False
