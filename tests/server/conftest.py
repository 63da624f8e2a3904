"""Fixtures for the lab server's tests: real uvicorn on 127.0.0.1, real SQLite files, real PostgreSQL."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from labhelpers import new_agent  # noqa: E402

from aarlab.server.testing import running_lab  # noqa: E402


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One server per test module (SQLite); tests make their own agents so they do not share budgets."""
    from aarlab.app import create_lab_app

    with running_lab(tmp_path_factory.mktemp("lab"), viewer_token="viewer-token-for-tests-0123456789",
                     app_factory=create_lab_app) as server:
        yield server


@pytest.fixture
def admin(lab):
    with lab.client() as client:
        yield client


@pytest.fixture
def agent(lab):
    client = new_agent(lab)
    yield client
    client.close()


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    base = os.environ.get("AARLAB_TEST_PG_URL")
    if not base:
        pytest.skip("AARLAB_TEST_PG_URL is not set (scripts/start-test-postgres.sh starts a throwaway server)")
    import psycopg

    name = f"aarlab_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def task_dir(tmp_path) -> Path:
    from aarlab.w2s.synthetic import write_synthetic_task

    return write_synthetic_task(tmp_path / "task")
