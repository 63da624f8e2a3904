"""Crash safety: ``kill -9`` the whole ``aarlab run`` at random moments, resume each time, lose nothing."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter

import pytest
from team_helpers import AARLAB, REPO, cli, tiny_config, tool_outputs, transcript, write_config

from aarlab.sandbox import check_backend

KILLS = 10


def _start(*args: str) -> subprocess.Popen:
    # Its own session, so that killpg reaches the harness, its threads and every sandboxed command at once.
    return subprocess.Popen([*AARLAB, *args, "--no-live"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _transcript_bytes(run_dir) -> int:
    return sum(p.stat().st_size for p in (run_dir / "transcripts").glob("*.jsonl")) if (run_dir / "transcripts").exists() else 0


def _kill_when_busy(proc: subprocess.Popen, run_dir, rng: random.Random, deadline: float) -> bool:
    """Wait until the run makes progress (a transcript grows), then kill -9 it a random moment later.

    Returns False if the run finished by itself first."""
    before = _transcript_bytes(run_dir)
    while time.monotonic() < deadline and proc.poll() is None:
        if _transcript_bytes(run_dir) > before and not (run_dir / ".creating").exists():
            break
        time.sleep(0.05)
    # Short: a light demo step takes tens of milliseconds, and the run must outlast ten kills.
    time.sleep(rng.uniform(0.0, 0.15))
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.slow
@pytest.mark.skipif(not check_backend("bwrap")[0], reason="bubblewrap cannot run here")
def test_kill_minus_nine_ten_times_then_resume_loses_and_repeats_nothing(tmp_path, capsys):
    rng = random.Random(20261126)
    config = write_config(tmp_path / "c.yaml", tiny_config(team={"agents": 3}))
    run_dir = tmp_path / "run"
    # ~60 s on an idle 2-core machine; the deadlines leave room for a loaded one.
    env_deadline = time.monotonic() + 150
    proc = _start("run", str(config), "--run-dir", str(run_dir))
    kills = 0
    while kills < KILLS and time.monotonic() < env_deadline:
        if not _kill_when_busy(proc, run_dir, rng, env_deadline):
            break
        kills += 1
        proc = _start("resume", str(run_dir))
    assert proc.wait(timeout=150) == 0
    assert kills >= KILLS, f"the run finished after only {kills} kills"

    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "finished" and {a["status"] for a in state["agents"]} == {"done"}
    assert state["sessions"] == kills + 1

    acknowledged_posts, acknowledged_submissions = {}, {}
    for agent in state["agents"]:
        name = agent["name"]
        records = transcript(run_dir, name)
        steps = [r["step"] for r in records if r["type"] == "turn"]
        assert steps == list(range(1, len(steps) + 1)), f"{name}: turns lost or repeated: {steps}"
        assert [r["type"] for r in records].count("start") == 1
        assert records[-1]["type"] == "stop" and records[-1]["reason"] == "done"
        for output in tool_outputs(records):
            if m := re.match(r"posted #(\d+)", output):
                acknowledged_posts[int(m.group(1))] = name
            if m := re.match(r"submission #(\d+)", output):
                acknowledged_submissions[int(m.group(1))] = name

    from aarlab.server import LabServer, ServerSettings
    from aarlab.server.client import LabClient

    token = (run_dir / "admin_token").read_text().strip()
    with LabServer(run_dir=run_dir, settings=ServerSettings(admin_token=token, run_dir=run_dir)) as lab, \
            LabClient(lab.url, token) as admin:
        posts = {p.id: p for p in admin.posts(limit=200)}
        submissions = {s.id: s for s in admin.submissions()}
    for post_id, author in acknowledged_posts.items():
        assert post_id in posts and posts[post_id].author == author
    for sub_id, author in acknowledged_submissions.items():
        assert sub_id in submissions and submissions[sub_id].agent == author
    # Exactly once: no post was sent twice (the demo never repeats an interrupted call).
    duplicates = [k for k, n in Counter((p.author, p.title) for p in posts.values()).items() if n > 1]
    assert not duplicates, duplicates
    code, out, err = cli("status", run_dir, capsys=capsys)
    assert code == 0 and "finished" in out
