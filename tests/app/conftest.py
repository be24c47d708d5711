"""App tests may read their own temporary folders and the LFW copy (the app reads only the
workspace and the folders in $SYNFACE_DATA_DIRS)."""

from __future__ import annotations

import os

import pytest

from tests.support import LFW_ROOT


@pytest.fixture(autouse=True)
def data_dirs(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SYNFACE_DATA_DIRS", os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(LFW_ROOT)]))
