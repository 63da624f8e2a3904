"""``aarlab run --cluster auto`` end to end on a local Ray: two scripted researchers whose sandboxes are
actors; one actor is killed mid-run, recreated from the head's copy of its workspace, and the run completes."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

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
    from aarlab.sandbox._ray import RaySandbox

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
    calls: dict[int, int] = {}
    real_exec = RaySandbox.exec

    def exec_and_kill_once(self, cmd, timeout=None, env=None, cwd=None):
        if self not in sandboxes:
            sandboxes.append(self)
        calls[id(self)] = calls.get(id(self), 0) + 1
        if self is sandboxes[0] and calls[id(self)] == 3 and not self.recoveries:
            local_ray.kill(self._actor)  # the first agent's node dies between its 2nd and 3rd command
        return real_exec(self, cmd, timeout=timeout, env=env, cwd=cwd)

    monkeypatch.setattr(RaySandbox, "exec", exec_and_kill_once)
    run_dir = tmp_path / "run"
    assert _aarlab("run", tmp_path / "run.yaml", "--run-dir", run_dir, "--no-live") == 0

    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "finished"
    assert [a["status"] for a in state["agents"]] == ["done", "done"]
    assert len(sandboxes) == 2 and all(isinstance(s, RaySandbox) for s in sandboxes)
    killed = sandboxes[0]
    assert len(killed.recoveries) == 1 and not sandboxes[1].recoveries
    # the agent was told, in the tool result its transcript records
    name = killed.spec.workspace.name
    transcript = (run_dir / "transcripts" / f"{name}.jsonl").read_text()
    assert "sandbox recovered" in transcript
    # nothing was lost: the head's copy of each workspace holds the agent's notebook with its results
    for sandbox in sandboxes:
        notebook = sandbox.spec.workspace / "NOTEBOOK.md"
        assert re.search(r"- PGR -?\d\.\d{3} ± \d\.\d{3} \(n=3", notebook.read_text()), sandbox.spec.workspace
