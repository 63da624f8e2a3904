"""Per-command overhead of a Ray-placed sandbox (an actor running bwrap on its node) against a local one.

    .venv/bin/python benchmarks/ray_overhead.py [--calls 30] [--inner bwrap] [--address ray://HOST:PORT]

Without ``--address`` it starts a local Ray (2 CPUs, 127.0.0.1, no dashboard), so the numbers are the cost
of the actor call itself; against a real cluster they add the network round trip to the node. Calls are
interleaved. Prints median and p90 milliseconds for ``exec("true")``, a 1 KiB ``write_file`` + ``read_file``,
and a workspace snapshot, plus the time to start each sandbox.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from aarlab.sandbox import SandboxSpec, create, snapshot_tar


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--inner", default="bwrap", help="the backend the actor runs on its node")
    parser.add_argument("--address", default=None, help="an existing cluster (default: a local Ray)")
    args = parser.parse_args()

    import ray

    started = time.perf_counter()
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    ray_start = time.perf_counter() - started
    try:
        with tempfile.TemporaryDirectory(prefix="aarlab-ray-bench-") as tmp:
            boxes = {}
            start_s = {}
            for label, backend in ((f"local {args.inner}", args.inner), (f"ray actor ({args.inner} inside)", "ray")):
                spec = SandboxSpec(workspace=Path(tmp) / backend, name=f"bench-{backend}", num_cpus=0.5,
                                   ray_inner_backend=args.inner, ray_snapshot_interval_s=3600)
                t = time.perf_counter()
                boxes[label] = create(backend, spec)
                boxes[label].start()
                start_s[label] = time.perf_counter() - t
            payload = os.urandom(1024)
            operations = {
                'exec("true")': lambda box: box.exec("true"),
                "write+read 1 KiB": lambda box: (box.write_file("f.bin", payload), box.read_file("f.bin")),
                "snapshot_tar": lambda box: snapshot_tar(box),
            }
            times = {(label, op): [] for label in boxes for op in operations}
            for box in boxes.values():
                for run in operations.values():
                    run(box)  # warm-up
            for _ in range(args.calls):
                for op, run in operations.items():
                    for label, box in boxes.items():
                        t = time.perf_counter()
                        run(box)
                        times[(label, op)].append((time.perf_counter() - t) * 1000)
            for box in boxes.values():
                box.stop()
    finally:
        ray.shutdown()

    print(f"{args.calls} calls each, interleaved; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"ray {ray.__version__} started in {ray_start:.1f} s")
    print()
    labels = list(boxes)
    print("| operation | " + " | ".join(f"{label} median / p90 ms" for label in labels) + " | extra (median) |")
    print("|---|" + "---:|" * (len(labels) + 1))
    for op in operations:
        cells, medians = [], []
        for label in labels:
            values = times[(label, op)]
            medians.append(statistics.median(values))
            cells.append(f"{medians[-1]:.1f} / {statistics.quantiles(values, n=10)[-1]:.1f}")
        print(f"| {op} | " + " | ".join(cells) + f" | {medians[-1] - medians[0]:+.1f} |")
    print("| start() | " + " | ".join(f"{start_s[label] * 1000:.0f}" for label in labels)
          + f" | {(start_s[labels[-1]] - start_s[labels[0]]) * 1000:+.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
