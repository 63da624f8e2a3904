"""The job tools on a scripted agent over a real bwrap sandbox: the model starts, reads, waits for and kills
jobs; a past-slots start comes back as a tool error; job compute is charged and a CPU-hour budget stops it."""

from __future__ import annotations

from pathlib import Path

import pytest

from aarlab.agent.transcript import read_transcript, replay
from aarlab.sandbox import Mount, SandboxSpec, create


def _box(tmp_path: Path, task_dir: Path, slots: int):
    from aarlab.sandbox import check_backend

    ok, why = check_backend("bwrap")
    if not ok:
        pytest.skip(f"bwrap does not work here: {why}")
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    spec = SandboxSpec(workspace=workspace, mounts=[Mount(host=task_dir / "public", target=Path("/task"))],
                       name="jobs", default_timeout_s=60, memory_mb=1024, tmp_mb=64, job_slots=slots,
                       job_state=tmp_path / "jobs.json")
    return create("bwrap", spec)


def _results(path: Path) -> list[tuple[str, bool, str]]:
    out = []
    for record in read_transcript(path):
        if record["type"] == "turn":
            names = {c["id"]: c["name"] for c in record["assistant"].get("tool_calls", [])}
            out += [(names[r["tool_call_id"]], bool(r.get("is_error")), r["content"]) for r in record["tool_results"]]
    return out


def test_an_agent_runs_three_jobs_reads_waits_and_kills_and_is_refused_past_its_slots(make_agent, tmp_path,
                                                                                        task_dir):
    script = [
        {"tool_calls": [
            {"job_start": {"name": "seed1", "command": "for i in 1 2 3; do echo s1 step $i; sleep 0.3; done"}},
            {"job_start": {"name": "seed2", "command": "sleep 1.5; echo s2 done; exit 2"}},
            {"job_start": {"name": "hog", "command": "echo hogging; sleep 300"}},
        ]},
        {"tool": "job_start", "arguments": {"name": "seed4", "command": "echo never"}},
        {"tool": "job_list", "arguments": {}},
        {"tool": "job_wait", "arguments": {"names": ["seed1", "seed2"], "timeout": 30}},
        {"tool": "job_output", "arguments": {"name": "seed1"}},
        {"tool": "job_kill", "arguments": {"name": "hog"}},
        {"tool": "read_file", "arguments": {"path": ".jobs/seed2.log"}},
        {"tool": "finish", "arguments": {"summary": "ran jobs"}},
    ]
    with _box(tmp_path, task_dir, slots=3) as box:
        agent = make_agent(script, sandbox=box)
        assert {"job_start", "job_list", "job_output", "job_wait", "job_kill"} <= set(agent._tools_by_name)
        assert agent.run().reason == "done"
    results = _results(agent.transcript_path)
    started = [r for r in results if r[0] == "job_start"]
    assert [r[1] for r in started] == [False, False, False, True]
    assert "all 3 job slot(s) are in use" in started[3][2] and "hog (slot 2" in started[3][2]
    listing = next(r for r in results if r[0] == "job_list")[2]
    assert listing.startswith("3 of 3 slot(s) in use") and "seed1: running" in listing and "hog: running" in listing
    waited = next(r for r in results if r[0] == "job_wait")[2]
    assert waited.startswith("all ended") and "seed2: exited" in waited and "exit code 2" in waited
    assert "s1 step 3" in next(r for r in results if r[0] == "job_output")[2]
    assert "hog: killed" in next(r for r in results if r[0] == "job_kill")[2]
    assert "s2 done" in next(r for r in results if r[0] == "read_file")[2]

    records = read_transcript(agent.transcript_path)
    events = [(r["event"], r["name"]) for r in records if r["type"] == "job"]
    assert {("start", n) for n in ("seed1", "seed2", "hog")} <= set(events)
    assert {("end", n) for n in ("seed1", "seed2", "hog")} <= set(events)
    notes = "\n".join(r.get("note") or "" for r in records if r["type"] == "turn")
    assert "[jobs] seed2 ended (exited with code 2)" in notes
    start = next(r for r in records if r["type"] == "start")
    assert "You have 3 job slot(s)" in start["system_prompt"]


def test_a_cpu_hour_budget_stops_an_agent_waiting_on_its_jobs(make_agent, tmp_path, task_dir):
    spin = "timeout 20 sh -c 'while :; do :; done'"
    script = [
        {"tool": "job_start", "arguments": {"name": "spin", "command": spin}},
        {"tool": "job_wait", "arguments": {"names": ["spin"], "timeout": 60}},
        {"tool": "finish", "arguments": {"summary": "should not get here"}},
    ]
    with _box(tmp_path, task_dir, slots=1) as box:
        # 0.0003 CPU-hours: about a second of one busy CPU
        agent = make_agent(script, sandbox=box, max_cpu_hours=0.0003)
        stop = agent.run()
        assert stop.reason == "budget" and "CPU-hour budget spent" in stop.detail
        assert agent.budget.spent.cpu_s >= 0.0003 * 3600
    # the sandbox stopping ended the job (a budget stop is followed by the sandbox's stop in the team)
    assert box.jobs is None
    records = read_transcript(agent.transcript_path)
    assert records[-1]["type"] == "stop" and records[-1]["reason"] == "budget"


def test_job_compute_charged_so_far_is_restored_on_resume(make_agent, tmp_path, task_dir):
    script = [
        {"tool": "job_start", "arguments": {"name": "spin", "command": "timeout 1 sh -c 'while :; do :; done'"}},
        {"tool": "job_wait", "arguments": {"names": ["spin"], "timeout": 30}},
        {"tool": "job_list", "arguments": {}},
        {"tool": "finish", "arguments": {"summary": "done"}},
    ]
    with _box(tmp_path, task_dir, slots=1) as box:
        agent = make_agent(script, sandbox=box)
        agent.run()
        charged = agent.budget.spent.cpu_s
    assert charged > 0.02  # a 1-second spin; under a loaded CI machine it may get a small share of a core
    assert replay(read_transcript(agent.transcript_path)).job_cpu_s == pytest.approx(charged, abs=0.01)
