"""Who may reach the app, and which folders it may read for them.

Why: the app starts processes, reads server folders and deletes runs for whoever reaches its port.
It therefore listens on the loopback interface unless the person who starts it chooses otherwise,
asks for a password when one is set, and reads data only from the workspace and the folders that
person configured (`SYNFACE_DATA_DIRS`), never from a path a visitor types. No Streamlit here: the
app's pages apply these rules.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["DATA_DIRS_ENV", "PASSWORD_ENV", "check_readable", "configured_data_dirs", "listens_beyond_loopback",
           "password_matches"]

#: folders (os.pathsep-separated) the app may read besides the workspace
DATA_DIRS_ENV = "SYNFACE_DATA_DIRS"
#: a password visitors must give before any page draws (or `password` in .streamlit/secrets.toml)
PASSWORD_ENV = "SYNFACE_PASSWORD"


def listens_beyond_loopback(address: str | None) -> bool:
    """True when a server bound to `address` can be reached from other hosts: an empty address
    (every interface), 0.0.0.0, ::, or any address that is not loopback."""
    text = (address or "").strip().strip("[]")
    if text.lower() == "localhost":
        return False
    if not text:
        return True
    try:
        return not ipaddress.ip_address(text).is_loopback
    except ValueError:  # a host name: whatever it resolves to, it was chosen to be reached
        return True


def configured_data_dirs(environ: Mapping[str, str] | None = None, default: Sequence[Path] = ()) -> list[Path]:
    """The folders named in $SYNFACE_DATA_DIRS, else `default` (those that exist)."""
    env = os.environ if environ is None else environ
    text = env.get(DATA_DIRS_ENV, "")
    if text.strip():
        return [Path(p).expanduser() for p in text.split(os.pathsep) if p.strip()]
    return [Path(p) for p in default if Path(p).is_dir()]


def check_readable(path: str | Path, roots: Sequence[Path], what: str = "folder") -> Path:
    """`path` resolved (links followed), when it lies inside one of `roots`; else a one-line
    ValueError naming it and the folders that may be read."""
    text = str(path).strip()
    if not text:
        raise ValueError(f"no {what} given")
    if "\x00" in text:
        raise ValueError(f"{what} {text!r} is not a path")
    resolved = Path(text).expanduser().resolve()
    for root in roots:
        base = Path(root).expanduser().resolve()
        if resolved == base or base in resolved.parents:
            return resolved
    shown = ", ".join(str(r) for r in roots) or "none"
    raise ValueError(f"{what} {text} is outside the folders this app may read ({shown}); whoever starts the app can "
                     f"add folders with {DATA_DIRS_ENV}=DIR{os.pathsep}DIR")


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of a visitor's password with the configured one."""
    return bool(expected) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
