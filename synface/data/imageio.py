"""One way to open an image (`open_image`) and to read one (`read_rgb`): every loader (alignment,
training, features, benches, `.bin` and `.rec` records) decodes through here, so EXIF rotation,
the size cap and the "which file is broken" message are the same everywhere. And one way to write
one (`write_image`), so a full disk is an error, never a short file.

Why a cap on decoded pixels: an image file is untrusted, and its header alone says how large it
decodes. A 400-byte PNG can declare 20000 x 20000 pixels (1.2 GB as RGB). The header is checked
before anything is decoded: more than MAX_IMAGE_PIXELS is a DataError naming the file, which
every caller counts as an unreadable image. PIL's own decompression-bomb check (an error, or
a warning turned into an error here) is caught the same way."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from PIL import Image, ImageOps, UnidentifiedImageError

from synface.base.files import atomic_path, open_regular
from synface.data.errors import DataError

if TYPE_CHECKING:
    import numpy as np

#: the most pixels (width x height) an image may decode to: 64 megapixels, 192 MB as RGB. Face
#: photos and crops are far smaller; docs/limits.md states it.
MAX_IMAGE_PIXELS = 64_000_000
# PIL warns (and decodes) between its own limit and twice it: here that is an error, caught below
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


#: the in-memory forms of an image's encoded bytes (anything else names a file)
IN_MEMORY = (bytes, bytearray, memoryview)


@contextlib.contextmanager
def open_image(source: str | Path | bytes, what: str = "image", where: str | Path | None = None) -> Iterator[Image.Image]:
    """The PIL image of a file (a regular file only: never a FIFO or device, which would block or
    never end) or of encoded bytes, opened lazily (header only), with its size checked against
    MAX_IMAGE_PIXELS before the caller decodes it. A DataError naming `where` (default: the file)
    for a file that cannot be opened, too many pixels or a decompression bomb; other decode errors
    (a truncated or non-image file) reach the caller as PIL raises them."""
    where = where if where is not None else (None if isinstance(source, IN_MEMORY) else source)
    try:
        handle = io.BytesIO(bytes(source)) if isinstance(source, IN_MEMORY) else open_regular(source, follow_links=True)
    except OSError as exc:
        raise DataError(f"cannot read the {what} ({exc.strerror or exc})", path=where) from None
    with handle:
        try:
            img = Image.open(handle)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(f"the {what} is refused as a decompression bomb ({exc}; at most {MAX_IMAGE_PIXELS:,} "
                            "pixels an image may decode to)", path=where) from None
        with img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"the {what} declares {width} x {height} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                                "pixels an image may decode to", path=where)
            yield img


def read_rgb(path: str | Path, what: str = "image") -> Image.Image:
    """Fully decoded RGB image with its EXIF orientation applied.

    PIL raises OSError or ValueError (and a few others) for truncated or non-image files; they
    become a DataError naming the file, since a raw PIL traceback does not say which one broke.
    Too large or non-regular files are DataErrors too (`open_image`).
    """
    try:
        with open_image(path, what) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read the {what} ({exc})", path=path) from None


def image_problem(data: bytes) -> str:
    """Why encoded `data` is not a whole image ('' when it decodes completely): a non-image or a
    truncated file, which must never be packed into a dataset file."""
    if not data:
        return "empty file"
    try:
        with open_image(data) as img:
            img.load()  # a full decode: a truncated JPEG fails here, not at open()
    except DataError as exc:
        return exc.message
    except UnidentifiedImageError:
        return "not an image file PIL can read"
    except (OSError, ValueError, SyntaxError) as exc:
        return str(exc) or type(exc).__name__
    return ""


def write_image(path: str | Path, image: Image.Image | np.ndarray, fmt: str, **options) -> int:
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
