"""kill -9 of ``aarlab run`` while an agent's background jobs run, then ``aarlab resume``: no job outlives the
harness, the agent is told which jobs were lost, and a job that had finished keeps its log and exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml
from team_helpers import AARLAB, REPO, tiny_config, tool_outputs, transcript, write_config

from aarlab.sandbox import check_backend

MARKER = "JOB-MARKER-crash-7d1e"


def _host_processes_with(marker: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _jobs_table(run_dir) -> dict[str, dict]:
    try:
        data = json.loads((run_dir / "jobs" / "ada.json").read_text())
    except (OSError, ValueError):
        return {}
    return {job["name"]: job for job in data["jobs"]}


@pytest.mark.slow
@pytest.mark.skipif(not check_backend("bwrap")[0], reason="bubblewrap cannot run here")
def test_kill_minus_nine_while_jobs_run_leaves_no_orphans_and_resume_reports_the_lost_jobs(tmp_path):
    script = tmp_path / "jobs.yaml"
    script.write_text(yaml.safe_dump([
        {"tool": "job_start", "arguments": {"name": "quick", "command": "echo quick-output; exit 5"}},
        {"tool": "job_start", "arguments": {"name": "slow", "command": f"echo partial; sleep 600 # {MARKER}"}},
        {"tool": "job_wait", "arguments": {"names": ["quick"], "timeout": 60}},
        {"tool": "job_wait", "arguments": {"names": ["slow"], "timeout": 600}},  # the harness dies in here
        {"tool": "job_list", "arguments": {}},
        {"tool": "finish", "arguments": {"summary": "checked the jobs"}},
    ]))
    config = write_config(tmp_path / "c.yaml", tiny_config(team={"agents": 1, "model": f"scripted:{script}"},
                                                           sandbox={"job_slots": 2}))
    run_dir = tmp_path / "run"
    # its own session: the kill reaches the harness and all its threads at once, as a crash would
    proc = subprocess.Popen([*AARLAB, "run", str(config), "--run-dir", str(run_dir), "--no-live"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: _jobs_table(run_dir).get("quick", {}).get("state") == "exited"
                  and _jobs_table(run_dir).get("slow", {}).get("state") == "running", 120, "the jobs to run")
        _wait_for(lambda: _host_processes_with(MARKER), 30, "the slow job's processes")
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # jobs live in sessions of their own, out of reach of the killpg: they must die with their harness
    deadline = time.monotonic() + 10
    while _host_processes_with(MARKER) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _host_processes_with(MARKER), "a job outlived the killed harness"

    resumed = subprocess.run([*AARLAB, "resume", str(run_dir), "--no-live"], cwd=REPO, capture_output=True,
                             text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    records = transcript(run_dir, "ada")
    notes = "\n".join(r.get("note") or "" for r in records if r["type"] == "turn")
    assert "LOST in a restart of your harness: job slow" in notes and MARKER in notes
    assert [r["name"] for r in records if r["type"] == "job" and r["event"] == "lost"] == ["slow"]
    listing = next(o for o in reversed(tool_outputs(records)) if "slot(s) in use" in o)
    assert "slow: lost" in listing and "quick: exited" in listing and "exit code 5" in listing
    workspace = run_dir / "workspaces" / "ada"
    assert (workspace / ".jobs" / "quick.log").read_text() == "quick-output\n"
    assert (workspace / ".jobs" / "slow.log").read_text() == "partial\n"
    assert records[-1]["type"] == "stop" and records[-1]["reason"] == "done"
    assert not _host_processes_with(MARKER)
