"""Names the user gives (datasets, runs, real sets, benchmarks) become one folder inside the workspace.

`check_name` accepts only a single, portable path component: letters, digits, '.', '_' and
'-', 1 to 100 characters, not starting with '.' or '-' (no hidden files, nothing a command line
reads as an option, never '.' or '..'). `child_path` joins such a name onto a folder and checks
once more that the result sits directly inside it. Explicit output folders (`--out`) are the
user's choice and are not names: they go anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["MAX_NAME_LENGTH", "check_name", "child_path"]

MAX_NAME_LENGTH = 100
_ALLOWED = re.compile(r"[A-Za-z0-9._-]+")
_RULES = f"use letters, digits, '.', '_' and '-' (no path separators, no '..', at most {MAX_NAME_LENGTH} characters)"


def _shown(value: object) -> str:
    """The value as the message quotes it: repr (so control characters stay on one line), cut short."""
    if isinstance(value, str) and len(value) > MAX_NAME_LENGTH + 20:
        return repr(value[:MAX_NAME_LENGTH]) + f"... ({len(value)} characters)"
    return repr(value)


def _problem(value: str) -> str | None:
    """Why `value` is not a safe name, or None when it is."""
    if not value:
        return "it is empty"
    if value in (".", ".."):
        return "it is a relative folder reference"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "it contains a control character"
    if "/" in value or "\\" in value or os.sep in value or (os.altsep and os.altsep in value):
        return "it contains a path separator"
    if os.path.isabs(value):
        return "it is an absolute path"
    if len(value) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if value[0] in ".-":
        return f"it starts with '{value[0]}'"
    if not _ALLOWED.fullmatch(value):
        bad = sorted({c for c in value if not _ALLOWED.fullmatch(c)})
        return "it contains " + ", ".join(repr(c) for c in bad[:5])
    return None


def check_name(value: str, what: str = "name") -> str:
    """`value` unchanged when it is a single safe path component, else ValueError (one line naming it)."""
    why = "it is not a string" if not isinstance(value, str) else _problem(value)
    if why is not None:
        raise ValueError(f"{what} {_shown(value)} is not allowed ({why}): {_RULES}")
    return value


def child_path(parent: str | Path, name: str, what: str = "name") -> Path:
    """`parent / name` for a checked name, verified to sit directly inside `parent`.

    The parent is resolved (symlinks above the name are followed); the name itself is not, so a
    dataset folder the user replaced by a symlink to another disk still works.
    """
    parent = Path(parent)
    path = parent / check_name(name, what)
    base = parent.resolve()
    inside = base / name
    if inside.parent != base or Path(os.path.normpath(inside)) != inside or inside.name != name:
        raise ValueError(f"{what} {_shown(name)} is not allowed (it leaves {parent}): {_RULES}")
    return path
