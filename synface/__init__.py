"""SynFace Studio: synthetic faces with explicit identity, expression, illumination and pose.

A plain library (no Streamlit imports); the app and `python -m synface` are its two clients.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def _read_version() -> str:
    """The version pyproject.toml declares (its one home): from the installed package's metadata, else
    (a checkout on the path, not installed) from the pyproject.toml beside the package."""
    try:
        return metadata.version("synface-studio")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.MULTILINE)
        except OSError:
            found = None
        return found.group(1) if found else "0+unknown"


__version__ = _read_version()
