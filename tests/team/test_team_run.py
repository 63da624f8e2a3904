"""``aarlab run`` end to end: three scripted researchers, the embedded lab, bwrap sandboxes, a tiny task."""

from __future__ import annotations

import json
import re
import socket

import pytest
from team_helpers import cli, tiny_config, tool_outputs, transcript, write_config

from aarlab.sandbox import check_backend

needs_bwrap = pytest.mark.skipif(not check_backend("bwrap")[0], reason="bubblewrap cannot run here")


def _lab(run_dir):
    from aarlab.server import LabServer, ServerSettings

    token = (run_dir / "admin_token").read_text().strip()
    return LabServer(run_dir=run_dir, settings=ServerSettings(admin_token=token, run_dir=run_dir)), token


@needs_bwrap
def test_three_demo_researchers_post_publish_submit_and_stop_cleanly(tmp_path, capsys):
    # The whole lab: verifier and monitors run beside the agents.
    config = write_config(tmp_path / "run.yaml", tiny_config(verification={"enabled": True, "poll_interval_s": 0.5},
                                                             monitors={"enabled": True, "interval_s": 1}))
    run_dir = tmp_path / "run"
    code, out, err = cli("run", config, "--run-dir", run_dir, "--no-live", capsys=capsys)
    assert code == 0, err
    assert "leaderboard" in out and "run finished" in out

    state = json.loads((run_dir / "state.json").read_text())
    names = [a["name"] for a in state["agents"]]
    assert len(names) == 3 and state["status"] == "finished"
    assert [a["status"] for a in state["agents"]] == ["done"] * 3
    assert len({a["direction"] for a in state["agents"]}) == 3  # round-robin over the study's directions
    assert (run_dir / "admin_token").stat().st_mode & 0o077 == 0
    assert not (run_dir / ".creating").exists()
    # Each researcher started with the known methods, a README of its world and its notebook.
    workspace = run_dir / "workspaces" / names[0]
    assert (workspace / "README.md").read_text().count(f"You are **{names[0]}**") == 1
    assert "Results (PGR" in (workspace / "NOTEBOOK.md").read_text()
    # the agent wrote its claim into it: the lab's multi-seed reply, mean ± seed SE with its test SE
    assert re.search(r"- PGR -?\d\.\d{3} ± \d\.\d{3} \(n=3, test SE", (workspace / "NOTEBOOK.md").read_text())

    from aarlab.server.client import LabClient

    lab, token = _lab(run_dir)
    with lab, LabClient(lab.url, token) as admin:
        posts = admin.posts(limit=200)
        submissions = admin.submissions()
        board = admin.leaderboard()
        snapshots = admin.snapshots(limit=200)
        flags = admin.flags()
    for name in names:
        assert any(p.author == name and p.kind == "result" for p in posts), name
        assert any(p.author == name and p.kind == "insight" for p in posts), name  # built on someone's work
        assert sum(s.agent == name for s in submissions) >= 2, name  # its seeds in one submission, then a combination
        assert any(e.author == name and e.claimed_seeds == 3 for e in board.entries), name
        assert any(s.author == name for s in snapshots), name
        records = transcript(run_dir, name)
        assert records[-1]["type"] == "stop" and records[-1]["reason"] == "done"
        assert any(o.startswith("fetched snapshot") for o in tool_outputs(records)), name
        # its seeds ran as background jobs within its slots
        calls = [c["name"] for r in records if r["type"] == "turn" for c in r["assistant"]["tool_calls"]]
        assert calls.count("job_start") >= 3 and "job_wait" in calls and "job" in {r["type"] for r in records}, name
    # Every result was re-run by the verifier from its snapshot before the run ended.
    for entry in board.entries:
        assert entry.snapshot_id and entry.method
        assert entry.verification_status == "done" and entry.verified_seeds == 3, entry
    assert not [f for f in flags if f.severity == "severe"], flags  # honest researchers, no severe flag

    # Clean stop: the embedded server is gone (its port refuses connections) and `status` reads the run.
    port = int(state["lab_url"].rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    code, out, err = cli("status", run_dir, capsys=capsys)
    assert code == 0, err
    for name in names:
        assert name in out
    assert "best claimed PGR" in out and "best verified PGR: " in out and f"flags: {len(flags)}" in out


def _default_sigint() -> None:
    """In the child: SIGINT handled and unblocked, as in a terminal. An ignored or blocked signal is inherited
    across exec, and a process that starts with SIGINT ignored never gets Python's KeyboardInterrupt handler;
    whatever earlier tests left in this pytest process must not decide whether Ctrl-C reaches the run."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.slow
@needs_bwrap
def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path):
    import signal
    import subprocess
    import time

    from team_helpers import AARLAB, REPO, cli_process

    config = write_config(tmp_path / "run.yaml", tiny_config(team={"agents": 2}))
    # The light researchers finish a tiny run in seconds; on a loaded machine the whole run can end before the
    # signal lands ("run finished"). Such a try tests nothing: try again, a bounded number of times.
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        proc = subprocess.Popen([*AARLAB, "run", str(config), "--run-dir", str(run_dir), "--no-live"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=_default_sigint)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until an agent has taken its first step, then interrupt
            path = run_dir / "transcripts"
            if path.exists() and any(len(p.read_text().splitlines()) > 1 for p in path.glob("*.jsonl")):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        if "run finished" not in out:
            break
    assert "aarlab resume" in out
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "stopped"
    assert {a["status"] for a in state["agents"]} <= {"interrupted", "done"}
    for agent in state["agents"]:
        if agent["status"] == "interrupted":
            assert transcript(run_dir, agent["name"])[-1]["reason"] == "interrupted"
    result = cli_process("resume", run_dir, "--no-live", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "finished" and {a["status"] for a in state["agents"]} == {"done"}
    for agent in state["agents"]:
        steps = [r["step"] for r in transcript(run_dir, agent["name"]) if r["type"] == "turn"]
        assert steps == list(range(1, len(steps) + 1))
