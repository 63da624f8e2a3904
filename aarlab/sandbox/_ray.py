"""The ``ray`` backend: each sandbox is a Ray actor placed on a cluster node, recreated elsewhere on node loss.

The driver (the harness, on the head) holds a ``RaySandbox``; the actor it starts, with the spec's
``num_cpus``/``num_gpus``/``resources``/``ray_memory_mb``, runs an *inner* sandbox (``bwrap`` by default) on its
node over a node-local copy of the workspace. What moves where:

- files: ``read_file``/``write_file``/``list_files`` and snapshots are actor calls; nothing is shared by path;
- the spec's mounts (the task's public files) are tarred once by the driver, put in Ray's object store and
  unpacked read-only on the node (they must be read-only); ``readonly_paths`` (model weights) must exist at the
  same path on every node (a shared filesystem or a pre-installed image);
- snapshots: the driver takes one every ``ray_snapshot_interval_s`` and whenever ``checkpoint()`` is called
  (the team calls it on each publish), keeps the last in memory and mirrors it into ``spec.workspace`` on
  the head, so the run directory holds the agent's work.

Node loss: when a call finds the actor dead (its node or worker died), the driver starts a new actor —
Ray places it on a node that has the resources — from the last snapshot, records the loss in
``recoveries``, calls ``on_recovery`` and tells the agent with a note on its next ``ExecResult``
(``recovered``, also at the head of ``stderr``). A command that was running when the node died is not
re-run (it may not be idempotent): its result says so. File operations are retried once on the new actor.

Ray is imported lazily; without it ``check()`` says which extra to install. ``run_ray_job`` runs one command
in a fresh sandbox as a Ray *task* with its own resource request (verification jobs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from aarlab.errors import require
from aarlab.sandbox._base import ExecResult, Mount, Sandbox, SandboxError, SandboxSpec, sandbox_backend
from aarlab.sandbox._helpers import (
    DEFAULT_EXCLUDE,
    _tar_directory,
    extract_tar_safely,
    relative_path,
    snapshot_tar,
)

log = logging.getLogger(__name__)

SNAPSHOT_MAX_BYTES = 1024**3  # a workspace snapshot for recovery (caches excluded)
MOUNT_MAX_BYTES = 4 * 1024**3  # a read-only mount shipped through the object store
PLACEMENT_TIMEOUT_S = 600.0  # how long a new actor may wait for a node with its resources
CALL_MARGIN_S = 120.0  # beyond a command's own timeout, before a silent actor counts as lost
HEARTBEAT_S = 10.0  # how often an idle sandbox's actor is checked, so a loss is repaired before the next call


def ensure_ray(address: str | None = None):
    """The ``ray`` module, connected: to ``address`` (``ray://HOST:PORT`` or ``auto``) or, when ``None`` and
    nothing is connected yet, to a new one-machine Ray started here."""
    ray = require("ray", "ray")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    return ray


def _lost_errors(ray) -> tuple[type[BaseException], ...]:
    """Exceptions that mean the actor (its worker or its node) is gone or unreachable, not a failed call."""
    ex = ray.exceptions
    return tuple(
        getattr(ex, name)
        for name in ("RayActorError", "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError",
                     "ObjectLostError", "OwnerDiedError", "GetTimeoutError")
        if hasattr(ex, name)
    )


def _utc(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S UTC")


# ------------------------------------------------------------------------------------------ node side


class _NodeSandbox:
    """What runs on the node: an inner sandbox over a node-local workspace (the body of the actor and jobs)."""

    def __init__(self, spec_json: str, mount_tars: list[bytes], workspace_tar: bytes | None):
        spec = SandboxSpec.model_validate_json(spec_json)
        label = "".join(c for c in spec.name if c.isalnum() or c in "-_")[:40] or "sandbox"
        self.root = Path(tempfile.mkdtemp(prefix=f"aarlab-ray-{label}-"))
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
        inner = spec.model_copy(update={"workspace": workspace, "mounts": mounts, "gpus": gpus})
        from aarlab.sandbox._registry import create

        self.sandbox = create(spec.ray_inner_backend, inner)
        self.sandbox.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sandbox.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class SandboxActor(_NodeSandbox):
    """The Ray actor behind a ``RaySandbox`` (wrapped with ``ray.remote`` on first use)."""

    def __init__(self, spec_json: str, mount_refs: list, workspace_tar: bytes | None):
        ray = require("ray", "ray")
        super().__init__(spec_json, ray.get(list(mount_refs)), workspace_tar)

    def where(self) -> dict:
        ray = require("ray", "ray")
        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid()}

    def exec(self, cmd, timeout, env, cwd) -> dict:
        return self.sandbox.exec(cmd, timeout=timeout, env=env, cwd=cwd).model_dump()

    def read_file(self, path: str) -> bytes:
        return self.sandbox.read_file(path)

    def write_file(self, path: str, data: bytes) -> None:
        self.sandbox.write_file(path, data)

    def list_files(self, path: str) -> list[str]:
        return self.sandbox.list_files(path)

    def snapshot(self, subdir: str, exclude: tuple[str, ...], max_bytes: int) -> bytes:
        return snapshot_tar(self.sandbox, subdir, exclude, max_bytes)


_ACTOR_CLASS = None


def _actor_class():
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        ray = require("ray", "ray")
        _ACTOR_CLASS = ray.remote(SandboxActor)
    return _ACTOR_CLASS


# ------------------------------------------------------------------------------------------ driver side


def _ship(ray, mounts: list[Mount]) -> list:
    """Object-store references to tars of the (read-only) mounts, for nodes that do not share the head's disk."""
    refs = []
    for mount in mounts:
        if mount.writable:
            raise SandboxError(
                f"the ray backend cannot give a sandbox a writable mount ({mount.host} -> {mount.target}): "
                "nodes do not share the head's disk; write to the workspace and read it back instead"
            )
        if not mount.host.is_dir():
            raise SandboxError(f"mount source is not a directory: {mount.host}")
        refs.append(ray.put(_tar_directory(mount.host.resolve(), (), MOUNT_MAX_BYTES)))
    return refs


@sandbox_backend("ray")
class RaySandbox(Sandbox):
    """A sandbox actor on a Ray cluster node; recreated from its last workspace snapshot if the node is lost."""

    isolates = True  # the instance says False when its inner backend is ``process``

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        if spec.ray_inner_backend == "ray":
            raise SandboxError("ray_inner_backend must be a local backend (bwrap or process), not ray")
        self.isolates = spec.ray_inner_backend != "process"
        self.recoveries: list[dict] = []  # one record per loss: when, why, from which snapshot, where to
        self.on_recovery: Callable[[dict], None] | None = None
        self.node: dict | None = None  # where the actor runs now: node_id, host, pid
        self._ray = None
        self._actor = None
        self._generation = 0  # bumped on each (re)creation, so two callers never recover the same loss twice
        self._lock = threading.RLock()
        self._mount_refs: list = []
        self._snapshot: bytes | None = None
        self._snapshot_time: float | None = None
        self._pending_note: str | None = None
        self._stopping = threading.Event()
        self._snapshotter: threading.Thread | None = None

    @classmethod
    def check(cls) -> tuple[bool, str]:
        try:
            import ray
        except ImportError:
            return False, "ray is not installed: pip install 'aarlab[ray]'"
        return True, f"ray {ray.__version__} (sandboxes become actors on the cluster given by --cluster)"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._actor is not None:
            return
        self._ray = ensure_ray(self.spec.ray_address)
        self._mount_refs = _ship(self._ray, self.spec.mounts)
        self.spec.workspace.mkdir(parents=True, exist_ok=True)
        # the head's copy of the workspace (a resumed run's, or empty) is where the node's copy starts from
        self._snapshot = _tar_directory(self.spec.workspace.resolve(), DEFAULT_EXCLUDE, SNAPSHOT_MAX_BYTES)
        self._snapshot_time = time.time()
        with self._lock:
            self._launch()
        self._stopping.clear()
        self._snapshotter = threading.Thread(target=self._snapshot_loop, name=f"snapshots-{self.spec.name}",
                                             daemon=True)
        self._snapshotter.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._snapshotter is not None:
            self._snapshotter.join(timeout=30)
            self._snapshotter = None
        if self._actor is None:
            return
        with contextlib.suppress(Exception):
            self.checkpoint()  # the head's copy of the workspace ends up current
        actor, self._actor = self._actor, None
        with contextlib.suppress(Exception):
            self._ray.get(actor.close.remote(), timeout=60)
        with contextlib.suppress(Exception):
            self._ray.kill(actor)

    def _launch(self) -> None:
        """Start a new actor from the last snapshot and wait until it runs (caller holds the lock)."""
        ray, spec = self._ray, self.spec
        options = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "resources": dict(spec.resources),
                   "max_restarts": 0, "max_concurrency": 8}
        if spec.ray_memory_mb:
            options["memory"] = spec.ray_memory_mb * 1024 * 1024
        actor = _actor_class().options(**options).remote(
            spec.model_dump_json(), self._mount_refs, ray.put(self._snapshot or b"")
        )
        try:
            self.node = ray.get(actor.where.remote(), timeout=PLACEMENT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            with contextlib.suppress(Exception):
                ray.kill(actor)
            raise SandboxError(
                f"no Ray node could host sandbox {spec.name!r} within {PLACEMENT_TIMEOUT_S:g} s (it asks for "
                f"num_cpus={spec.num_cpus}, num_gpus={spec.num_gpus}, resources={spec.resources})"
            ) from None
        except ray.exceptions.RayTaskError as exc:
            with contextlib.suppress(Exception):
                ray.kill(actor)
            raise SandboxError(f"the sandbox actor could not start on its node: {exc.cause!r}") from None
        self._actor = actor
        self._generation += 1

    # ------------------------------------------------------------------ recovery

    def _current(self):
        with self._lock:
            if self._actor is None:
                raise SandboxError("sandbox not started: call start() or use it as a context manager")
            return self._actor, self._generation

    def _recover(self, generation: int, reason: str) -> None:
        """Replace a lost actor (once per loss, whoever notices it first) from the last snapshot."""
        with self._lock:
            if generation != self._generation or self._actor is None:
                return  # already recovered by another caller, or stopped
            old_actor, old_node = self._actor, self.node
            with contextlib.suppress(Exception):
                self._ray.kill(old_actor)
            lost_at = time.time()
            self._launch()
            record = {
                "time": lost_at,
                "reason": reason,
                "snapshot_time": self._snapshot_time,
                "lost_s": round(lost_at - (self._snapshot_time or lost_at), 1),
                "from_node": old_node,
                "to_node": self.node,
            }
            self.recoveries.append(record)
            self._pending_note = (
                f"sandbox recovered: its node was lost ({reason}); the sandbox was recreated on host "
                f"{self.node['host']} from the workspace snapshot of {_utc(self._snapshot_time)} "
                f"({record['lost_s']:g} s before the loss): changes made after it are gone, and so are "
                "processes that were running"
            )
        log.warning("sandbox %s: %s", self.spec.name, self._pending_note)
        if self.on_recovery is not None:
            try:
                self.on_recovery(record)
            except Exception:  # a listener's fault must not break the agent's sandbox
                log.exception("on_recovery listener failed")

    def _call(self, method: str, *args, timeout: float = 300.0, retry: bool = True):
        """Call an actor method; on loss recover, then retry once (for idempotent file operations)."""
        ray = self._ray
        lost = _lost_errors(ray)
        for attempt in (1, 2):
            actor, generation = self._current()
            try:
                return ray.get(getattr(actor, method).remote(*args), timeout=timeout)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, SandboxError):
                    raise SandboxError(str(cause)) from None
                raise SandboxError(f"{method} failed on the sandbox's node: {cause or exc}") from None
            except lost as exc:
                self._recover(generation, f"{type(exc).__name__} during {method}")
                if not retry or attempt == 2:
                    raise _Lost() from exc
        raise AssertionError("unreachable")

    def _take_note(self) -> str | None:
        with self._lock:
            note, self._pending_note = self._pending_note, None
            return note

    # ------------------------------------------------------------------ snapshots

    def checkpoint(self) -> float:
        """Snapshot the workspace now and keep it as the recovery point; returns the snapshot's time.

        The team calls this on each publish; a background thread calls it every ``ray_snapshot_interval_s``.
        """
        taken = time.time()
        try:
            tar = self._call("snapshot", ".", tuple(DEFAULT_EXCLUDE), SNAPSHOT_MAX_BYTES, retry=False)
        except _Lost:
            return self._snapshot_time or 0.0  # recovered from the previous snapshot already
        with self._lock:
            self._snapshot, self._snapshot_time = tar, taken
        self._mirror(tar)
        return taken

    def _mirror(self, tar: bytes) -> None:
        """Replace the head's copy of the workspace by the snapshot (swap, so it is never half-written)."""
        head = self.spec.workspace.resolve()
        fresh = head.with_name(f".{head.name}.aarlab-new-{uuid.uuid4().hex[:8]}")
        old = head.with_name(f".{head.name}.aarlab-old-{uuid.uuid4().hex[:8]}")
        try:
            extract_tar_safely(tar, fresh, max_bytes=SNAPSHOT_MAX_BYTES * 4)
            head.rename(old)
            fresh.rename(head)
        except OSError as exc:
            log.warning("sandbox %s: could not mirror the workspace snapshot to %s: %s", self.spec.name, head, exc)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    def _snapshot_loop(self) -> None:
        """Check the actor every ``HEARTBEAT_S`` (recovering it if lost) and snapshot every interval."""
        interval = max(self.spec.ray_snapshot_interval_s, 1.0)
        while not self._stopping.wait(min(HEARTBEAT_S, interval)):
            try:
                if time.time() - (self._snapshot_time or 0.0) >= interval:
                    self.checkpoint()
                else:
                    self._call("where", timeout=60.0, retry=False)
            except _Lost:
                pass  # recovered; the agent hears of it on its next command
            except Exception as exc:  # a failed snapshot keeps the previous one; the next try may work
                log.warning("sandbox %s: periodic check failed: %s", self.spec.name, exc)

    def _snapshot_tar(self, subdir: str, exclude: tuple[str, ...], max_bytes: int) -> bytes:
        """``snapshot_tar`` tars on the node and ships the tar back (used by the code-store tool)."""
        return self._call("snapshot", str(relative_path(subdir)), tuple(exclude), max_bytes)

    # ------------------------------------------------------------------ the protocol

    def exec(self, cmd, timeout=None, env=None, cwd=None) -> ExecResult:
        limit = self.spec.default_timeout_s if timeout is None else timeout
        if cwd is not None:
            relative_path(cwd)  # refuse paths out of the workspace before going to the node
        start = time.monotonic()
        try:
            data = self._call("exec", cmd, limit, env, cwd, timeout=limit + CALL_MARGIN_S, retry=False)
            result = ExecResult.model_validate(data)
        except _Lost:
            result = ExecResult(
                exit_code=255,
                stderr="[the sandbox's node was lost before or while this command ran: it may not have "
                "completed, and it is not re-run automatically; run it again if it is still needed]\n",
                duration_s=time.monotonic() - start,
            )
        note = self._take_note()
        if note is not None:
            result.recovered = note
            result.stderr = f"[{note}]\n{result.stderr}"
        return result

    def read_file(self, path: str) -> bytes:
        return self._call("read_file", str(relative_path(path)))

    def write_file(self, path: str, data: bytes | str) -> None:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._call("write_file", str(relative_path(path)), payload)

    def list_files(self, path: str = ".") -> list[str]:
        return self._call("list_files", str(relative_path(path)))


class _Lost(SandboxError):
    """The actor was lost during a call (and has been recreated)."""


# ------------------------------------------------------------------------------------------ jobs


def _run_job(spec_json: str, mount_refs: list, files: bytes | None, cmd, timeout: float, collect: str):
    ray = require("ray", "ray")
    node = _NodeSandbox(spec_json, ray.get(list(mount_refs)), files)
    try:
        result = node.sandbox.exec(cmd, timeout=timeout)
        try:
            collected = snapshot_tar(node.sandbox, collect, (), SNAPSHOT_MAX_BYTES)
        except SandboxError:
            collected = b""  # nothing at ``collect``: the result says why
        return result.model_dump(), collected
    finally:
        node.close()


def run_ray_job(
    cmd: str | list[str],
    *,
    files: bytes | None = None,
    mounts: list[Mount] | None = None,
    collect: str = ".",
    timeout_s: float = 3600.0,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    resources: dict[str, float] | None = None,
    memory_mb: int = 4096,
    env: dict[str, str] | None = None,
    inner_backend: str = "bwrap",
    ray_address: str | None = None,
) -> tuple[ExecResult, bytes]:
    """Run one command in a fresh sandbox as a Ray task with its own resource request (a verification job).

    ``files`` (a tar, e.g. a code snapshot) becomes the workspace; ``mounts`` (read-only dirs, e.g. the held-out
    data at ``/task``) travel through the object store. Returns the command's result and a tar of the
    workspace subdirectory ``collect`` (e.g. ``out`` holding the predictions) after it ran.
    """
    ray = ensure_ray(ray_address)
    spec = SandboxSpec(workspace=Path("/nonexistent"), mounts=list(mounts or []), env=dict(env or {}),
                       memory_mb=memory_mb, default_timeout_s=timeout_s, name="job", num_gpus=num_gpus,
                       ray_inner_backend=inner_backend)
    relative_path(collect)
    task = ray.remote(_run_job).options(num_cpus=num_cpus, num_gpus=num_gpus, resources=dict(resources or {}),
                                        max_retries=1)
    data, collected = ray.get(task.remote(spec.model_dump_json(), _ship(ray, spec.mounts), files, cmd, timeout_s,
                                          collect))
    return ExecResult.model_validate(data), collected
