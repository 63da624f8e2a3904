"""The ``ray`` backend: each sandbox is a Ray actor placed on a cluster node, recreated elsewhere on node loss.

The driver (the harness, on the head) holds a ``RaySandbox``; the actor it starts, with the spec's
``num_cpus``/``num_gpus``/``resources``/``ray_memory_mb``, runs an *inner* sandbox (``bwrap`` by default) on its
node over a node-local copy of the workspace. What moves where:

- files: ``read_file``/``write_file``/``list_files`` and snapshots are actor calls; nothing is shared by path;
- the spec's mounts (the task's public files) are tarred once by the driver, put in Ray's object store and
  unpacked read-only on the node (they must be read-only); ``readonly_paths`` (model weights) must exist at the
  same path on every node (a shared filesystem or a pre-installed image);
- snapshots: the head keeps a copy of the workspace in ``spec.workspace`` (the run directory's
  ``workspaces/<agent>/``). It is brought up to date incrementally — only files changed since the last sync
  travel — after every command and file write, every ``ray_snapshot_interval_s`` while a long command runs,
  and whenever ``checkpoint()`` is called. That copy is the snapshot a lost sandbox is recreated from.

Node loss: when a call finds the actor dead (its node or worker died), the driver starts a new actor —
Ray places it on a node that has the resources — from the head's copy, records the loss in ``recoveries``,
calls ``on_recovery`` and tells the agent with a note on its next ``ExecResult`` (``recovered``, also at the
head of ``stderr``). Each command first checks that the actor is alive, so a loss between commands costs
nothing; a command that was running when the node died is not re-run (it may not be idempotent) and its
result says so, and only what it changed since the last sync is lost. File operations are retried once.

Background jobs (``sandbox.jobs``, a ``RayJobs``) are work on the actor: its inner sandbox runs them under
the same ``JobManager`` as a local bwrap sandbox, and each call (start, list, output, wait, kill) is an actor
call. Their logs are workspace files and come back with the syncs (one is made as soon as a job is seen to
end); the job table comes back with every job call and with the heartbeat while jobs run, and is mirrored at
``spec.job_state``. Jobs die with their actor. The next actor, after a loss or after a crashed harness's
``resume``, is given the last table the head saw and records the jobs that were running then as lost; the
agent hears of them in its next turn's job events.

Ray is imported lazily; without it ``check()`` says which extra to install. ``run_ray_job`` runs one command
in a fresh sandbox as a Ray *task* with its own resource request (verification jobs).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from aarlab.errors import require
from aarlab.paths import atomic_write_text
from aarlab.sandbox._base import ExecResult, Mount, Sandbox, SandboxError, SandboxSpec, sandbox_backend
from aarlab.sandbox._files import (
    DEFAULT_MAX_READ_BYTES,
    FileTooLarge,
    _excluded,
    relative_path,
)
from aarlab.sandbox._job_info import JobError, JobInfo
from aarlab.sandbox._jobs import LOST_DETAIL
from aarlab.sandbox._ray_node import (
    MOUNT_MAX_BYTES,
    SNAPSHOT_MAX_BYTES,
    SYNC_FILE_MAX_BYTES,
    SandboxActor,
    _NodeSandbox,
)
from aarlab.sandbox._tar import DEFAULT_EXCLUDE, _tar_directory, extract_tar_safely, snapshot_tar

log = logging.getLogger(__name__)

PLACEMENT_TIMEOUT_S = 600.0  # how long a new actor may wait for a node with its resources
CALL_MARGIN_S = 120.0  # beyond a command's own timeout, before a silent actor counts as lost
HEARTBEAT_S = 10.0  # how often an idle sandbox's actor is checked, so a loss is repaired before the next call
# how often the head's copy of the job table reaches disk while only runtimes and CPU times change (a change of
# jobs or states is written at once): a crashed harness's lost jobs have their runtimes to within this
JOB_TABLE_SAVE_S = 5.0
JOB_CALL_TIMEOUT_S = 60.0  # a job call other than a wait (a kill waits up to 10 s for the job's end on the node)


def ensure_ray(address: str | None = None):
    """The ``ray`` module, connected: to ``address`` (``ray://HOST:PORT`` or ``auto``) or, when ``None`` and
    nothing is connected yet, to a new one-machine Ray started here."""
    ray = require("ray", "ray")
    if not ray.is_initialized():
        if address and address.startswith("ray://"):
            ray.init(address=address)  # the Ray client: it forwards only a few options to the cluster
        elif address:
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
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S UTC")


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
    """A sandbox actor on a Ray cluster node; recreated from the head's copy of its workspace on node loss."""

    isolates = True  # the instance says False when its inner backend is ``process``

    def __init__(self, spec: SandboxSpec):
        if spec.ray_inner_backend == "ray":
            # a config that says ``backend: ray`` means "on Ray, isolated as usual": bwrap on the node
            spec = spec.model_copy(update={"ray_inner_backend": "bwrap"})
        super().__init__(spec)
        self.isolates = spec.ray_inner_backend != "process"
        self.recoveries: list[dict] = []  # one record per loss: when, why, last sync, from which node to which
        self.on_recovery: Callable[[dict], None] | None = None
        self.node: dict | None = None  # where the actor runs now: node_id, host, pid
        self.synced_at: float | None = None  # when the head's copy last matched the node's workspace
        self._ray = None
        self._actor = None
        self._generation = 0  # bumped on each (re)creation, so two callers never recover the same loss twice
        self._lock = threading.RLock()  # the actor handle and recovery
        # applying syncs to the head's copy, in order (re-entrant: a resync may recover, which resets the order)
        self._sync_lock = threading.RLock()
        self._applied_seq = 0
        self._pending: dict[int, dict] = {}
        self._mount_refs: list = []
        self._pending_note: str | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        # the job table as the head last saw it (mirrored at spec.job_state), and the slots of the actor's jobs
        self._job_lock = threading.Lock()
        self._job_table: dict | None = None
        self._job_table_saved_at = 0.0
        self._job_slots: int | None = None

    @classmethod
    def check(cls) -> tuple[bool, str]:
        try:
            import ray
        except ImportError:
            return False, "ray is not installed: pip install 'aarlab[ray]'"
        return True, f"ray {ray.__version__} (sandboxes become actors on the cluster given by --cluster)"

    @property
    def head_workspace(self) -> Path:
        return self.spec.workspace.resolve()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._actor is not None:
            return
        self._ray = ensure_ray(self.spec.ray_address)
        self._mount_refs = _ship(self._ray, self.spec.mounts)
        self.spec.workspace.mkdir(parents=True, exist_ok=True)
        self._job_table = self._read_job_table()
        with self._lock:
            self._launch(LOST_DETAIL)  # from the head's copy: a resumed run's workspace, or an empty one
        self.synced_at = time.time()
        self.jobs = RayJobs(self) if self._job_slots else None
        self._stopping.clear()
        self._watcher = threading.Thread(target=self._watch, name=f"ray-sandbox-{self.spec.name}", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=60)
            self._watcher = None
        jobs, self.jobs = self.jobs, None
        if self._actor is None:
            return
        if jobs is not None:
            with contextlib.suppress(Exception):
                jobs.close()  # the table records how they ended, and the checkpoint brings their logs
        with contextlib.suppress(Exception):
            self.checkpoint()  # the head's copy ends up current
        with self._lock:
            actor, self._actor = self._actor, None
        with contextlib.suppress(Exception):
            self._ray.get(actor.close.remote(), timeout=60)
        with contextlib.suppress(Exception):
            self._ray.kill(actor)

    def _launch(self, lost_detail: str) -> None:
        """Start a new actor from the head's copy and wait until it runs (caller holds ``_lock``).

        It gets the job table the head last saw; ``lost_detail`` says why the jobs running in it were lost.
        """
        ray, spec = self._ray, self.spec
        options = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "resources": dict(spec.resources),
                   "max_restarts": 0, "max_concurrency": 8}
        if spec.ray_memory_mb:
            options["memory"] = spec.ray_memory_mb * 1024 * 1024
        with self._sync_lock:
            workspace_tar = _tar_directory(self.head_workspace, DEFAULT_EXCLUDE, SNAPSHOT_MAX_BYTES)
            self._applied_seq, self._pending = 0, {}
            self._generation += 1  # from here on, syncs from the previous actor are ignored
        with self._job_lock:
            job_table = json.dumps(self._job_table) if self._job_table is not None else None
        actor = _actor_class().options(**options).remote(spec.model_dump_json(), self._mount_refs,
                                                         ray.put(workspace_tar), job_table, lost_detail)
        try:
            self.node = ray.get(actor.where.remote(), timeout=PLACEMENT_TIMEOUT_S)
            jobs = ray.get(actor.jobs_state.remote(), timeout=JOB_CALL_TIMEOUT_S)
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
        self._job_slots = jobs["slots"]
        if jobs["table"] is not None:
            self._note_job_table(jobs["table"], self._generation)

    # ------------------------------------------------------------------ recovery

    def _current(self):
        with self._lock:
            if self._actor is None:
                raise SandboxError("sandbox not started: call start() or use it as a context manager")
            return self._actor, self._generation

    def _recover(self, generation: int, reason: str) -> None:
        """Replace a lost actor (once per loss, whoever notices it first) from the head's copy."""
        with self._lock:
            if generation != self._generation or self._actor is None or self._stopping.is_set():
                return  # already recovered by another caller, or stopping (nothing to recover for)
            old_actor, old_node = self._actor, self.node
            with contextlib.suppress(Exception):
                self._ray.kill(old_actor)
            lost_at = time.time()
            self._launch(f"lost with its sandbox's node ({reason})")
            record = {
                "time": lost_at,
                "reason": reason,
                "synced_at": self.synced_at,
                "lost_s": round(lost_at - (self.synced_at or lost_at), 1),
                "from_node": old_node,
                "to_node": self.node,
            }
            self.recoveries.append(record)
            self._pending_note = (
                f"sandbox recovered: its node was lost ({reason}); the sandbox was recreated on host "
                f"{self.node['host']} from the workspace as last synced at {_utc(self.synced_at)} "
                f"({record['lost_s']:g} s before the loss): changes made after that are gone, and so are "
                "processes that were running"
            )
        log.warning("sandbox %s: %s", self.spec.name, self._pending_note)
        if self.on_recovery is not None:
            try:
                self.on_recovery(record)
            except Exception:  # a listener's fault must not break the agent's sandbox
                log.exception("on_recovery listener failed")

    def _call(self, method: str, *args, timeout: float = 300.0, retry: bool = True):
        """Call an actor method -> (value, generation); on loss recover, then retry once if ``retry``."""
        ray = self._ray
        lost = _lost_errors(ray)
        for attempt in (1, 2):
            actor, generation = self._current()
            try:
                return ray.get(getattr(actor, method).remote(*args), timeout=timeout), generation
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, FileTooLarge):
                    raise FileTooLarge(cause.path, cause.size, cause.limit) from None
                if isinstance(cause, JobError):  # a refusal the agent is to read (no free slot, unknown job)
                    raise JobError(str(cause)) from None
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

    # ------------------------------------------------------------------ the job table

    def _read_job_table(self) -> dict | None:
        """The table a previous harness left at ``spec.job_state`` (a run being resumed), if any."""
        path = self.spec.job_state
        if path is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("sandbox %s: cannot read the job table %s (%s); starting an empty one", self.spec.name,
                        path, exc)
            return None

    def _note_job_table(self, table: dict, generation: int) -> bool:
        """Take the node's job table as the head's (ignored from a replaced actor) and mirror it on disk.

        Returns whether a job that was running ended since the last table seen.
        """
        with self._job_lock:
            if generation != self._generation:
                return False
            before = _job_states(self._job_table)
            after = _job_states(table)
            self._job_table = table
            path = self.spec.job_state
            if path is not None and (after != before or time.time() - self._job_table_saved_at >= JOB_TABLE_SAVE_S):
                atomic_write_text(path, json.dumps(table, indent=1) + "\n")
                self._job_table_saved_at = time.time()
        return any(state == "running" and after.get(name) != "running" for name, state in before.items())

    def _cached_jobs(self) -> list[JobInfo]:
        with self._job_lock:
            raw = list((self._job_table or {}).get("jobs", []))
        return [JobInfo.model_validate(j) for j in raw]

    # ------------------------------------------------------------------ the head's copy

    def _apply(self, sync: dict, generation: int) -> None:
        """Apply a sync from the node to the head's copy, in the order the node numbered them."""
        with self._sync_lock:
            if generation != self._generation:
                return  # from an actor that has been replaced since
            self._pending[sync["seq"]] = sync
            while self._applied_seq + 1 in self._pending:
                current = self._pending.pop(self._applied_seq + 1)
                try:
                    self._apply_one(current)
                except (OSError, SandboxError) as exc:
                    log.warning("sandbox %s: a sync could not be applied (%s); copying the whole workspace",
                                self.spec.name, exc)
                    try:
                        self._resync()
                    except (OSError, SandboxError) as again:
                        log.warning("sandbox %s: the head's copy of the workspace is stale: %s",
                                    self.spec.name, again)
                        return
                self._applied_seq += 1
                self.synced_at = time.time()

    def _apply_one(self, sync: dict) -> None:
        head = self.head_workspace
        keep = set(sync["paths"])
        # first what is gone (files, then directories left empty: a file may have replaced a directory)
        for dirpath, dirnames, filenames in os.walk(head, topdown=False, followlinks=False):
            here = Path(dirpath)
            rel_dir = here.relative_to(head)
            if _excluded(rel_dir, DEFAULT_EXCLUDE):
                continue
            for name in filenames:
                rel = rel_dir / name
                if rel.as_posix() not in keep and not _excluded(rel, DEFAULT_EXCLUDE):
                    with contextlib.suppress(OSError):
                        (here / name).unlink()
            for name in dirnames:
                if not _excluded(rel_dir / name, DEFAULT_EXCLUDE):
                    with contextlib.suppress(OSError):
                        (here / name).rmdir()  # only if empty
        # then what is new or changed (a directory may have replaced a file)
        if sync["tar"]:
            with tarfile.open(fileobj=io.BytesIO(sync["tar"])) as tar:
                for name in tar.getnames():
                    for parent in Path(name).parents:
                        if parent != Path(".") and (head / parent).is_file():
                            (head / parent).unlink()
            extract_tar_safely(sync["tar"], head, max_bytes=SNAPSHOT_MAX_BYTES)
        for rel in sync.get("skipped", []):
            log.warning("sandbox %s: %s is larger than %d MB and stays on its node only", self.spec.name, rel,
                        SYNC_FILE_MAX_BYTES // 1024**2)

    def _resync(self) -> None:
        """Replace the head's copy by a full snapshot from the node (after a sync could not be applied)."""
        tar, _ = self._call("snapshot", ".", tuple(DEFAULT_EXCLUDE), SNAPSHOT_MAX_BYTES, retry=False)
        head = self.head_workspace
        fresh = head.with_name(f".{head.name}.aarlab-new-{uuid.uuid4().hex[:8]}")
        old = head.with_name(f".{head.name}.aarlab-old-{uuid.uuid4().hex[:8]}")
        try:
            extract_tar_safely(tar, fresh, max_bytes=SNAPSHOT_MAX_BYTES)
            head.rename(old)
            fresh.rename(head)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    def checkpoint(self) -> float:
        """Bring the head's copy of the workspace up to date now; returns the time it was in sync.

        Called after every command and write, periodically by a background thread, and by the team on each
        publish; a lost sandbox is recreated from this copy.
        """
        try:
            sync, generation = self._call("sync", retry=False)
        except _Lost:
            return self.synced_at or 0.0  # recovered from the head's copy already
        self._apply(sync, generation)
        return self.synced_at or 0.0

    def _watch(self) -> None:
        """Every ``HEARTBEAT_S``: check the actor (recovering it if lost); sync every snapshot interval."""
        interval = max(self.spec.ray_snapshot_interval_s, 1.0)
        while not self._stopping.wait(min(HEARTBEAT_S, interval)):
            try:
                if time.time() - (self.synced_at or 0.0) >= interval:
                    self.checkpoint()
                elif self.jobs is not None and self.jobs.running():
                    self.jobs.refresh()  # the liveness check, and the table (runtimes, ends) for the head
                else:
                    self._call("where", timeout=60.0, retry=False)
            except _Lost:
                pass  # recovered; the agent hears of it on its next command
            except Exception as exc:  # a failed sync keeps the previous state; the next try may work
                log.warning("sandbox %s: periodic check failed: %s", self.spec.name, exc)

    def _snapshot_tar(self, subdir: str, exclude: tuple[str, ...], max_bytes: int) -> bytes:
        """``snapshot_tar`` tars on the node and ships the tar back (used by the code-store tool)."""
        return self._call("snapshot", str(relative_path(subdir)), tuple(exclude), max_bytes)[0]

    # ------------------------------------------------------------------ the protocol

    def exec(self, cmd, timeout=None, env=None, cwd=None) -> ExecResult:
        limit = self.spec.default_timeout_s if timeout is None else timeout
        if cwd is not None:
            relative_path(cwd)  # refuse paths out of the workspace before going to the node
        start = time.monotonic()
        try:
            # a loss found here (between commands) is repaired before the command runs, so it costs nothing
            self._call("where", timeout=60.0)
            data, generation = self._call("exec", cmd, limit, env, cwd, timeout=limit + CALL_MARGIN_S,
                                          retry=False)
            result = ExecResult.model_validate(data["result"])
            self._apply(data["sync"], generation)
        except _Lost:
            result = ExecResult(
                exit_code=255,
                stderr="[the sandbox's node was lost while this command ran: it may not have completed, and it "
                "is not re-run automatically; run it again if it is still needed]\n",
                duration_s=time.monotonic() - start,
            )
        note = self._take_note()
        if note is not None:
            result.recovered = note
            result.stderr = f"[{note}]\n{result.stderr}"
        return result

    def read_file(self, path: str, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        return self._call("read_file", str(relative_path(path)), max_bytes)[0]

    def write_file(self, path: str, data: bytes | str) -> None:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        sync, generation = self._call("write_file", str(relative_path(path)), payload)
        self._apply(sync, generation)

    def list_files(self, path: str = ".") -> list[str]:
        return self._call("list_files", str(relative_path(path)))[0]


class _Lost(SandboxError):
    """The actor was lost during a call (and has been recreated)."""


def _job_states(table: dict | None) -> dict[str, str]:
    return {j["name"]: j["state"] for j in (table or {}).get("jobs", [])}


class RayJobs:
    """The background jobs of a ``RaySandbox``: the ``JobManager`` interface, served by its actor.

    Each call goes to the job manager of the actor's inner sandbox and brings back the job table, which the
    sandbox mirrors at ``spec.job_state``; when a call shows that a job ended, the head's copy of the
    workspace is synced at once, so that its log and results survive a later loss. Every call but a start is
    retried once on a recovered actor (where the jobs it names are recorded lost); a start first checks
    the actor, and one whose actor dies under it is not retried (the job may have started and died with
    its node): it fails with a message saying so.
    """

    def __init__(self, sandbox: RaySandbox):
        self.sandbox = sandbox
        self._lock = threading.Lock()
        # CPU and GPU seconds of the jobs of replaced actors, so that usage() never goes backwards over a
        # recovery (the agent charges the increase since its last look)
        self._usage_generation = sandbox._generation
        self._carried = (0.0, 0.0)
        self._last = (0.0, 0.0)

    @property
    def slots(self) -> int:
        """How many jobs may run at once (the actor's inner sandbox's slots)."""
        return int(self.sandbox._job_slots or 0)

    def _call(self, method: str, *args, timeout: float = JOB_CALL_TIMEOUT_S, retry: bool = True, **kwargs):
        """``method`` on the node's job manager -> (its answer, the actor generation that gave it)."""
        data, generation = self.sandbox._call("job", method, args, kwargs, timeout=timeout, retry=retry)
        if self.sandbox._note_job_table(data["table"], generation):
            try:
                self.sandbox.checkpoint()
            except SandboxError as exc:  # the periodic sync brings the log later; the call itself succeeded
                log.warning("sandbox %s: sync after a job ended failed: %s", self.sandbox.spec.name, exc)
        return data["value"], generation

    def start(self, name: str, command: str, *, timeout_s: float, gpus: int | None = None) -> JobInfo:
        """Start ``command`` as job ``name`` on the actor (see ``JobManager.start``)."""
        # as for a command: a loss found here (between calls) is repaired first, and the start is not lost
        self.sandbox._call("where", timeout=JOB_CALL_TIMEOUT_S)
        try:
            value, _ = self._call("start", name, command, timeout_s=timeout_s, gpus=gpus, retry=False)
        except _Lost:
            raise JobError(f"the sandbox's node was lost while job {name!r} was starting; the sandbox was "
                           "recreated and the job is not running: start it again") from None
        return JobInfo.model_validate(value)

    def list(self) -> list[JobInfo]:
        """All jobs of this sandbox (running first, then by start time), as the actor has them now."""
        return [JobInfo.model_validate(j) for j in self._call("list")[0]]

    def running(self) -> list[JobInfo]:
        """The running jobs as of the table last brought back (by any job call or the heartbeat): no actor
        call, so that a live view may ask often."""
        return sorted((j for j in self.sandbox._cached_jobs() if j.running), key=lambda j: j.started_at)

    def refresh(self) -> None:
        """Bring the head's job table up to date (one actor call, not retried on a loss)."""
        self._call("list", retry=False)

    def get(self, name: str) -> JobInfo:
        return JobInfo.model_validate(self._call("get", name)[0])

    def output(self, name: str, *, tail: int | None = None, offset: int | None = None,
               max_bytes: int = 16_000) -> tuple[str, int, int]:
        """Part of a job's log, read on the node (see ``JobManager.output``)."""
        text, start, size = self._call("output", name, tail=tail, offset=offset, max_bytes=max_bytes)[0]
        return text, start, size

    def wait(self, names: list[str], timeout_s: float, *, poll: Callable[[], None] | None = None,
             poll_every_s: float = 2.0) -> list[JobInfo]:
        """Wait until all of ``names`` have ended or ``timeout_s`` passed, in actor calls of at most
        ``poll_every_s``; ``poll`` runs on the head between them (budget charging, which may raise)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            chunk = max(0.0, min(poll_every_s, deadline - time.monotonic()))
            value, _ = self._call("wait", list(names), chunk, timeout=chunk + JOB_CALL_TIMEOUT_S)
            infos = [JobInfo.model_validate(j) for j in value]
            if not any(j.running for j in infos) or time.monotonic() >= deadline:
                return infos
            if poll is not None:
                poll()

    def kill(self, name: str, reason: str = "killed on request") -> JobInfo:
        """Kill a running job's whole process tree on the node; returns its record."""
        return JobInfo.model_validate(self._call("kill", name, reason)[0])

    def close(self, reason: str = "killed: its sandbox stopped") -> None:
        """Kill every job and refuse new ones (the sandbox is stopping)."""
        self._call("close", reason, retry=False)

    def usage(self) -> tuple[float, float]:
        """``(CPU seconds, GPU seconds)`` of the jobs started by this sandbox so far, over recoveries."""
        (cpu_s, gpu_s), generation = self._call("usage")
        with self._lock:
            if generation != self._usage_generation:
                self._carried = (self._carried[0] + self._last[0], self._carried[1] + self._last[1])
                self._usage_generation = generation
            self._last = (cpu_s, gpu_s)
            return self._carried[0] + cpu_s, self._carried[1] + gpu_s

    def take_lost(self) -> list[JobInfo]:
        """The jobs the last actor or harness lost, once."""
        return [JobInfo.model_validate(j) for j in self._call("take_lost")[0]]

    def drain_events(self) -> list[dict]:
        """Job events since the last call (start, end, lost), for the transcript."""
        return self._call("drain_events")[0]


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
