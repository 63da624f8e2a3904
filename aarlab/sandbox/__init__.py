"""Sandboxes: where an agent's commands run, isolated from the host and from each other.

    from aarlab.sandbox import SandboxSpec, Mount, create, snapshot_tar

    spec = SandboxSpec(workspace=Path("runs/r1/workspaces/alice"),
                       mounts=[Mount(host=Path("runs/r1/task/public"), target=Path("/task"))])
    with create("bwrap", spec) as sandbox:
        result = sandbox.exec("python -m aarlab.w2s.methods.vanilla --data-dir /task ...", timeout=600)
        tar = snapshot_tar(sandbox, "method")

Backends: ``bwrap`` (default on Linux), ``process`` (no isolation, for development; says so), ``docker``,
and ``ray`` (a sandbox actor placed on a Ray cluster node, recreated from the head's copy of its workspace on
node loss; the next ``ExecResult.recovered`` tells the agent). ``run_ray_job`` runs one command in a fresh
sandbox as a Ray task with its own resources (verification jobs). Backends load lazily: importing this
package imports neither Ray nor Docker.
"""

from aarlab.sandbox._base import (
    ExecResult,
    Mount,
    Sandbox,
    SandboxError,
    SandboxSpec,
    registered_backends,
    sandbox_backend,
)
from aarlab.sandbox._files import DEFAULT_MAX_READ_BYTES, FileTooLarge, WorkspaceFiles, relative_path
from aarlab.sandbox._job_info import JobError, JobInfo, format_duration
from aarlab.sandbox._process import NOT_ISOLATED_WARNING
from aarlab.sandbox._registry import available_backends, check_backend, create, default_backend
from aarlab.sandbox._tar import (
    DEFAULT_EXCLUDE,
    UnsafeArchive,
    extract_tar_safely,
    open_bounded_tar,
    snapshot_tar,
)


def run_ray_job(cmd, **options):
    """Run ``cmd`` in a fresh sandbox as a Ray task; returns ``(ExecResult, tar of the collected subdir)``.

    See ``aarlab.sandbox._ray.run_ray_job`` for the options (files, mounts, collect, num_cpus, num_gpus, …).
    """
    from aarlab.sandbox._ray import run_ray_job as run

    return run(cmd, **options)


__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_MAX_READ_BYTES",
    "ExecResult",
    "FileTooLarge",
    "JobError",
    "JobInfo",
    "NOT_ISOLATED_WARNING",
    "UnsafeArchive",
    "WorkspaceFiles",
    "format_duration",
    "open_bounded_tar",
    "Mount",
    "Sandbox",
    "SandboxError",
    "SandboxSpec",
    "available_backends",
    "check_backend",
    "create",
    "default_backend",
    "extract_tar_safely",
    "registered_backends",
    "relative_path",
    "run_ray_job",
    "sandbox_backend",
    "snapshot_tar",
]
