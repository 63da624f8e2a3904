"""Running a host process with a wall-clock timeout that kills its whole tree and with its output capped:
the common core of every local backend's ``exec``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable

from aarlab.sandbox._base import ExecResult, SandboxError


class _CappedBuffer:
    """Keep the first and last halves of ``cap`` bytes of a stream, counting what is dropped between."""

    def __init__(self, cap: int):
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_cap:
                excess = len(self.tail) - self.tail_cap
                self.dropped += excess
                del self.tail[:excess]

    def text(self) -> tuple[str, bool]:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if self.dropped:
            note = f"\n[... output truncated: {self.dropped} bytes omitted ...]\n"
            return head + note + tail, True
        return head + tail, False


def kill_process_group(pid: int) -> None:
    """SIGKILL a process group; one that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable when ``pid`` exits (Linux >= 5.3), or None where there is none."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


# How long the pipes are still read after the command ended: a process that left its group may hold them.
DRAIN_S = 2.0


def run_capped(
    argv: list[str],
    *,
    cwd: str | os.PathLike | None,
    env: dict[str, str] | None,
    timeout: float,
    max_output_bytes: int,
    on_timeout: Callable[[int], None] | None = None,
    after_exit: Callable[[int], None] | None = None,
    pass_fds: tuple[int, ...] = (),
    cpu_limit_s: float | None = None,
    cpu_used: Callable[[int], float] | None = None,
) -> ExecResult:
    """Run ``argv`` in a new session with a wall-clock timeout and capped output; never raises for its failure.

    On timeout the process group is killed (then ``on_timeout(pid)`` is called). Once the main process has
    ended, ``after_exit(pid)`` runs and whatever is left in its group is killed, so nothing the command
    started outlives it. Output beyond ``max_output_bytes`` per stream keeps its head and tail with a note.
    The pipes and a pidfd are watched by one selector in the calling thread: no helper threads, no polling.

    ``cpu_limit_s`` bounds the CPU time of the whole command, all its processes together: ``cpu_used(pid)``
    (the command's CPU seconds so far; default ``tree_cpu_seconds``) is read when the command could first have used it all and then as it
    nears it, and the group is killed past the limit, reported as exit code 152 with the CPU-time note. A
    process killed by its own RLIMIT_CPU gets the same note.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so the whole tree can be killed at once
            pass_fds=pass_fds,
        )
    except OSError as exc:
        return ExecResult(exit_code=127, stderr=f"could not start the command: {exc}", duration_s=0.0)
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers = {out_fd: _CappedBuffer(max_output_bytes), err_fd: _CappedBuffer(max_output_bytes)}
    open_pipes = set(buffers)
    selector = selectors.DefaultSelector()
    for fd in buffers:
        selector.register(fd, selectors.EVENT_READ)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        selector.register(pidfd, selectors.EVENT_READ)
    deadline = start + timeout
    drain_until: float | None = None  # set when the main process has ended
    timed_out = False
    cpu_killed = False
    rusage_cpu = 0.0
    measure = cpu_used or tree_cpu_seconds
    # the earliest moment the command can have used its CPU time: every CPU of the machine busy from the start
    next_cpu_check = start + cpu_limit_s / CPUS if cpu_limit_s is not None else float("inf")

    def ended() -> None:
        nonlocal drain_until, rusage_cpu
        rusage_cpu = _reap(proc)
        if pidfd is not None and drain_until is None:
            selector.unregister(pidfd)
        if after_exit is not None:
            after_exit(proc.pid)
        kill_process_group(proc.pid)  # a background job still holding the pipes goes too, so reads end
        drain_until = time.monotonic() + DRAIN_S

    def kill_now() -> None:
        """Past the wall-clock or the CPU limit: kill the group, let the backend kill the rest, then drain."""
        kill_process_group(proc.pid)
        if on_timeout is not None:
            on_timeout(proc.pid)
        ended()

    try:
        while True:
            now = time.monotonic()
            if drain_until is not None and (not open_pipes or now >= drain_until):
                break
            if drain_until is None and now >= deadline:
                timed_out = True
                kill_now()
                continue
            if drain_until is None and now >= next_cpu_check:
                used = measure(proc.pid)
                if used >= cpu_limit_s:
                    cpu_killed = True
                    kill_now()
                    continue
                # look again when the rest could be used up, but at least every CPU_CHECK_MAX_S
                next_cpu_check = now + min(max((cpu_limit_s - used) / CPUS, CPU_CHECK_MIN_S), CPU_CHECK_MAX_S)
            wait = (min(deadline, next_cpu_check) if drain_until is None else drain_until) - now
            if pidfd is None and drain_until is None:
                wait = min(wait, 0.05)  # no pidfd (not Linux): poll the process
            for key, _ in selector.select(max(wait, 0.0)):
                if key.fd == pidfd:
                    if drain_until is None:
                        ended()
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    buffers[key.fd].feed(chunk)
                else:
                    selector.unregister(key.fd)
                    open_pipes.discard(key.fd)
            if pidfd is None and drain_until is None and proc.poll() is not None:
                ended()
    except BaseException:
        kill_process_group(proc.pid)
        if proc.returncode is None:
            proc.wait()
        raise
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    stdout, cut_out = buffers[out_fd].text()
    stderr, cut_err = buffers[err_fd].text()
    exit_code = proc.returncode
    if timed_out:
        stderr += f"\n[command timed out after {timeout:g} s and was killed]\n"
        exit_code = 124
    elif exit_code < 0:
        exit_code = 128 - exit_code  # killed by a signal: reported as a shell does (137 for SIGKILL)
    if not timed_out and cpu_limit_s is not None and (
        cpu_killed
        or exit_code == 128 + signal.SIGXCPU
        # the kernel's SIGKILL at a process's hard RLIMIT_CPU, told from an out-of-memory kill by the CPU used
        or (exit_code == 128 + signal.SIGKILL and rusage_cpu >= cpu_limit_s)
    ):
        stderr += f"\n[killed: CPU time limit of {cpu_limit_s:g} s reached]\n"
        exit_code = 128 + signal.SIGXCPU
    return ExecResult(
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        duration_s=time.monotonic() - start,
        timed_out=timed_out,
        truncated=cut_out or cut_err,
    )


CPUS = os.cpu_count() or 1
CPU_CHECK_MIN_S = 0.05
CPU_CHECK_MAX_S = 1.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _reap(proc: subprocess.Popen) -> float:
    """Wait for ``proc`` and return the CPU seconds it and the descendants it waited for used."""
    if proc.returncode is not None:
        return 0.0
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # reaped elsewhere (Popen's own bookkeeping)
        proc.wait()
        return 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and all its live descendants, plus what the ones they waited for used.

    Each live process counts its own time (utime, stime) and its reaped children's (cutime, cstime); a
    child's time moves into its parent's only when it is reaped, so nothing is counted twice. Linux only
    (``/proc``); elsewhere 0.
    """
    total = 0
    pending = [pid]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        fields = _stat_fields(current)
        if fields is None:
            continue
        # after the state: utime, stime, cutime, cstime are fields 14-17 of stat, 11-14 here
        total += sum(int(v) for v in fields[11:15])
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError), open(f"/proc/{current}/task/{tid}/children") as handle:
                pending.extend(int(child) for child in handle.read().split())
    return total / _CLOCK_TICKS


def shell_argv(cmd: str | list[str]) -> list[str]:
    """A string runs under ``bash -c``; a list is the argv itself."""
    if isinstance(cmd, str):
        return ["bash", "-c", cmd]
    if not cmd:
        raise SandboxError("empty command")
    return [str(part) for part in cmd]
