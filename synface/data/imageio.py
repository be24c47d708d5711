"""One way to read an image file: every loader (alignment, training, features, benches) decodes
through here, so EXIF rotation and the "which file is broken" message are the same everywhere."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

from synface.data.errors import DataError


def read_rgb(path: str | Path, what: str = "image") -> Image.Image:
    """Fully decoded RGB image with its EXIF orientation applied.

    PIL raises OSError or ValueError (and a few others) for truncated or non-image files; they
    become a DataError naming the file, since a raw PIL traceback does not say which one broke.
    """
    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read the {what} ({exc})", path=path) from None
