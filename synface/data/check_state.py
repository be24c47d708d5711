"""The stored state of a build's per-image checks: which draw each image or identity accepted.

Why one place: the source check (identities redrawn near a source person) and the context check
(composites redrawn near their photo's person) both resume a killed build from such a file. Both
read it as untrusted (missing, a FIFO, too large, not JSON, another set's: ignored and redone) and
write it atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synface.base.files import atomic_path, read_json


def load_check_state(path: str | Path, key: dict) -> dict[str, Any] | None:
    """The state stored at `path` when it belongs to the build `key` names, else None."""
    data = read_json(path)
    return data if isinstance(data, dict) and data.get("key") == key else None


def save_check_state(path: str | Path, key: dict, state: dict[str, Any]) -> None:
    """`state` stored for the build `key` names, atomically (compact: it is rewritten per chunk)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"key": key, **state}))
