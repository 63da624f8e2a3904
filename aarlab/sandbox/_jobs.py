"""Background jobs: named commands that run in a sandbox while its agent goes on working.

A job is a command started like ``exec`` (the same sandbox command line: isolation, limits, environment and
a cgroup of its own for CPU accounting and killing) but in the background: its output goes to a log file in
the workspace, ``.jobs/<name>.log``, through a redirect made by the sandboxed shell itself (so no host-side
code opens an agent-writable path for writing), and a watcher thread per job enforces its wall-clock
timeout and the per-command CPU limit and records how it ended.

Slots bound how many jobs run at once (derived from the sandbox's GPUs or CPUs, or set); each job holds one
slot and the GPUs handed to it (``CUDA_VISIBLE_DEVICES`` and only those device nodes), so two jobs never
share a GPU by accident. A job holding GPUs is charged GPU-seconds for its runtime times its GPU count.

Jobs die with their sandbox: ``stop()`` kills them all, and bwrap's ``--die-with-parent`` (the harness's
agent thread is the parent) takes them down with a harness that is killed outright. The table of jobs is
written atomically to ``SandboxSpec.job_state`` (outside the workspace) on every change and every few
seconds while jobs run, so that after a crash the next start reports which jobs were lost and for how long
they had run, keeps the exit code of every job that had finished, and sweeps their cgroups.

A backend supports jobs by implementing ``launch_job`` (see ``JobLauncher``); ``BwrapSandbox`` and
``ProcessSandbox`` do. A Ray sandbox runs them on its actor: the actor's inner sandbox has a ``JobManager``
like a local one (its table kept on the node, outside the workspace), and the head's ``RaySandbox.jobs``
forwards each call to it and mirrors the table at ``SandboxSpec.job_state`` (``_ray.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aarlab.paths import atomic_write_text
from aarlab.sandbox._base import SandboxError
from aarlab.sandbox._files import MissingPath
from aarlab.sandbox._job_info import JobError, JobInfo, _event, _short, format_duration
from aarlab.sandbox._limits import Cgroup
from aarlab.sandbox._proc import _reap, kill_process_group, tree_cpu_seconds

log = logging.getLogger(__name__)

JOBS_DIR = ".jobs"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# (the sandbox's own uid makes the log, inside it: as root the sandbox runs as an unprivileged uid that could
# not append to a file the harness made)
# How often the watcher looks at a running job (CPU limit, timeout) and how often the table's ``seen_at``
# heartbeat reaches disk: a lost job's runtime is known to within this much.
WATCH_S = 1.0
HEARTBEAT_S = 5.0
# The script a job runs: the sandboxed shell points its output at the log, then runs the command. The log
# path and the command are positional arguments, so nothing is quoted into a script.
JOB_SCRIPT = 'mkdir -p "${1%/*}" && exec >>"$1" 2>&1 </dev/null && exec bash -c "$2"'
# what a job running when the table was last saved is recorded as, by default (a Ray sandbox names the lost node)
LOST_DETAIL = "lost: the harness stopped while it ran"


@dataclass
class LaunchedJob:
    """What a backend's ``launch_job`` hands back: the host process and where its CPU time is counted."""

    process: subprocess.Popen
    cgroup: Cgroup | None = None
    cleanup: Callable[[], None] | None = None  # runs once the job has ended (close descriptors, …)


class JobLauncher(Protocol):
    """A backend that can run a job: start ``argv`` (the job script) in the background like ``exec`` would,
    with ``env`` added and only ``gpus`` visible, in a cgroup of its own where it can have one."""

    def launch_job(self, argv: list[str], env: dict[str, str], gpus: list[int], label: str) -> LaunchedJob: ...


@dataclass
class _Running:
    info: JobInfo
    launched: LaunchedJob
    thread: threading.Thread | None = None
    kill_reason: str = ""
    cpu_base: float | None = None
    done: threading.Event = field(default_factory=threading.Event)


class JobManager:
    """The jobs of one sandbox: start, list, read, wait, kill; slots, GPUs, accounting, the persisted table.

    ``slots``: how many jobs may run at once; ``gpus``: the sandbox's GPUs, handed out to jobs;
    ``cpu_limit_s``: the per-command CPU limit, which a job's whole process tree obeys like a command's;
    ``state_path``: where the table is kept across harness crashes (None: in memory only);
    ``lost_detail``: how a job that was running when the table was last saved is described on load (what
    stopped it: a harness crash, a lost Ray node).
    """

    def __init__(self, launcher: JobLauncher, *, slots: int, gpus: list[int] | None = None,
                 cpu_limit_s: float | None = None, state_path: Path | None = None,
                 read_file: Callable[[str, int], bytes] | None = None, remove_file: Callable[[str], None] | None = None,
                 lost_detail: str = LOST_DETAIL):
        if slots < 1:
            raise SandboxError(f"a sandbox needs at least one job slot, not {slots}")
        self.launcher = launcher
        self.slots = slots
        self.gpus = list(gpus or [])
        self.cpu_limit_s = cpu_limit_s
        self.state_path = state_path
        self._read_file = read_file
        self._remove_file = remove_file
        self._lost_detail = lost_detail
        self._lock = threading.RLock()
        self._jobs: dict[str, JobInfo] = {}
        self._running: dict[str, _Running] = {}
        self._lost: list[JobInfo] = []
        self._events: list[dict] = []
        self._session = 0
        self._last_heartbeat = 0.0
        self._closed = False
        self._load()

    # -- the persisted table ------------------------------------------------------------------------------
    def _load(self) -> None:
        """Read the table a previous harness left: its running jobs were lost with it (their cgroups are
        swept), its finished ones keep their exit codes."""
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("cannot read the job table %s (%s); starting an empty one", self.state_path, exc)
            return
        self._session = int(data.get("session", 0)) + 1
        for raw in data.get("jobs", []):
            try:
                info = JobInfo.model_validate(raw)
            except ValueError:
                continue
            if info.running:
                # The harness that watched it is gone: its processes died with it (--die-with-parent); what
                # may be left in its cgroup goes now.
                if info.cgroup:
                    Cgroup([Path(d) for d in info.cgroup]).remove()
                info.state, info.ended_at = "lost", max(info.seen_at, info.started_at)
                info.detail = self._lost_detail
                self._lost.append(info)
                self._events.append(_event("lost", info))
            info.cgroup = []
            self._jobs[info.name] = info
        self._save()

    def table(self) -> dict:
        """The job table as it is saved: ``{"session", "slots", "jobs": [JobInfo as JSON, ...]}``."""
        with self._lock:
            return {"session": self._session, "slots": self.slots,
                    "jobs": [j.model_dump(mode="json") for j in self._jobs.values()]}

    def _save(self) -> None:
        if self.state_path is None:
            return
        with self._lock:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.state_path, json.dumps(self.table(), indent=1) + "\n")

    # -- starting -----------------------------------------------------------------------------------------
    def start(self, name: str, command: str, *, timeout_s: float, gpus: int | None = None) -> JobInfo:
        """Start ``command`` as job ``name``; refuses a bad or taken name and a start past the slots or GPUs.

        ``gpus``: how many of the sandbox's GPUs the job gets (default: one if the sandbox has any).
        """
        if not _NAME.match(name):
            raise JobError(f"job name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit")
        if not command.strip():
            raise JobError("the job's command is empty")
        if timeout_s <= 0:
            raise JobError("a job needs a positive timeout")
        want = (1 if self.gpus else 0) if gpus is None else int(gpus)
        with self._lock:
            if self._closed:
                raise JobError("the sandbox is stopped")
            if name in self._running:
                raise JobError(f"a job called {name!r} is running; pick another name or kill it first")
            running = [r.info for r in self._running.values()]
            if len(running) >= self.slots:
                raise JobError(f"all {self.slots} job slot(s) are in use: "
                               + "; ".join(f"{j.name} (slot {j.slot}, {format_duration(j.runtime_s)}, $ {_short(j.command)})"
                                           for j in running)
                               + ". Wait for one (job_wait) or kill one (job_kill) first.")
            held = {g for j in running for g in j.gpus}
            free = [g for g in self.gpus if g not in held]
            if want > len(free):
                holders = "; ".join(f"{j.name} holds GPU {','.join(map(str, j.gpus))}" for j in running if j.gpus)
                raise JobError(f"the job asks for {want} GPU(s) but {len(free)} of the sandbox's {len(self.gpus)} "
                               f"are free ({holders or 'none held'}); start it with gpus=0 or wait for a GPU")
            slot = min(set(range(self.slots)) - {j.slot for j in running})
            job_gpus = free[:want]
            log_path = f"{JOBS_DIR}/{name}.log"
            if self._remove_file is not None:  # a job re-run under its name starts a fresh log
                self._remove_file(log_path)
            env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, job_gpus)), "AARLAB_JOB": name}
            argv = ["bash", "-c", JOB_SCRIPT, "aarlab-job", log_path, command]
            launched = self.launcher.launch_job(argv, env, job_gpus, label=name)
            now = time.time()
            info = JobInfo(name=name, command=command, slot=slot, gpus=job_gpus, log=log_path, started_at=now,
                           seen_at=now, timeout_s=timeout_s, session=self._session,
                           cgroup=[str(d) for d in launched.cgroup.dirs] if launched.cgroup else [])
            run = _Running(info, launched)
            if launched.cgroup is not None:
                run.cpu_base = launched.cgroup.cpu_seconds()
            self._jobs[name] = info
            self._running[name] = run
            self._events.append(_event("start", info))
            self._save()
            run.thread = threading.Thread(target=self._watch, args=(run,), name=f"job-{name}", daemon=True)
            run.thread.start()
            return info.model_copy()

    # -- watching -----------------------------------------------------------------------------------------
    def _cpu(self, run: _Running) -> float:
        cgroup = run.launched.cgroup
        if cgroup is not None and run.cpu_base is not None:
            used = cgroup.cpu_seconds()
            if used is not None:
                return used - run.cpu_base
        return tree_cpu_seconds(run.launched.process.pid)

    def _watch(self, run: _Running) -> None:
        """Wait for the job, killing it at its timeout or CPU limit; then record how it ended."""
        proc, info = run.launched.process, run.info
        deadline = time.monotonic() + info.timeout_s
        pidfd = None
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(proc.pid)
        try:
            while True:
                wait = max(0.0, min(WATCH_S, deadline - time.monotonic()))
                if pidfd is not None:
                    ready, _, _ = select.select([pidfd], [], [], wait)
                    exited = bool(ready)
                else:
                    time.sleep(min(wait, 0.1))
                    exited = proc.poll() is not None
                if exited:
                    break
                cpu = self._cpu(run)
                with self._lock:
                    info.cpu_s = max(info.cpu_s, cpu)
                    info.seen_at = time.time()
                    if self.cpu_limit_s is not None and cpu >= self.cpu_limit_s and not run.kill_reason:
                        run.kill_reason = "cpu_limit"
                    if time.monotonic() >= deadline and not run.kill_reason:
                        run.kill_reason = "timed_out"
                    reason = run.kill_reason
                    if time.time() - self._last_heartbeat >= HEARTBEAT_S:
                        self._last_heartbeat = time.time()
                        self._save()
                if reason:
                    self._kill_tree(run)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        rusage_cpu = _reap(proc)
        self._kill_tree(run)  # whatever it left behind in its group or cgroup
        launcher_said = _read_stderr(proc)
        cpu = run.launched.cgroup and run.cpu_base is not None and self._cpu(run)
        with self._lock:
            info.cpu_s = max(info.cpu_s, float(cpu or 0.0), rusage_cpu)
            info.ended_at = info.seen_at = time.time()
            code = proc.returncode
            info.exit_code = 128 - code if code is not None and code < 0 else code
            if run.kill_reason == "timed_out":
                info.state, info.exit_code = "timed_out", 124
                info.detail = f"killed at its timeout of {format_duration(info.timeout_s)}"
            elif run.kill_reason == "cpu_limit":
                info.state, info.exit_code = "cpu_limit", 128 + signal.SIGXCPU
                info.detail = f"killed: CPU time limit of {self.cpu_limit_s:g} s reached"
            elif run.kill_reason:
                info.state, info.detail = "killed", run.kill_reason
            else:
                info.state, info.detail = "exited", f"exited with code {info.exit_code}"
            if launcher_said:  # the sandbox could not set the job up (before its output went to the log)
                info.detail += f"; the sandbox said: {launcher_said}"
            info.cgroup = []
            self._running.pop(info.name, None)
            self._events.append(_event("end", info))
            self._save()
        if run.launched.cgroup is not None:
            run.launched.cgroup.remove()
        if run.launched.cleanup is not None:
            run.launched.cleanup()
        run.done.set()

    def _kill_tree(self, run: _Running) -> None:
        kill_process_group(run.launched.process.pid)
        if run.launched.cgroup is not None:
            run.launched.cgroup.kill_all()

    # -- the tools' side ----------------------------------------------------------------------------------
    def list(self) -> list[JobInfo]:
        """All jobs of this sandbox (running first, then by start time), as copies."""
        with self._lock:
            jobs = [j.model_copy() for j in self._jobs.values()]
        return sorted(jobs, key=lambda j: (not j.running, j.started_at))

    def running(self) -> list[JobInfo]:
        return [j for j in self.list() if j.running]

    def get(self, name: str) -> JobInfo:
        with self._lock:
            info = self._jobs.get(name)
            if info is None:
                known = ", ".join(sorted(self._jobs)) or "none"
                raise JobError(f"no job called {name!r} (jobs: {known})")
            return info.model_copy()

    def output(self, name: str, *, tail: int | None = None, offset: int | None = None,
               max_bytes: int = 16_000) -> tuple[str, int, int]:
        """Part of a job's log: ``(text, start offset, size of the log)``.

        ``offset``: from this byte on (at most ``max_bytes``); otherwise the last ``tail`` bytes (default
        ``max_bytes``). The log is read through the sandbox's file access, like the file tools read it.
        """
        info = self.get(name)
        if self._read_file is None:
            raise JobError("this sandbox cannot read job logs")
        try:
            data = self._read_file(info.log, 256 * 1024 * 1024)
        except MissingPath:  # the job's shell has not made it yet
            data = b""
        except SandboxError as exc:
            raise JobError(f"cannot read {info.log}: {exc}") from None
        size = len(data)
        if offset is not None:
            start = min(max(0, offset), size)
            chunk = data[start : start + max_bytes]
        else:
            want = min(max_bytes, tail if tail is not None and tail > 0 else max_bytes)
            start = max(0, size - want)
            chunk = data[start:]
        return chunk.decode("utf-8", errors="replace"), start, size

    def wait(self, names: list[str], timeout_s: float, *, poll: Callable[[], None] | None = None,
             poll_every_s: float = 2.0) -> list[JobInfo]:
        """Wait until all of ``names`` have ended or ``timeout_s`` passed; returns their records.

        ``poll`` runs every ``poll_every_s`` while waiting (the agent charges job compute there, and may stop
        the wait by raising).
        """
        for name in names:
            self.get(name)
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            with self._lock:
                waiting = [self._running[n] for n in names if n in self._running]
            if not waiting:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            waiting[0].done.wait(min(left, poll_every_s))
            if poll is not None:
                poll()
        return [self.get(n) for n in names]

    def kill(self, name: str, reason: str = "killed on request") -> JobInfo:
        """Kill a running job and wait (bounded) until it is recorded as ended."""
        self.get(name)
        with self._lock:
            run = self._running.get(name)
            if run is None:
                return self.get(name)
            run.kill_reason = run.kill_reason or reason
        self._kill_tree(run)
        run.done.wait(10.0)
        return self.get(name)

    def kill_all(self, reason: str) -> None:
        """Kill every running job (the sandbox is stopping)."""
        with self._lock:
            names = list(self._running)
        for name in names:
            self.kill(name, reason)

    def close(self, reason: str = "killed: its sandbox stopped") -> None:
        """Kill every job and refuse new ones; the table keeps their ends."""
        with self._lock:
            self._closed = True
        self.kill_all(reason)
        self._save()

    # -- accounting and events ----------------------------------------------------------------------------
    def usage(self) -> tuple[float, float]:
        """``(CPU seconds, GPU seconds)`` of the jobs started by this manager so far, running ones included."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.session == self._session and j.state != "lost"]
            return sum(j.cpu_s for j in jobs), sum(j.gpu_s for j in jobs)

    def take_lost(self) -> list[JobInfo]:
        """The jobs a crashed harness lost, once (the agent is told about them in its next turn)."""
        with self._lock:
            lost, self._lost = self._lost, []
            return lost

    def drain_events(self) -> list[dict]:
        """Job events since the last call (start, end, lost), for the transcript."""
        with self._lock:
            events, self._events = self._events, []
            return events


def _read_stderr(proc: subprocess.Popen) -> str:
    """What the sandbox's launcher wrote before the job's own output went to its log (bounded, no wait)."""
    if proc.stderr is None:
        return ""
    try:
        ready, _, _ = select.select([proc.stderr], [], [], 0)
        data = os.read(proc.stderr.fileno(), 4096) if ready else b""
    except OSError:
        data = b""
    finally:
        proc.stderr.close()
    return data.decode("utf-8", errors="replace").strip()


def job_slots(spec_slots: int | None, gpus: list[int], cpus: float | None = None) -> int:
    """Slots of a sandbox: as set, else one per GPU, else one per CPU it may use (at least one)."""
    if spec_slots:
        return int(spec_slots)
    if gpus:
        return len(gpus)
    return max(1, int(cpus or 1))


def host_job_manager(sandbox, *, launcher: JobLauncher | None = None, state_path: Path | None = None,
                     lost_detail: str = LOST_DETAIL) -> JobManager:
    """The job manager of a sandbox whose workspace is a host directory (bwrap, process): logs are made and
    read through its descriptor-based file access, the table lives at ``state_path`` (default
    ``spec.job_state``). ``launcher`` starts the jobs (default: the sandbox itself)."""
    spec = sandbox.spec

    def remove_log(path: str) -> None:
        # unlink relative to the directory's descriptor: a planted link is removed, never followed
        parent, _, name = path.rpartition("/")
        with contextlib.suppress(SandboxError, OSError), sandbox.files.directory(parent) as dir_fd:
            os.unlink(name, dir_fd=dir_fd)

    return JobManager(launcher or sandbox, slots=job_slots(spec.job_slots, spec.gpus, spec.num_cpus),
                      gpus=spec.gpus, cpu_limit_s=spec.cpu_seconds,
                      state_path=spec.job_state if state_path is None else state_path,
                      read_file=sandbox.files.read_file, remove_file=remove_log, lost_detail=lost_detail)
