"""The sandbox protocol: where an agent's commands run.

A backend implements the lifecycle, ``exec`` and raw file access; everything else (snapshots, listing) is a
helper built on these in ``_files.py``, ``_tar.py`` and ``_proc.py``. Paths given to ``read_file``/``write_file``/``list_files`` are
relative to the workspace (absolute paths or ``..`` that leave it are refused with ``SandboxError``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field


class SandboxError(Exception):
    """A sandbox operation could not be carried out (bad path, sandbox not started, backend missing)."""


class ExecResult(BaseModel):
    """The outcome of one command."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    timed_out: bool = False
    truncated: bool = False
    # set when the sandbox was recreated from a snapshot since the last command (its node was lost): what
    # happened and what was lost; the same note heads ``stderr`` so that an agent reading the output sees it
    recovered: str | None = None


class Mount(BaseModel):
    """A host path made visible inside the sandbox (read-only unless ``writable``)."""

    host: Path
    target: Path  # absolute path inside the sandbox
    writable: bool = False


class SandboxSpec(BaseModel):
    """What a sandbox is made of: one writable workspace, read-only mounts, limits and devices."""

    workspace: Path  # host directory; inside the sandbox it is ``workspace_target``
    workspace_target: Path = Path("/workspace")
    mounts: list[Mount] = Field(default_factory=list)
    # host paths visible read-only at the same path (model weights, a cluster's shared data directory)
    readonly_paths: list[Path] = Field(default_factory=list)
    # bind the host's downloaded Hugging Face *models* (models--* of the hub cache, never datasets) read-only
    share_model_cache: bool = True
    env: dict[str, str] = Field(default_factory=dict)  # the ONLY environment a command sees, plus PATH/HOME
    memory_mb: int = 4096
    cpu_seconds: int = 3600  # CPU time per command, all its processes together (and RLIMIT_CPU per process)
    max_processes: int = 256
    max_file_mb: int = 1024  # largest file a command may write (RLIMIT_FSIZE)
    # Without a usable cgroup memory is limited per process only and the process count is shared with the
    # harness's user (as root: not limited): the bwrap backend then refuses to start unless this is set
    allow_weak_limits: bool = False
    default_timeout_s: float = 600.0
    max_output_bytes: int = 64_000  # per stream; more is cut with a note
    gpus: list[int] = Field(default_factory=list)  # CUDA device indices this sandbox may use
    network: bool = False
    name: str = ""  # a label (the agent's name): used in cgroup, container and actor names
    # size of the private /tmp (a tmpfs; with a cgroup counted against the memory limit, without one /tmp and
    # /dev/shm together get at most half of it)
    tmp_mb: int = 1024
    # docker backend
    docker_image: str = "python:3.11-slim"
    # ray backend: where the sandbox actor is placed and what runs inside it on its node
    ray_address: str | None = None  # None: an already initialised ray, or ray.init("auto"/local)
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources, e.g. {"a100": 1}
    # the backend the actor runs on its node: "bwrap" ("ray" means the same) or "process"
    ray_inner_backend: str = "bwrap"
    ray_memory_mb: int | None = None  # Ray "memory" resource to reserve for the actor (None: none reserved)
    # how often the head's copy of a Ray sandbox's workspace (its recovery point) is synced while a command
    # runs; it is also synced after every command
    ray_snapshot_interval_s: float = 60.0
    # background jobs (``_jobs.py``): how many may run at once (None: one per GPU, else one per CPU of
    # ``num_cpus``), and the host file (outside the workspace) where the job table survives a harness crash
    job_slots: int | None = Field(default=None, ge=1)
    job_state: Path | None = None


class Sandbox(ABC):
    """An isolated place to run one agent's commands. Use as a context manager or call start/stop."""

    backend: str = ""
    isolates: bool = True  # False for backends that give no isolation (process); the CLI and dashboard warn

    def __init__(self, spec: SandboxSpec):
        self.spec = spec
        # background jobs (an ``aarlab.sandbox._jobs.JobManager``, or a backend's equivalent) while started,
        # on backends that run them; None elsewhere
        self.jobs = None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def exec(
        self,
        cmd: str | list[str],
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        """Run a command (a string runs under ``bash -c``) in the workspace; never raises for its failure.

        ``cwd`` is relative to the workspace; ``env`` is added to the spec's environment for this call.
        """

    @abstractmethod
    def read_file(self, path: str) -> bytes: ...

    @abstractmethod
    def write_file(self, path: str, data: bytes | str) -> None: ...

    @abstractmethod
    def list_files(self, path: str = ".") -> list[str]:
        """Files (not directories) under ``path``, relative to the workspace, sorted."""

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_BACKENDS: dict[str, Callable[[SandboxSpec], Sandbox]] = {}


def sandbox_backend(name: str):
    """Register a backend class under ``name``: ``@sandbox_backend("bwrap") class BwrapSandbox(Sandbox)``."""

    def register(cls):
        cls.backend = name
        _BACKENDS[name] = cls
        return cls

    return register


def registered_backends() -> dict[str, Callable[[SandboxSpec], Sandbox]]:
    return dict(_BACKENDS)
