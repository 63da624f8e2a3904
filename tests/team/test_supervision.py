"""Supervision: the global $ budget, restarts from the transcript, bounded retries."""

from __future__ import annotations

import json

import pytest
import yaml
from team_helpers import cli, tiny_config, transcript, write_config

from aarlab.llm import ScriptedModel
from aarlab.llm._scripted import register_script
from aarlab.sandbox import check_backend

pytestmark = pytest.mark.skipif(not check_backend("bwrap")[0], reason="bubblewrap cannot run here")

CALL_COST = 1000 * 3 / 1e6 + 100 * 15 / 1e6  # the usage and prices below


def _state(run_dir):
    return json.loads((run_dir / "state.json").read_text())


def test_dollar_budget_stops_everyone_within_one_model_call(tmp_path, capsys):
    script = tmp_path / "spender.yaml"
    script.write_text(yaml.safe_dump({
        "steps": [{"tool": "bash", "arguments": {"command": f"echo step {i}"}} for i in range(60)],
        "usage": {"input_tokens": 1000, "output_tokens": 100},
        "prices": {"input": 3, "output": 15},
    }))
    limit = 0.02
    config = write_config(tmp_path / "c.yaml", tiny_config(team={"agents": 2, "model": f"scripted:{script}"},
                                                           budget={"total": {"usd": limit}}))
    run_dir = tmp_path / "run"
    code, out, err = cli("run", config, "--run-dir", run_dir, "--no-live", capsys=capsys)
    assert code == 0, err
    state = _state(run_dir)
    assert state["status"] == "budget", state
    assert {a["status"] for a in state["agents"]} == {"budget"}
    spent = sum(r.get("cost_usd", 0) for a in state["agents"] for r in transcript(run_dir, a["name"])
                if r["type"] == "turn")
    # Each agent checks the budget before every model call: the team overshoots by at most one call each.
    assert limit <= spent <= limit + 2 * CALL_COST + 1e-9, spent
    assert "budget is spent" in out


_flaky = {"raised": 0}


def _flaky_model(**options):
    def generate(messages):
        done = sum(m.role == "assistant" for m in messages)
        if done == 3 and _flaky["raised"] == 0:
            _flaky["raised"] += 1
            raise RuntimeError("the harness lost its connection")  # a fault of the harness, not a tool error
        if done < 6:
            return {"tool": "bash", "arguments": {"command": f"echo turn {done}"}}
        return {"tool": "finish", "arguments": {"summary": "done"}}

    return ScriptedModel(generator=generate, name="scripted:flaky-test")


def _broken_model(**options):
    def generate(messages):
        raise RuntimeError("this harness always breaks")

    return ScriptedModel(generator=generate, name="scripted:broken-test")


register_script("flaky-test", _flaky_model)
register_script("broken-test", _broken_model)


def test_a_crashed_agent_restarts_from_its_transcript_and_a_broken_one_is_marked_failed(tmp_path, capsys):
    _flaky["raised"] = 0
    config = write_config(tmp_path / "c.yaml", tiny_config(team={
        "agents": 2, "models": ["scripted:flaky-test", "scripted:broken-test"], "max_restarts": 1}))
    run_dir = tmp_path / "run"
    code, out, err = cli("run", config, "--run-dir", run_dir, "--no-live", capsys=capsys)
    assert code == 0, err
    flaky, broken = _state(run_dir)["agents"]
    # The flaky harness failed once: restarted from its transcript, it finished with nothing lost or repeated.
    assert (flaky["status"], flaky["restarts"]) == ("done", 1)
    assert "restarting from its transcript" in out
    records = transcript(run_dir, flaky["name"])
    steps = [r["step"] for r in records if r["type"] == "turn"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 7
    assert [r["type"] for r in records].count("start") == 1
    # The broken one was retried a bounded number of times, then marked failed with the reason.
    assert broken["status"] == "failed" and broken["restarts"] == 1
    assert "this harness always breaks" in broken["reason"] and "after 1 restarts" in broken["reason"]
    code, out, err = cli("status", run_dir, capsys=capsys)
    assert "this harness always breaks" in out


def test_one_run_directory_runs_in_one_session_at_a_time(tmp_path):
    from aarlab.config import RunConfig
    from aarlab.errors import UserError
    from aarlab.team import TeamSession, create_run

    config = RunConfig.load(write_config(tmp_path / "c.yaml", tiny_config()))
    create_run(config, tmp_path / "run")
    first = TeamSession(tmp_path / "run", config)._lock()
    try:
        with pytest.raises(UserError, match="is being run by pid"):
            TeamSession(tmp_path / "run", config)._lock()
    finally:
        first.close()
    TeamSession(tmp_path / "run", config)._lock().close()  # free again once the first session ends
