"""One way to read an image file: every loader (alignment, training, features, benches) decodes
through here, so EXIF rotation and the "which file is broken" message are the same everywhere."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

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


def image_problem(data: bytes) -> str:
    """Why encoded `data` is not a whole image ('' when it decodes completely): a non-image or a
    truncated file, which must never be packed into a dataset file."""
    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a full decode: a truncated JPEG fails here, not at open()
    except UnidentifiedImageError:
        return "not an image file PIL can read"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return str(exc) or type(exc).__name__
    return ""
