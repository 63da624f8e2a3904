"""Per-call overhead of ``Sandbox.exec("true")`` for each local backend, against a bare ``subprocess.run``.

    .venv/bin/python benchmarks/sandbox.py [--calls 50] [--backends bwrap,process,docker] [--realtime]

Calls are interleaved (one of each backend in turn) so that load from other processes affects all alike.
Prints a table of wall-clock milliseconds per call (p10, median, p90) and CPU milliseconds spent by the
processes this one waits for, each with its extra over a bare ``subprocess.run(["true"])``; the target for
bwrap is at most 10 ms extra on an idle machine. On a busy machine the wall time is mostly waiting for a CPU
(every process hop waits its turn). The CPU column misses the sandbox's PID 1 and the command, which bwrap
does not reap itself.

``--realtime`` (root) runs the calls and every process they start at SCHED_FIFO priority, so that on a shared
machine they never wait for a CPU: an idle machine's numbers, as near as a busy one gives them. The calls are
short and block most of the time; the kernel keeps 5% of each CPU for everything else.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aarlab.sandbox import SandboxSpec, check_backend, create

TARGET_EXTRA_MS = {"bwrap": 10.0}
BWRAP_ALONE = ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
               "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "--unshare-all",
               "--unshare-user", "--die-with-parent", "--new-session", "true"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--backends", default="bwrap,process,docker")
    parser.add_argument("--realtime", action="store_true", help="run at SCHED_FIFO priority (root)")
    args = parser.parse_args()
    if args.realtime:
        try:  # inherited by every process the calls start
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except OSError as exc:
            raise SystemExit(f"--realtime needs root (CAP_SYS_NICE): {exc}") from exc

    runners = {"subprocess.run (bare)": lambda: subprocess.run(["true"], check=True)}
    if check_backend("bwrap")[0]:
        # the kernel's share: bwrap with the same namespaces and a bare /usr, none of aarlab's binds or limits
        runners["bwrap alone (namespaces only)"] = lambda: subprocess.run(BWRAP_ALONE, check=True)
    sandboxes = []
    modes: list[str] = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="aarlab-bench-") as tmp:
        for name in args.backends.split(","):
            ok, reason = check_backend(name)
            if not ok:
                skipped.append(f"{name}: {reason}")
                continue
            # weak limits allowed so that the benchmark runs without a cgroup too; the table says which was used
            sandbox = create(name, SandboxSpec(workspace=Path(tmp) / name, name=f"bench-{name}",
                                               allow_weak_limits=True))
            sandbox.start()
            sandboxes.append(sandbox)
            modes.append(f"{name}: limits by {getattr(sandbox, 'limits_mode', 'cgroup or rlimit')}")
            runners[name] = lambda sandbox=sandbox: _check(sandbox.exec("true"))
        try:
            for run in runners.values():  # warm-up
                run()
            times: dict[str, list[float]] = {label: [] for label in runners}
            cpu: dict[str, list[float]] = {label: [] for label in runners}
            for _ in range(args.calls):
                for label, run in runners.items():
                    cpu_start = _cpu_s()
                    start = time.perf_counter()
                    run()
                    times[label].append((time.perf_counter() - start) * 1000)
                    cpu[label].append((_cpu_s() - cpu_start) * 1000)
        finally:
            for sandbox in sandboxes:
                sandbox.stop()

    bare = statistics.median(times["subprocess.run (bare)"])
    print(f"exec('true') per call, {args.calls} calls each, interleaved; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}"
          f"{', SCHED_FIFO' if args.realtime else ''}")
    print()
    bare_cpu = statistics.median(cpu["subprocess.run (bare)"])
    print("| backend | wall p10 ms | wall median ms | wall p90 ms | wall extra vs bare | CPU ms (waited for) "
          "| CPU extra | target (extra ≤) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, values in times.items():
        median = statistics.median(values)
        deciles = statistics.quantiles(values, n=10)
        p10, p90 = deciles[0], deciles[-1]
        cpu_median = statistics.median(cpu[label])
        bare_row = label.startswith("subprocess")
        target = TARGET_EXTRA_MS.get(label)
        verdict = "" if target is None else (
            f"{target:g} ms: wall {'met' if median - bare <= target else 'NOT met'}, "
            f"CPU {'met' if cpu_median - bare_cpu <= target else 'NOT met'}"
        )
        print(f"| {label} | {p10:.1f} | {median:.1f} | {p90:.1f} | {'' if bare_row else f'{median - bare:+.1f}'} "
              f"| {cpu_median:.1f} | {'' if bare_row else f'{cpu_median - bare_cpu:+.1f}'} | {verdict} |")
    for line in modes:
        print(f"\n{line}")
    for line in skipped:
        print(f"\nskipped {line}")
    return 0


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its waited-for descendants (bwrap reaps its own)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _check(result) -> None:
    if result.exit_code != 0:
        raise SystemExit(f"exec('true') failed: {result}")


if __name__ == "__main__":
    raise SystemExit(main())
