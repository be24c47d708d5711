"""Optional parts of the tool (pyproject's extras): a missing one is refused in one line naming the
extra that brings it, not an ImportError from deep inside."""

from __future__ import annotations

from typing import Sequence

__all__ = ["MissingExtra", "require_extra", "install_hint"]


class MissingExtra(ValueError):
    """An optional package is not installed: the message names the extra that brings it."""


def install_hint(extra: str) -> str:
    return f"pip install -e '.[{extra}]' (the {extra} extra; requirements-dev.txt installs it too)"


def require_extra(extra: str, modules: Sequence[str], purpose: str) -> None:
    """Refuse `purpose` when one of `modules` does not import, naming them and the extra."""
    missing = []
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtra(f"{purpose} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                           f"not installed: {install_hint(extra)}")
