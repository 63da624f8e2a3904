"""What the Ray tests share: the inner backend, a sandbox spec on the local Ray, waiting for a killed actor."""

from __future__ import annotations

import time
from pathlib import Path

from aarlab.sandbox import Mount, SandboxSpec, check_backend

BWRAP_OK, _ = check_backend("bwrap")
INNER = "bwrap" if BWRAP_OK else "process"


def ray_spec(tmp_path: Path, task_public: Path, name: str = "alice", **overrides) -> SandboxSpec:
    """A small Ray sandbox spec for agent ``name``, the task's public dir at ``/task``; ``overrides`` win."""
    values = dict(workspace=tmp_path / "workspaces" / name, mounts=[Mount(host=task_public, target=Path("/task"))],
                  name=name, num_cpus=0.5, ray_inner_backend=INNER, ray_snapshot_interval_s=3600,
                  memory_mb=1024, default_timeout_s=60)
    values.update(overrides)
    return SandboxSpec(**values)


def wait_until_dead(ray, actor, limit_s: float = 20.0) -> None:
    """Return once ``actor`` no longer answers; fail after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.where.remote(), timeout=5)
        except Exception:
            return
        time.sleep(0.1)
    raise AssertionError("the killed actor still answers")
