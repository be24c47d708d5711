"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest

from synface.generator import FaceGenerator


@pytest.fixture(scope="session")
def gen() -> FaceGenerator:
    """One CPU generator for the whole session: building the model costs seconds."""
    return FaceGenerator(device="cpu")
