"""Resource limits for local sandboxes: a cgroup where we may create one, rlimits always.

rlimits alone are not enough: ``RLIMIT_NPROC`` counts every process of the user on the host (and is not
enforced at all for root), and ``RLIMIT_AS`` limits address space, not memory (CUDA reserves terabytes of
it). So when this process may create child cgroups (root, or a delegated cgroup v2 subtree) each sandbox
gets its own with ``pids`` and ``memory`` limits; everything a command starts lands in it and can be killed
through it. Otherwise ``RLIMIT_NPROC`` (non-root) and ``RLIMIT_AS`` (no GPUs) stand in.

Limits are applied by a tiny ``bash`` prefix — ``ulimit …; echo 0 > tasks; exec "$@"`` — rather than a
``preexec_fn``, which is unsafe in a threaded harness.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
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


class Cgroup:
    """One sandbox's cgroup (v1: a ``pids`` and a ``memory`` group; v2: one group with both)."""

    def __init__(self, dirs: list[Path]):
        self.dirs = dirs

    @classmethod
    def create(cls, label: str, memory_mb: int, max_processes: int) -> Cgroup | None:
        """Make a cgroup under our own, or return None (with the reason logged) when we may not."""
        name = f"aarlab-{''.join(c for c in label if c.isalnum() or c in '-_')[:40]}-{uuid.uuid4().hex[:8]}"
        own = _own_cgroups()
        memory_bytes = memory_mb * 1024 * 1024
        made: list[Path] = []
        try:
            if (CGROUP_ROOT / "pids" / "tasks").exists() and (CGROUP_ROOT / "memory" / "tasks").exists():
                pids = CGROUP_ROOT / "pids" / own.get("pids", "/").lstrip("/") / name
                memory = CGROUP_ROOT / "memory" / own.get("memory", "/").lstrip("/") / name
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
                return cls(made)
            if (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:
                parent = CGROUP_ROOT / own[""].lstrip("/")
                enabled = (parent / "cgroup.subtree_control").read_text().split()
                if not {"pids", "memory"} <= set(enabled):
                    return None  # not delegated to us; enabling it would need our cgroup to be empty
                group = parent / name
                group.mkdir()
                made.append(group)
                (group / "pids.max").write_text(str(max_processes))
                (group / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (group / "memory.swap.max").write_text("0")
                return cls(made)
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
                found.update(int(p) for p in path.read_text().split())
        return found

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this group for want of memory so far."""
        for directory in self.dirs:
            for name in ("memory.oom_control", "memory.events"):
                with contextlib.suppress(OSError):
                    for line in (directory / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def kill_all(self) -> None:
        """SIGKILL everything in the group, until it is empty (processes may fork while we kill)."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

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

    ``limit_processes``: whether RLIMIT_NPROC applies; by default only when neither a cgroup nor root
    (for whom the kernel ignores it) makes it moot. A sandbox whose command runs as its own user in a fresh
    user namespace passes True: the kernel then counts that namespace's processes, even under root.
    """
    steps = [
        f"ulimit -t {int(cpu_seconds)}",
        f"ulimit -f {int(max_file_mb) * 1024}",  # bash counts -f in KiB
        "ulimit -c 0",
    ]
    if limit_processes is None:
        limit_processes = cgroup is None and os.geteuid() != 0
    if limit_processes:
        steps.append(f"ulimit -u {int(max_processes)}")
    if cgroup is None:
        if limit_address_space:
            steps.append(f"ulimit -v {int(memory_mb) * 1024}")
    else:
        steps += [f"echo {value} > {path}" for path, value in cgroup.join_writes]
    script = " && ".join(steps) + ' && exec "$@"'
    return ["/bin/bash", "-c", script, "aarlab-limits"]
