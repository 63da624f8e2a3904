"""``aarlab run --cluster auto`` end to end on a local Ray: two scripted researchers whose sandboxes are
actors and whose seeds run as background jobs on them; one actor is killed while a seed runs, recreated from
the head's copy of its workspace, the agent is told of the lost job and runs another seed, and the run
completes."""

from __future__ import annotations

import json
import re
import sys
import threading

import pytest
import yaml
from ray_helpers import wait_until_dead

from aarlab.sandbox import check_backend

pytestmark = pytest.mark.slow


def _aarlab(*args) -> int:
    from aarlab.cli import main

    old = sys.argv
    sys.argv = ["aarlab", *map(str, args)]
    try:
        main()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old


def test_two_agents_on_ray_survive_a_killed_sandbox_actor(local_ray, tmp_path, monkeypatch):
    from aarlab.sandbox._ray import RayJobs, RaySandbox

    config = {
        "task": {"synthetic": {"n_unlabel": 60, "n_test": 60}},
        "team": {"agents": 2, "model": "scripted:demo-light"},
        "verification": {"enabled": False},
        "monitors": {"enabled": False},
        "sandbox": {"backend": "bwrap" if check_backend("bwrap")[0] else "process",
                    "allow_unisolated": True, "num_cpus": 0.5},
        "cluster": "auto",
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    sandboxes: list[RaySandbox] = []
    killed: list[RaySandbox] = []
    starts: dict[int, int] = {}
    lock = threading.Lock()
    real_start = RaySandbox.start
    real_job_start = RayJobs.start

    def start_and_remember(self):
        with lock:
            sandboxes.append(self)
        return real_start(self)

    def job_start_and_kill_once(self, name, command, **options):
        info = real_job_start(self, name, command, **options)
        box = self.sandbox
        with lock:
            starts[id(box)] = starts.get(id(box), 0) + 1
            kill = starts[id(box)] == 2 and not killed
            if kill:
                killed.append(box)
        if kill:  # the first agent to start its second seed loses its node while that seed runs
            actor = box._actor
            local_ray.kill(actor)
            wait_until_dead(local_ray, actor)
        return info

    monkeypatch.setattr(RaySandbox, "start", start_and_remember)
    monkeypatch.setattr(RayJobs, "start", job_start_and_kill_once)
    run_dir = tmp_path / "run"
    assert _aarlab("run", tmp_path / "run.yaml", "--run-dir", run_dir, "--no-live") == 0

    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "finished"
    assert [a["status"] for a in state["agents"]] == ["done", "done"]
    assert len(sandboxes) == 2 and all(isinstance(s, RaySandbox) for s in sandboxes)
    assert len(killed) == 1
    [other] = [s for s in sandboxes if s is not killed[0]]
    assert len(killed[0].recoveries) == 1 and not other.recoveries
    # the agent was told of the recovery and of its lost job, in records its transcript keeps
    name = killed[0].spec.workspace.name
    records = [json.loads(line) for line in (run_dir / "transcripts" / f"{name}.jsonl").read_text().splitlines()]
    assert "sandbox recovered" in json.dumps(records)
    assert [r["name"] for r in records if r["type"] == "job" and r["event"] == "lost"] == ["seed-1"]
    # nothing was lost: the head's copy of each workspace holds the agent's notebook with its three seeds
    for sandbox in sandboxes:
        notebook = sandbox.spec.workspace / "NOTEBOOK.md"
        assert re.search(r"- PGR -?\d\.\d{3} ± \d\.\d{3} \(n=3", notebook.read_text()), sandbox.spec.workspace
