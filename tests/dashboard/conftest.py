"""Fixtures for the dashboard tests (the data itself is made in ``dashboard_testdata``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib, so the helper module is put on the path explicitly.
sys.path.insert(0, str(Path(__file__).parent))

from dashboard_testdata import VIEWER_TOKEN, populate  # noqa: E402


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    from aarlab.server.testing import running_lab

    tmp = tmp_path_factory.mktemp("dash")
    from aarlab.app import create_lab_app

    with running_lab(tmp, viewer_token=VIEWER_TOKEN, submissions_per_hour=1000, app_factory=create_lab_app) as lab:
        yield populate(lab)
