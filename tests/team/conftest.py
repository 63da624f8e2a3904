"""Fixtures for the team tests; helpers live in ``team_helpers.py`` (importable from the tests)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A private task cache, and no API keys: the tests must never reach a real provider."""
    monkeypatch.setenv("AARLAB_CACHE", str(tmp_path / "cache"))
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AARLAB_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var in [v for v in os.environ if v.startswith("AARLAB_RUN__")]:
        monkeypatch.delenv(var)
