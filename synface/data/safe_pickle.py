"""A pickle loader for untrusted files (verification `.bin`s downloaded from the web).

A plain `pickle.load` can call any importable function, so a crafted `.bin` could run code.
`safe_loads` refuses every global: what comes back is built only from pickle's own opcodes
(None, bools, ints, floats, bytes, str, lists, tuples, dicts, sets).

One narrow exception, so `.bin` files written by Python 3 with `protocol=2` still load: such
pickles spell each bytes object as `_codecs.encode(text, 'latin1')` (and `b''` as `bytes()`).
Those two names resolve to local stand-ins that only turn a str into bytes; the real
functions are never looked up. Python 2 files (insightface's own) need neither.

insightface's `.bin` files hold `issame_list` as a plain list of bools (lfw2pack.py pickles
the list `get_paths` returns), so no numpy global is allowed either.
"""

from __future__ import annotations

import io
import pickle

from synface.data.errors import DataError


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    """Stand-in for `_codecs.encode` as Python 3 protocol-2 pickles use it, and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed as (str, 'latin1')")
    return text.encode("latin-1")


def _empty_bytes(*args: object) -> bytes:
    """Stand-in for `bytes()` as Python 3 protocol-2 pickles write `b''`."""
    if args:
        raise pickle.UnpicklingError("bytes() is only allowed without arguments")
    return b""


_STAND_INS = {
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        key = (module, name)
        if key in _STAND_INS:
            return _STAND_INS[key]
        raise _Refused(f"refused to load global {module}.{name} (only plain data is allowed)")

    def persistent_load(self, pid: object) -> object:
        raise _Refused("refused persistent id (only plain data is allowed)")


class _Refused(pickle.UnpicklingError):
    """A global or persistent id the loader will not resolve."""


def safe_loads(data: bytes, source: str) -> object:
    """Unpickle `data` without resolving globals; `source` names the file in errors."""
    unpickler = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes")
    try:
        return unpickler.load()
    except _Refused as exc:
        raise DataError(f"unsafe pickle: {exc}", path=source) from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of foreign bytes is bad data
        raise DataError(f"not a readable pickle ({type(exc).__name__}: {exc})", path=source) from None
