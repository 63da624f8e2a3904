"""What a verification costs beyond the method itself: a fresh sandbox per seed.

Runs a trivial method (reads the data, writes constant predictions) through ``aarlab.verify.run_method``
with the bwrap and process backends, and as a plain subprocess, and prints the median wall-clock per seed.

    python benchmarks/verify_overhead.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from aarlab.verify import ComputeLimits, run_method
from aarlab.w2s.synthetic import write_synthetic_task

METHOD = b"""
import argparse, json
p = argparse.ArgumentParser(); p.add_argument("--data-dir"); p.add_argument("--out"); p.add_argument("--seed", type=int)
a = p.parse_args()
n = sum(1 for _ in open(a.data_dir + "/test.jsonl"))
json.dump([0] * n, open(a.out, "w"))
"""


def snapshot() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("method.py")
        info.size = len(METHOD)
        tar.addfile(info, io.BytesIO(METHOD))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        task = write_synthetic_task(Path(tmp) / "task", n_unlabel=1000, n_test=1000)
        data = task / "private" / "heldout" / "public"
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "method.py").write_bytes(METHOD)
        tar = snapshot()
        rows = []

        def direct():
            subprocess.run([sys.executable, "-m", "method", "--data-dir", str(data), "--out",
                            str(Path(tmp) / "p.json"), "--seed", "0"], cwd=code, check=True)

        for label, call in [
            ("plain subprocess (no sandbox)", direct),
            ("run_method, process backend", lambda: run_method("method", data, 0, ComputeLimits(backend="process"),
                                                               code_tar=tar)),
            ("run_method, bwrap backend", lambda: run_method("method", data, 0, ComputeLimits(backend="bwrap"),
                                                             code_tar=tar)),
        ]:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            rows.append((label, statistics.median(times), min(times)))
    print(f"| how one seed runs | median s | min s |  ({args.repeats} repeats)")
    print("|---|---:|---:|")
    for label, median, best in rows:
        print(f"| {label} | {median:.3f} | {best:.3f} |")


if __name__ == "__main__":
    main()
