"""One version: pyproject.toml declares it, synface.__version__ reads it, nothing else states one."""

from __future__ import annotations

import re
from importlib import metadata

import synface
from tests.support import REPO


def _declared() -> str:
    found = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"), re.MULTILINE)
    assert found, "pyproject.toml declares no version"
    return found.group(1)


def test_an_installed_package_reports_its_metadata(monkeypatch) -> None:
    monkeypatch.setattr(metadata, "version", lambda name: "9.8.7" if name == "synface-studio" else "")
    assert synface._read_version() == "9.8.7"
    assert isinstance(synface.__version__, str) and synface.__version__


def test_a_checkout_that_is_not_installed_reads_pyproject(monkeypatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert synface._read_version() == _declared()


def test_no_other_file_states_a_version() -> None:
    """No module assigns __version__ to a literal and no other packaging file declares one."""
    stated = [str(p.relative_to(REPO)) for p in [*REPO.glob("synface/**/*.py"), *REPO.glob("ui/*.py"),
                                                 *REPO.glob("pages/*.py"), REPO / "app.py"]
              if re.search(r"^__version__\s*=\s*['\"]", p.read_text(encoding="utf-8"), re.MULTILINE)]
    assert not stated, f"a version stated outside pyproject.toml: {stated}"
    assert not (REPO / "setup.py").exists() and not (REPO / "setup.cfg").exists()
