"""Lab server benchmark: scoring latency of a 10,000-prediction submission and sustained submissions/s
with 9 concurrent clients on loopback. Prints a markdown table.

    .venv/bin/python benchmarks/server.py [--seconds 10] [--clients 9] [--db postgresql://...]

Server-side latency is the app time the server reports in its ``Server-Timing`` header (request arrival to
response start: JSON parsing, validation, scoring, the database transaction). "scoring" alone is the
validation + scoring + hashing step measured in-process. The server runs in its own process.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aarlab.server._tasks import check_predictions, load_task, predictions_hash  # noqa: E402
from aarlab.server.client import LabClient  # noqa: E402
from aarlab.w2s.synthetic import write_synthetic_task  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def start_server(run_dir: Path, task_dir: Path, db: str | None) -> tuple[subprocess.Popen, str, str]:
    args = [sys.executable, "-m", "aarlab.server", "--run-dir", str(run_dir), "--port", "0", "--task", str(task_dir),
            "--submissions-per-run", "100000000", "--submissions-per-hour", "100000000"]
    if db:
        args += ["--db", db]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit(f"server did not start: {url!r}")
    return proc, url, (run_dir / "admin_token").read_text().strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process_scoring(task_dir: Path, repeats: int) -> list[float]:
    task = load_task(1, "bench", task_dir)
    rng = random.Random(0)
    out = []
    for _ in range(repeats):
        preds = [rng.randrange(2) for _ in range(task.n_test)]
        t0 = time.perf_counter()
        arr = check_predictions(preds, task.n_test, task.n_labels, 10**7)
        task.public.score(arr)
        task.private.score(arr)
        predictions_hash(arr)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def big_submissions(url: str, token: str, task: str, n_test: int, repeats: int) -> tuple[list[float], list[float]]:
    rng = random.Random(1)
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    server, client = [], []
    for _ in range(repeats):
        body = {"task": task, "predictions": [rng.randrange(2) for _ in range(n_test)]}
        t0 = time.perf_counter()
        r = http.post("/api/eval/submissions", json=body)
        client.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        server.append(float(r.headers["server-timing"].split("dur=")[1]))
    http.close()
    return server, client


def _client_process(url: str, token: str, task: str, n_test: int, seed: int, start_at: float, stop_at: float, out) -> None:
    rng = random.Random(seed)
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    bodies = [{"task": task, "predictions": [rng.randrange(2) for _ in range(n_test)]} for _ in range(50)]
    latencies, server_ms, error = [], [], None
    while time.time() < start_at:
        time.sleep(0.001)
    k = 0
    while time.time() < stop_at:
        t0 = time.perf_counter()
        r = http.post("/api/eval/submissions", json=bodies[k % len(bodies)])
        latencies.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            error = r.text
            break
        server_ms.append(float(r.headers["server-timing"].split("dur=")[1]))
        k += 1
    http.close()
    out.put((latencies, server_ms, error))


def sustained(url: str, tokens: list[str], task: str, n_test: int, seconds: float) -> tuple[int, float, list[float], list[float]]:
    """One client per process (so the clients' own Python does not share a GIL), all starting together."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    stop_at = start_at + seconds
    procs = [ctx.Process(target=_client_process, args=(url, tok, task, n_test, i, start_at, stop_at, out))
             for i, tok in enumerate(tokens)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    errors = [e for _, _, e in results if e]
    if errors:
        raise SystemExit(f"submission failed: {errors[0][:300]}")
    lat = [x for r in results for x in r[0]]
    srv = [x for r in results for x in r[1]]
    return len(lat), seconds, lat, srv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of the sustained-load phase")
    ap.add_argument("--clients", type=int, default=9)
    ap.add_argument("--repeats", type=int, default=50, help="10,000-prediction submissions to time")
    ap.add_argument("--sustained-n-test", type=int, default=200, help="test-set size for the sustained phase")
    ap.add_argument("--db", default=None, help="Postgres server URL (a fresh database is made on it and dropped); "
                                             "default: SQLite in a temp run dir")
    args = ap.parse_args()

    db, drop = args.db, None
    if db and db.startswith(("postgres://", "postgresql://")):
        db, drop = fresh_postgres_database(db)
    try:
        run(args, db)
    finally:
        if drop:
            drop()


def fresh_postgres_database(url: str):
    """An empty database on the same server, so that runs do not see each other's tables."""
    import uuid

    import psycopg

    name = f"aarlab_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.rsplit("/", 1)[0] + "/" + name, drop


def run(args, db: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = write_synthetic_task(tmp / "big", n_test=10_000, n_unlabel=20, name="big")
        small = write_synthetic_task(tmp / "small", n_test=args.sustained_n_test, n_unlabel=20, name="small")
        scoring = in_process_scoring(big, args.repeats)
        proc, url, admin_token = start_server(tmp / "run", big, db)
        try:
            admin = LabClient(url, admin_token)
            admin.register_task(small)
            tokens = [admin.create_agent(f"bench{i}").token for i in range(args.clients)]
            big_server, big_client = big_submissions(url, tokens[0], "big", 10_000, args.repeats)
            cpu_before = cpu_seconds(proc.pid)
            n, elapsed, lat, srv = sustained(url, tokens, "small", args.sustained_n_test, args.seconds)
            server_cpu = cpu_seconds(proc.pid) - cpu_before
        finally:
            proc.terminate()
            proc.wait(15)

    rows = [
        ("scoring 10,000 predictions (validate + score + hash, in-process)", len(scoring), scoring, "≤ 5 ms"),
        ("submit 10,000 predictions, server side (Server-Timing)", len(big_server), big_server, "≤ 5 ms (scoring)"),
        ("submit 10,000 predictions, client round trip", len(big_client), big_client, ""),
        (f"sustained submit ({args.clients} clients, {args.sustained_n_test} preds), server side", len(srv), srv, ""),
        (f"sustained submit ({args.clients} clients, {args.sustained_n_test} preds), client round trip", len(lat), lat, ""),
    ]
    kind = "postgresql" if db else "sqlite"
    print(f"\nlab server benchmark ({kind}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})\n")
    print("| measure | n | p50 ms | p99 ms | mean ms | target |")
    print("|---|---:|---:|---:|---:|---|")
    for name, count, values, target in rows:
        print(f"| {name} | {count} | {pct(values, 50):.2f} | {pct(values, 99):.2f} | {statistics.fmean(values):.2f} | {target} |")
    print(f"| sustained throughput, {args.clients} clients, {elapsed:.1f} s | {n} | | | | "
          f"**{n / elapsed:.0f} submissions/s** (target ≥ 500/s) |")
    # Independent of what else runs on the machine: the server process's own CPU per submission.
    print(f"| server CPU per sustained submission (whole request, one process) | {n} | | | "
          f"{server_cpu / n * 1000:.2f} | ≈ {n / server_cpu:.0f} submissions per server CPU-second |")


if __name__ == "__main__":
    main()
