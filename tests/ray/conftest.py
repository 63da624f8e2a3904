"""A local Ray (2 CPUs, 127.0.0.1, no dashboard) started once for the Ray tests; they skip without Ray.
Helpers live in ``ray_helpers.py`` (importable from the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'aarlab[ray]'")
    if ray.is_initialized():
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def task_public(tmp_path):
    """A task's public dir with a minimal ``task.json`` (mounted at ``/task`` in the sandboxes)."""
    public = tmp_path / "task" / "public"
    public.mkdir(parents=True)
    (public / "task.json").write_text('{"name": "synthetic"}\n')
    return public
