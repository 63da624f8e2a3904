"""How fast the team machinery runs: the light demo researcher on a synthetic task, for 1, 3 and 6 agents.

    .venv/bin/python benchmarks/team_run.py [--agents 1,3,6] [--backend bwrap]

Everything is real (lab server on 127.0.0.1, bwrap sandboxes, transcripts fsync'd per turn); only the model
is scripted, so the numbers are the harness's own overhead per step. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def one_run(agents: int, backend: str, root: Path) -> dict:
    from aarlab.config import RunConfig
    from aarlab.team import TeamSession, create_run

    config = RunConfig.load(None, {
        "task.synthetic": {"n_unlabel": 100, "n_test": 100}, "team.agents": agents,
        "team.model": "scripted:demo-light", "verification.enabled": False, "monitors.enabled": False,
        "report": False, "sandbox.backend": backend, "sandbox.allow_unisolated": backend == "process",
    })
    run_dir = root / f"run-{agents}-{backend}"
    start = time.perf_counter()
    create_run(config, run_dir)
    created = time.perf_counter()
    TeamSession(run_dir, config, note=lambda line: None).run()
    end = time.perf_counter()
    steps = 0
    for path in (run_dir / "transcripts").glob("*.jsonl"):
        steps += sum(json.loads(line)["type"] == "turn" for line in path.read_text().splitlines() if line.strip())
    return {"agents": agents, "backend": backend, "create_s": created - start, "session_s": end - created,
            "steps": steps, "steps_per_s": steps / (end - created)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", default="1,3,6")
    parser.add_argument("--backend", default="bwrap")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aarlab-bench-") as tmp:
        os.environ.setdefault("AARLAB_CACHE", str(Path(tmp) / "cache"))
        rows = [one_run(int(n), args.backend, Path(tmp)) for n in args.agents.split(",")]
    print(f"{'agents':>6} {'backend':>8} {'create s':>9} {'session s':>10} {'steps':>6} {'steps/s':>8}")
    for r in rows:
        print(f"{r['agents']:>6} {r['backend']:>8} {r['create_s']:>9.2f} {r['session_s']:>10.1f} {r['steps']:>6} "
              f"{r['steps_per_s']:>8.2f}")
    print(f"(cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
