"""The limits prefix and the cgroup of local sandboxes, on their own: real shells, real processes, real cgroups."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time

import pytest

from aarlab.sandbox import _limits
from aarlab.sandbox._limits import Cgroup, limit_prefix

RLIMITS = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NPROC", "RLIMIT_AS")
PRINT_RLIMITS = f"import resource; print([resource.getrlimit(getattr(resource, n)) for n in {RLIMITS!r}])"


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_each_limits_shell_sets_the_same_rlimits(shell, monkeypatch):
    # dash and bash count `ulimit -f` in different units and name the process count differently
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed here")
    monkeypatch.setattr(_limits, "limits_shell", lambda: (path, *_limits.ULIMIT_UNITS[shell]))
    prefix = limit_prefix(cpu_seconds=7, max_file_mb=3, max_processes=48, memory_mb=900, cgroup=None,
                          limit_address_space=True, limit_processes=True)
    assert prefix[0] == path
    result = subprocess.run(prefix + [sys.executable, "-c", PRINT_RLIMITS], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    limits = [tuple(pair) for pair in ast.literal_eval(result.stdout)]
    assert limits == [(7, 12), (3 * 2**20,) * 2, (0, 0), (48, 48), (900 * 2**20,) * 2]


def test_kill_all_returns_as_soon_as_the_killed_processes_are_gone(monkeypatch):
    # The PID 1 of a finished bwrap command stays in its cgroup while it tears down its mount namespace;
    # kill_all waits on pidfds for exactly that long instead of sleeping in doubling steps that overshoot it.
    if not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd_open here")
    cgroup = Cgroup.create("killall", 256, 32)
    if cgroup is None:
        pytest.skip("no usable cgroup here")
    prefix = limit_prefix(cpu_seconds=60, max_file_mb=1, max_processes=32, memory_mb=256, cgroup=cgroup,
                          limit_address_space=False)
    processes = [subprocess.Popen(prefix + ["sleep", "30"]) for _ in range(3)]
    try:
        deadline = time.monotonic() + 10
        while len(cgroup.pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cgroup.pids() == {p.pid for p in processes}

        def no_sleeping(seconds):
            raise AssertionError(f"kill_all slept {seconds} s instead of waiting for the exits")

        monkeypatch.setattr(_limits.time, "sleep", no_sleeping)
        cgroup.kill_all()
        monkeypatch.undo()
        assert cgroup.pids() == set()
        assert [p.wait(timeout=10) for p in processes] == [-9, -9, -9]
    finally:
        for process in processes:
            process.kill()
            process.wait()
        cgroup.remove()
