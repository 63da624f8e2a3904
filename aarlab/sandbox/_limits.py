"""Resource limits of local sandboxes: a cgroup where we may create one, rlimits always.

rlimits alone are not enough: ``RLIMIT_NPROC`` counts every process of a host uid (and the kernel exempts
host uid 0 from it entirely), ``RLIMIT_AS`` limits each process's address space, not a command's memory (CUDA
reserves terabytes of it), and neither sees tmpfs pages. So when this process may create child cgroups (root,
or a delegated cgroup v2 subtree) each sandbox gets its own with ``pids`` and ``memory`` limits (and CPU
accounting); everything a command starts lands in it and can be killed through it. Without one a sandbox
refuses to start unless weak limits were allowed explicitly (``SandboxSpec.allow_weak_limits``); see
``docs/security.md`` for what holds where.

A root harness runs each sandbox as an unprivileged host uid of its own (``_bwrap``), so a set-id file an
agent makes is set-id to that uid: no more than the agent has. As defence in depth ``strip_setid_bits``
clears set-id bits in the workspace after each background job and when the sandbox stops, and the workspace
is kept at mode 0700.

Limits are applied by a tiny shell prefix — ``ulimit …; echo 0 > tasks; exec "$@"`` — rather than a
``preexec_fn``, which is unsafe in a threaded harness (and forces a full ``fork`` of the harness). The shell
is ``dash`` where there is one: it starts in half the time of ``bash``, and the prefix runs on every command.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import signal
import stat
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    """Controller name -> this process's cgroup path ("" key for the cgroup v2 unified hierarchy)."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            found[name] = path
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale(parents: list[Path]) -> None:
    """Remove the groups of harnesses that died without ``stop()`` (their pid is in the name, and dead).

    Their processes died with them (``--die-with-parent``, or the kill of their session): what is left is an
    empty directory, or a group whose last processes are exiting, which rmdir refuses until they are gone.
    """
    for parent in parents:
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        for entry in entries:
            parts = entry.name.split("-")
            if len(parts) < 4 or parts[0] != "aarlab" or not parts[-2].isdigit():
                continue
            if _pid_alive(int(parts[-2])):
                continue
            with contextlib.suppress(OSError):
                entry.rmdir()


def _read(path: Path | str) -> bytes:
    """A small kernel file's content in three system calls (``Path.read_text`` makes nine, on every command)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


PF_EXITING = 0x4  # include/linux/sched.h: the task is in do_exit() and never returns to user space


def _exiting_namespace_init(pid: int) -> bool:
    """Whether ``pid`` is PID 1 of its own PID namespace and in the kernel's exit path already (False when
    either cannot be read)."""
    try:
        status = _read(f"/proc/{pid}/status")
        stat_line = _read(f"/proc/{pid}/stat")
    except OSError:
        return False
    namespace_pids = next((line.split()[1:] for line in status.splitlines() if line.startswith(b"NSpid:")), [])
    if len(namespace_pids) < 2 or namespace_pids[-1] != b"1":
        return False
    fields = stat_line[stat_line.rfind(b")") + 2 :].split()  # the command name may hold spaces and parentheses
    return len(fields) > 6 and bool(int(fields[6]) & PF_EXITING)


def _wait_for_exits(pidfds: list[int], timeout_s: float) -> None:
    """Return when every process behind ``pidfds`` has exited (a pidfd turns readable), or after ``timeout_s``."""
    poller = select.poll()
    for pidfd in pidfds:
        poller.register(pidfd, select.POLLIN)
    waiting = len(pidfds)
    deadline = time.monotonic() + timeout_s
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for pidfd, _ in poller.poll(left * 1000):
            poller.unregister(pidfd)
            waiting -= 1


class Cgroup:
    """One sandbox's cgroup (v1: a ``pids``, a ``memory`` and, where mounted, a ``cpuacct`` group; v2: one
    group with all of them). Its name carries the creating process's pid, so that a later start can remove
    the groups of a harness that was killed."""

    def __init__(self, dirs: list[Path], cpu_file: Path | None = None):
        self.dirs = dirs
        self.cpu_file = cpu_file

    @classmethod
    def create(cls, label: str, memory_mb: int, max_processes: int) -> Cgroup | None:
        """Make a cgroup under our own, or return None (with the reason logged) when we may not."""
        tag = "".join(c for c in label if c.isalnum() or c == "_")[:40] or "sandbox"
        name = f"aarlab-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        own = _own_cgroups()
        memory_bytes = memory_mb * 1024 * 1024
        made: list[Path] = []
        try:
            if (CGROUP_ROOT / "pids" / "tasks").exists() and (CGROUP_ROOT / "memory" / "tasks").exists():
                parents = {c: CGROUP_ROOT / c / own.get(c, "/").lstrip("/") for c in ("pids", "memory", "cpuacct")}
                _sweep_stale(list(parents.values()))
                pids, memory = parents["pids"] / name, parents["memory"] / name
                pids.mkdir()
                made.append(pids)
                memory.mkdir()
                made.append(memory)
                (pids / "pids.max").write_text(str(max_processes))
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                swap = memory / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    with contextlib.suppress(OSError):
                        swap.write_text(str(memory_bytes))
                cpu_file = None
                if (parents["cpuacct"] / "tasks").exists():
                    try:  # CPU time per command; without it the process tree is summed instead
                        (parents["cpuacct"] / name).mkdir()
                        made.append(parents["cpuacct"] / name)
                        cpu_file = parents["cpuacct"] / name / "cpuacct.usage"
                    except OSError as exc:
                        log.debug("no cpuacct group for the sandbox: %s", exc)
                return cls(made, cpu_file)
            if (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:
                parent = CGROUP_ROOT / own[""].lstrip("/")
                enabled = (parent / "cgroup.subtree_control").read_text().split()
                if not {"pids", "memory"} <= set(enabled):
                    return None  # not delegated to us; enabling it would need our cgroup to be empty
                _sweep_stale([parent])
                group = parent / name
                group.mkdir()
                made.append(group)
                (group / "pids.max").write_text(str(max_processes))
                (group / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (group / "memory.swap.max").write_text("0")
                return cls(made, group / "cpu.stat")
        except OSError as exc:
            log.debug("no cgroup for the sandbox (%s); using rlimits only", exc)
            for path in reversed(made):
                with contextlib.suppress(OSError):
                    path.rmdir()
        return None

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    @property
    def join_writes(self) -> list[tuple[Path, str]]:
        """What a single-threaded shell writes where to move itself into the group.

        cgroup v1: ``0`` (the writing thread) to ``tasks``, which the kernel does without its global
        threadgroup lock — moving a whole process through ``cgroup.procs`` waits for an RCU grace period,
        several milliseconds per command on a busy machine. cgroup v2: ``$$`` to ``cgroup.procs``.
        """
        return [(d / "tasks", "0") if (d / "tasks").exists() else (d / "cgroup.procs", "$$") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in _read(path).split())
        return found

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this group for want of memory so far."""
        for directory in self.dirs:
            for name in ("memory.oom_control", "memory.events"):
                with contextlib.suppress(OSError):
                    for line in _read(directory / name).decode().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def cpu_seconds(self) -> float | None:
        """CPU seconds used by everything that ever ran in the group (None: no CPU accounting here)."""
        if self.cpu_file is None:
            return None
        try:
            text = _read(self.cpu_file).decode()
        except OSError:
            return None
        if self.cpu_file.name == "cpuacct.usage":
            return int(text) / 1e9
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        return None

    def kill_all(self, wait_for_exiting_init: bool = True) -> None:
        """SIGKILL everything in the group, until it is empty (processes may fork while we kill).

        An empty group costs one read. Each round waits on pidfds of the processes it killed and wakes the
        moment they are gone, rather than sleeping in steps that overshoot their exit.

        ``wait_for_exiting_init=False``: the init of a PID namespace that is already exiting on its own — the
        PID 1 of a finished bwrap command, which stays in the group while it unmounts the sandbox's filesystems
        (an RCU grace period, most of this call's time otherwise) — runs no more code and is left to finish;
        every other process is killed and waited for.
        """
        pause = 0.001
        opener = getattr(os, "pidfd_open", None)
        for _ in range(60):
            pids = self.pids()
            if not wait_for_exiting_init:
                pids = {pid for pid in pids if not _exiting_namespace_init(pid)}
            if not pids:
                return
            pidfds: list[int] = []
            unwatched = False
            for pid in pids:
                try:
                    pidfd = opener(pid) if opener else None
                except ProcessLookupError:  # gone since the read
                    continue
                except OSError:  # no pidfd_open in this kernel
                    pidfd = None
                if pidfd is None:
                    unwatched = True
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                    continue
                pidfds.append(pidfd)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            try:
                if unwatched:
                    time.sleep(pause)
                    pause = min(pause * 2, 0.05)
                elif pidfds:
                    _wait_for_exits(pidfds, timeout_s=0.05)
            finally:
                for pidfd in pidfds:
                    os.close(pidfd)

    def remove(self) -> None:
        self.kill_all()
        for path in self.dirs:
            for _ in range(20):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def limit_prefix(
    *,
    cpu_seconds: int,
    max_file_mb: int,
    max_processes: int,
    memory_mb: int,
    cgroup: Cgroup | None,
    limit_address_space: bool,
    limit_processes: bool | None = None,
) -> list[str]:
    """argv prefix that applies the limits to itself and then ``exec``s the real command (``"$@"``).

    ``limit_processes``: whether to set RLIMIT_NPROC; by default only without a cgroup and when this process
    is not root. The kernel counts it per host uid (all that uid's processes on the host) and never applies
    it to host uid 0, whatever the user namespace shows: as root it is no limit at all.

    The CPU limit's soft value sends SIGXCPU (reported as the CPU limit); the hard one, a little higher, is
    the kernel's SIGKILL for a process that ignores SIGXCPU. The CPU time of a whole command (all its
    processes) is watched by ``run_capped``.
    """
    shell, file_blocks_per_mb, processes_flag = limits_shell()
    steps = [
        f"ulimit -S -t {int(cpu_seconds)}",  # the soft value first: a hard one below the current soft fails
        f"ulimit -H -t {int(cpu_seconds) + 5}",
        f"ulimit -f {int(max_file_mb) * file_blocks_per_mb}",
        "ulimit -c 0",
    ]
    if limit_processes is None:
        limit_processes = cgroup is None and os.geteuid() != 0
    if limit_processes:
        steps.append(f"ulimit {processes_flag} {int(max_processes)}")
    if cgroup is None:
        if limit_address_space:
            steps.append(f"ulimit -v {int(memory_mb) * 1024}")  # KiB in both shells
    else:
        steps += [f"echo {value} > {path}" for path, value in cgroup.join_writes]
    script = " && ".join(steps) + ' && exec "$@"'
    return [shell, "-c", script, "aarlab-limits"]


# How ``ulimit`` differs between the shells: (``-f`` blocks per MB, the flag for the process count). dash counts
# ``-f`` in 512-byte blocks and bash in KiB; dash's process count is ``-p``, bash's ``-u``.
ULIMIT_UNITS = {"dash": (2048, "-p"), "bash": (1024, "-u")}


@functools.cache
def limits_shell() -> tuple[str, int, str]:
    """The shell that applies the limits: ``(path, ulimit -f blocks per MB, ulimit flag for processes)``.

    ``dash`` where installed (Debian and Ubuntu's ``/bin/sh``), else ``bash``.
    """
    for dash in ("/usr/bin/dash", "/bin/dash"):
        if os.access(dash, os.X_OK):
            return (dash, *ULIMIT_UNITS["dash"])
    return ("/bin/bash", *ULIMIT_UNITS["bash"])


def spec_limit_prefix(spec, cgroup: Cgroup | None, limit_processes: bool | None = None) -> list[str]:
    """``limit_prefix`` with a ``SandboxSpec``'s limits: what every local backend's commands and jobs start with."""
    return limit_prefix(cpu_seconds=spec.cpu_seconds, max_file_mb=spec.max_file_mb,
                        max_processes=spec.max_processes, memory_mb=spec.memory_mb, cgroup=cgroup,
                        limit_address_space=not spec.gpus, limit_processes=limit_processes)


# ------------------------------------------------------------------------------------- set-id files


def strip_setid_bits(root: Path) -> int:
    """Clear the set-uid and set-gid bits of every regular file under ``root``; returns how many it changed.

    Defence in depth for a root harness: its sandboxes run as an unprivileged host uid that owns what they make,
    so such a bit grants no more than the agent has; cleared anyway, so that nothing set-id outlives a sandbox
    in a run dir. The walk goes by directory descriptors, opens each candidate with ``O_NOFOLLOW|O_NONBLOCK``
    and changes the descriptor, so a link or FIFO planted meanwhile is never followed.
    """
    changed = 0
    for _dirpath, _dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in filenames:
            with contextlib.suppress(OSError):
                if not os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode & (stat.S_ISUID | stat.S_ISGID):
                    continue
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
                try:
                    info = os.fstat(fd)
                    if stat.S_ISREG(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                        os.fchmod(fd, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
                        changed += 1
                finally:
                    os.close(fd)
    return changed
