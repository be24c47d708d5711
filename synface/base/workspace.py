"""Where SynFace Studio keeps what it makes: datasets, runs, models, registered real sets."""

from __future__ import annotations

import os
from pathlib import Path

#: the repository (where app.py lives)
REPO_ROOT = Path(__file__).resolve().parents[2]


def workspace_root(root: str | Path | None = None) -> Path:
    """Explicit root, else $SYNFACE_HOME, else `workspace/` beside the repository's app.py."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SYNFACE_HOME")
    if env:
        return Path(env).expanduser()
    return REPO_ROOT / "workspace"
