"""The node side of the Ray backend: what runs in a sandbox's actor on the node that holds its workspace —
the local sandbox it wraps, the change-only sync back to the head (read by descriptor: a command still
running may swap files and links under it), the background jobs of that sandbox, and the sweep of
workspaces whose actor died.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import queue
import shutil
import socket
import stat
import tarfile
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

from aarlab.errors import require
from aarlab.sandbox._base import Mount, SandboxError, SandboxSpec
from aarlab.sandbox._files import (
    DEFAULT_MAX_READ_BYTES,
    FileTooLarge,
    closing_fd,
    open_root,
    read_regular,
    walk_tree,
)
from aarlab.sandbox._job_info import JobInfo
from aarlab.sandbox._jobs import LOST_DETAIL, LaunchedJob, host_job_manager
from aarlab.sandbox._tar import DEFAULT_EXCLUDE, extract_tar_safely, snapshot_tar

log = logging.getLogger(__name__)

SNAPSHOT_MAX_BYTES = 4 * 1024**3  # the head's copy shipped to a new actor (caches excluded)
MOUNT_MAX_BYTES = 4 * 1024**3  # a read-only mount shipped through the object store
SYNC_FILE_MAX_BYTES = 512 * 1024**2  # larger files stay on the node only (and are lost with it)


# ------------------------------------------------------------------------------------------ node side


Manifest = dict[str, tuple[int, int]]  # workspace path -> (size, mtime_ns) of the version the head has


def sync_changes(root: Path, manifest: Manifest | None) -> tuple[Manifest, bytes, list[str]]:
    """The node side of a sync: ``(the workspace's files now, a tar of those changed since manifest, skipped)``.

    Runs while the agent's commands may still be renaming things in the workspace, so it reads by
    descriptor (``walk_tree``/``read_regular``): each file is opened with ``O_NOFOLLOW|O_NONBLOCK`` relative
    to its directory and checked on the descriptor, and what goes into the tar and the manifest is what
    that descriptor holds. A symlink swapped in after the listing makes the open fail (the file is left
    out of this sync), never read. With ``manifest`` None only the listing is made (no tar).
    """
    current: Manifest = {}
    skipped: list[str] = []
    buffer = io.BytesIO()
    with closing_fd(open_root(root)) as top_fd, \
            tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        device = os.fstat(top_fd).st_dev
        for dir_fd, name, path in walk_tree(top_fd, DEFAULT_EXCLUDE):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_dev != device:
                continue
            version = (st.st_size, st.st_mtime_ns)
            if manifest is None or manifest.get(path) == version:
                current[path] = version
                continue
            if st.st_size > SYNC_FILE_MAX_BYTES:
                current[path] = version
                skipped.append(path)
                continue
            try:
                found = read_regular(dir_fd, name, SYNC_FILE_MAX_BYTES, device=device)
            except (OSError, FileTooLarge):
                found = None
            if found is None:  # replaced by a link, a FIFO or a bigger file since the listing: next time
                continue
            data, opened = found
            current[path] = (opened.st_size, opened.st_mtime_ns)
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if opened.st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    return current, (buffer.getvalue() if manifest is not None else b""), skipped


WORKSPACE_PREFIX = "aarlab-ray-"
_LOCK_NAME = ".owner.lock"


def sweep_stale_workspaces(parent: Path | None = None) -> list[Path]:
    """Remove node-local workspaces whose process is gone (killed actors never run ``close``).

    Each ``aarlab-ray-*`` directory holds a lock file its process keeps ``flock``-ed while it lives; the
    kernel drops the lock when the process dies, however it dies, so a lock we can take marks a leftover.
    Returns what was removed.
    """
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for candidate in parent.glob(f"{WORKSPACE_PREFIX}*"):
        try:
            fd = os.open(candidate / _LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # not ours, or being set up right now
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # alive
        finally:
            os.close(fd)
        _remove_tree(candidate)
        removed.append(candidate)
    return removed


def _remove_tree(path: Path) -> None:
    """``rmtree`` that also removes what an agent made unwritable (``chmod 0`` directories) for a non-root harness."""

    def retry(function, failed, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
            function(failed)

    shutil.rmtree(path, onerror=retry)
    shutil.rmtree(path, ignore_errors=True)


class _NodeSandbox:
    """What runs on the node: an inner sandbox over a node-local workspace (the body of the actor and jobs).

    Its files live in ``$TMPDIR/aarlab-ray-*``: removed by ``close``, and, when the process was killed before
    it could close (``ray.kill``, a driver that died), by the next node sandbox started on that node.
    """

    def __init__(self, spec_json: str, mount_tars: list[bytes], workspace_tar: bytes | None):
        spec = SandboxSpec.model_validate_json(spec_json)
        label = "".join(c for c in spec.name if c.isalnum() or c in "-_")[:40] or "sandbox"
        sweep_stale_workspaces()
        self.root = Path(tempfile.mkdtemp(prefix=f"{WORKSPACE_PREFIX}{label}-"))
        # held until this process ends: the sweep above, in another process, leaves this directory alone
        self._lock_fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        workspace = self.root / "workspace"
        workspace.mkdir()
        if workspace_tar:
            extract_tar_safely(workspace_tar, workspace, max_bytes=SNAPSHOT_MAX_BYTES * 4)
        mounts = []
        for index, (mount, tar) in enumerate(zip(spec.mounts, mount_tars, strict=True)):
            local = self.root / "mounts" / str(index)
            extract_tar_safely(tar, local, max_bytes=MOUNT_MAX_BYTES * 4)
            mounts.append(Mount(host=local, target=mount.target, writable=False))
        gpus = list(spec.gpus)
        if spec.num_gpus > 0:
            ray = require("ray", "ray")
            gpus = [int(g) for g in ray.get_gpu_ids()]  # the GPUs Ray gave this worker
        # job_state names a file on the head: the node keeps its own table (``SandboxActor``), never that path
        inner = spec.model_copy(update={"workspace": workspace, "mounts": mounts, "gpus": gpus, "job_state": None})
        from aarlab.sandbox._registry import create

        self.sandbox = create(spec.ray_inner_backend, inner)
        self.sandbox.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sandbox.stop()
        _remove_tree(self.root)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


class _LaunchThread:
    """Starts a sandbox's jobs from one thread that lives as long as the actor.

    A job's outer process gets ``--pdeathsig KILL``, which fires when the *thread* that started it ends, and
    the threads that run an actor's method calls are Ray's, not ours to keep alive: started from one of
    them, a job could die with it. This thread ends only with ``close`` or with the actor's process (and
    then the jobs should go).
    """

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self._requests: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="job-launcher", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            future, args = request
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self.sandbox.launch_job(*args))
                except BaseException as exc:  # handed to the caller, who raises it
                    future.set_exception(exc)

    def launch_job(self, argv: list[str], env: dict[str, str], gpus: list[int], label: str) -> LaunchedJob:
        future: Future = Future()
        self._requests.put((future, (argv, env, gpus, label)))
        return future.result()

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=10)


# what the head may call on the node's job manager through ``SandboxActor.job``
JOB_CALLS = frozenset({"start", "list", "get", "output", "wait", "kill", "close", "usage", "drain_events",
                       "take_lost"})


def _plain(value):
    """A job call's answer with its ``JobInfo`` records as JSON dicts (what travels back to the head)."""
    if isinstance(value, JobInfo):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class SandboxActor(_NodeSandbox):
    """The Ray actor behind a ``RaySandbox`` (wrapped with ``ray.remote`` on first use).

    It remembers which version (size, mtime) of each workspace file the driver has, so that ``sync`` sends
    only what changed; every sync is numbered, so the driver applies them in order.

    Its inner sandbox's background jobs run under a ``JobManager`` whose table is kept in the node
    directory, next to the workspace and out of the agent's reach. ``job_table`` is the table the head last
    saw (the previous actor's, or the crashed harness's): its running jobs are recorded lost, with
    ``lost_detail`` saying why.
    """

    def __init__(self, spec_json: str, mount_refs: list, workspace_tar: bytes | None,
                 job_table: str | None = None, lost_detail: str = LOST_DETAIL):
        ray = require("ray", "ray")
        super().__init__(spec_json, ray.get(list(mount_refs)), workspace_tar)
        self._sync_lock = threading.Lock()
        self._seq = 0
        # the restored workspace: the driver has all of it already
        self._manifest = sync_changes(self.sandbox.spec.workspace, None)[0]
        self._launcher: _LaunchThread | None = None
        if self.sandbox.jobs is not None:
            state = self.root / "jobs.json"
            if job_table:
                state.write_text(job_table, encoding="utf-8")
            self._launcher = _LaunchThread(self.sandbox)
            # replaces the in-memory manager the inner sandbox started with (no table, no jobs yet); the
            # inner sandbox's stop() still closes this one first, so no job outlives it
            self.sandbox.jobs = host_job_manager(self.sandbox, launcher=self._launcher, state_path=state,
                                                 lost_detail=lost_detail)

    def close(self) -> None:
        super().close()
        if self._launcher is not None:
            self._launcher.close()

    def where(self) -> dict:
        ray = require("ray", "ray")
        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid()}

    def sync(self) -> dict:
        """What changed since the last sync: a tar of new or modified files and the list of all files."""
        with self._sync_lock:
            self._manifest, tar, skipped = sync_changes(self.sandbox.spec.workspace, self._manifest)
            self._seq += 1
            return {"seq": self._seq, "tar": tar, "paths": sorted(self._manifest), "skipped": skipped}

    def exec(self, cmd, timeout, env, cwd) -> dict:
        result = self.sandbox.exec(cmd, timeout=timeout, env=env, cwd=cwd)
        return {"result": result.model_dump(), "sync": self.sync()}

    def read_file(self, path: str, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        return self.sandbox.read_file(path, max_bytes)

    def write_file(self, path: str, data: bytes) -> dict:
        self.sandbox.write_file(path, data)
        return self.sync()

    def list_files(self, path: str) -> list[str]:
        return self.sandbox.list_files(path)

    def snapshot(self, subdir: str, exclude: tuple[str, ...], max_bytes: int) -> bytes:
        return snapshot_tar(self.sandbox, subdir, exclude, max_bytes)

    def jobs_state(self) -> dict:
        """The job slots of this sandbox (None: its inner backend runs no jobs) and the job table."""
        jobs = self.sandbox.jobs
        return {"slots": jobs.slots if jobs is not None else None,
                "table": jobs.table() if jobs is not None else None}

    def job(self, method: str, args: tuple = (), kwargs: dict | None = None) -> dict:
        """Call ``method`` (one of ``JOB_CALLS``) on the job manager: its answer, and the table after it."""
        jobs = self.sandbox.jobs
        if jobs is None:
            raise SandboxError("this sandbox runs no background jobs")
        if method not in JOB_CALLS:
            raise SandboxError(f"not a job call: {method!r}")
        value = getattr(jobs, method)(*args, **(kwargs or {}))
        return {"value": _plain(value), "table": jobs.table()}
