"""One way to read an image file: every loader (alignment, training, features, benches) decodes
through here, so EXIF rotation and the "which file is broken" message are the same everywhere.
And one way to write one (`write_image`), so a full disk is an error, never a short file."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from synface.base.files import atomic_path
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


def write_image(path: str | Path, image: object, fmt: str, **options) -> int:
    """Encode `image` as `fmt` ('JPEG' or 'PNG', PIL's save options) in memory, then write it
    atomically (fsynced, 0644, renamed); returns its size in bytes.

    Why in memory: PIL saving to a path can leave a short file without an error when the disk is
    full (the write that fails is swallowed), so a crop or render would be silently truncated.
    Written from bytes, a full disk is an OSError naming `path`, and nothing is left under it."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    with atomic_path(path) as tmp:  # an encoder's OSError names `path` too
        pil.save(buf, format=fmt, **options)
        tmp.write_bytes(buf.getvalue())
    return buf.tell()
