"""Per-call overhead of ``Sandbox.exec("true")`` for each local backend, against a bare ``subprocess.run``.

    .venv/bin/python benchmarks/sandbox.py [--calls 50] [--backends bwrap,process,docker]

Calls are interleaved (one of each backend in turn) so that load from other processes affects all alike.
Prints a table of median and 90th-percentile milliseconds per call, and the median extra over bare
``subprocess.run(["true"])``; the target for bwrap is at most 20 ms extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aarlab.sandbox import SandboxSpec, check_backend, create

TARGET_EXTRA_MS = {"bwrap": 20.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--backends", default="bwrap,process,docker")
    args = parser.parse_args()

    runners = {"subprocess.run (bare)": lambda: subprocess.run(["true"], check=True)}
    sandboxes = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="aarlab-bench-") as tmp:
        for name in args.backends.split(","):
            ok, reason = check_backend(name)
            if not ok:
                skipped.append(f"{name}: {reason}")
                continue
            sandbox = create(name, SandboxSpec(workspace=Path(tmp) / name, name=f"bench-{name}"))
            sandbox.start()
            sandboxes.append(sandbox)
            runners[name] = lambda sandbox=sandbox: _check(sandbox.exec("true"))
        try:
            for run in runners.values():  # warm-up
                run()
            times: dict[str, list[float]] = {label: [] for label in runners}
            for _ in range(args.calls):
                for label, run in runners.items():
                    start = time.perf_counter()
                    run()
                    times[label].append((time.perf_counter() - start) * 1000)
        finally:
            for sandbox in sandboxes:
                sandbox.stop()

    bare = statistics.median(times["subprocess.run (bare)"])
    print(f"exec('true') per call, {args.calls} calls each, interleaved; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}")
    print()
    print("| backend | median ms | p90 ms | extra vs bare (median) | target |")
    print("|---|---:|---:|---:|---|")
    for label, values in times.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        extra = median - bare
        target = TARGET_EXTRA_MS.get(label)
        verdict = "" if target is None else (f"≤ {target:g} ms: {'met' if extra <= target else 'NOT met'}")
        print(f"| {label} | {median:.1f} | {p90:.1f} | {'' if label.startswith('subprocess') else f'{extra:+.1f}'} "
              f"| {verdict} |")
    for line in skipped:
        print(f"\nskipped {line}")
    return 0


def _check(result) -> None:
    if result.exit_code != 0:
        raise SystemExit(f"exec('true') failed: {result}")


if __name__ == "__main__":
    raise SystemExit(main())
