"""Crash and resume: a process running an agent is killed with SIGKILL mid-step and the run is resumed from its
transcript with no lost turn and no repeated tool call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from aarlab.agent import Agent, AgentConfig, read_transcript
from aarlab.llm import get_model
from aarlab.sandbox import check_backend

RUNNER = """
import sys
from pathlib import Path
from aarlab.agent import Agent, AgentConfig
from aarlab.llm import get_model
from aarlab.sandbox import SandboxSpec, create

transcript, workspace, script, backend = sys.argv[1:5]
with create(backend, SandboxSpec(workspace=Path(workspace))) as box:
    Agent(AgentConfig(name="ada"), transcript=transcript, sandbox=box, model=get_model("scripted:" + script)).run()
"""

SCRIPT = [
    {"tool": "bash", "arguments": {"command": "echo 1 >> calls.log"}},
    {"tool_calls": [{"bash": {"command": "echo 2 >> calls.log"}},
                    {"write_file": {"path": "notes.txt", "content": "after step 2\n"}}]},
    {"tool_calls": [{"bash": {"command": "echo 3a >> calls.log"}},
                    {"bash": {"command": "echo 3b >> calls.log; sleep 60; echo 3b-finished >> calls.log"}},
                    {"bash": {"command": "echo 3c >> calls.log"}}]},
    {"tool": "bash", "arguments": {"command": "echo 4 >> calls.log"}},
    {"tool": "finish", "arguments": {"summary": "survived a crash"}},
]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigkill_mid_step_then_resume_loses_no_turn_and_repeats_no_tool_call(tmp_path, make_sandbox):
    backend = "bwrap" if check_backend("bwrap")[0] else "process"
    workspace, transcript, script = tmp_path / "ws", tmp_path / "ada.jsonl", tmp_path / "script.yaml"
    workspace.mkdir()
    script.write_text(yaml.safe_dump({"steps": SCRIPT}))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    calls = workspace / "calls.log"
    proc = subprocess.Popen([sys.executable, str(runner), str(transcript), str(workspace), str(script), backend],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: calls.exists() and "3b" in calls.read_text() or proc.poll() is not None, 60, "step 3")
        assert proc.poll() is None, proc.stdout.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        try:  # the sandboxed `sleep` too, should a backend leave it behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    turns_before = [r["step"] for r in read_transcript(transcript) if r["type"] == "turn"]
    assert turns_before == [1, 2]  # step 3 was cut short: it lives in the pending side file only

    box = make_sandbox("ws", backend)
    agent = Agent(AgentConfig(name="ada"), transcript=transcript, sandbox=box, model=get_model(f"scripted:{script}"))
    record = agent.run()
    assert (record.reason, record.detail) == ("done", "survived a crash")

    assert calls.read_text().split() == ["1", "2", "3a", "3b", "4"]  # nothing ran twice, 3c never ran
    records = read_transcript(transcript)
    turns = [r for r in records if r["type"] == "turn"]
    assert [t["step"] for t in turns] == [1, 2, 3, 4, 5]
    step3 = turns[2]
    assert step3["recovered"] is True and step3["request"]["messages"] > 0
    a, b, c = step3["tool_results"]
    assert "exit code 0" in a["content"] and not a.get("is_error")  # it finished before the kill: kept
    assert b["is_error"] and "interrupted" in b["content"] and c["is_error"] and "not run again" in c["content"]
    assert [r["type"] for r in records].count("start") == 1 and records[-1]["type"] == "stop"
    # The model saw the recovered step like any other, and the script went on at step 4.
    assert turns[3]["assistant"]["tool_calls"][0]["arguments"] == {"command": "echo 4 >> calls.log"}
    assert not (tmp_path / "ada.pending.json").exists()


def test_every_reader_agrees_that_a_line_without_its_newline_is_torn(tmp_path):
    import json

    import pytest

    from aarlab.agent.transcript import TranscriptError, TranscriptWriter, read_records
    from aarlab.dashboard._transcripts import TranscriptIndex
    from aarlab.monitor import read_actions

    turn = {"type": "turn", "time": 1.0, "agent": "ada", "step": 1, "tool_results": [{"tool_call_id": "c1",
            "content": "ok", "role": "tool"}], "assistant": {"role": "assistant", "tool_calls": [
            {"id": "c1", "name": "bash", "arguments": {"command": "ls"}}]}}
    lines = [json.dumps({"type": "start", "time": 0.0, "agent": "ada", "system_prompt": "s"}), json.dumps(turn)]
    path = tmp_path / "ada.jsonl"
    # The crash came after the third record's bytes but before its newline: that record was never written
    # whole, even though it parses, and the writer cuts it off before appending.
    path.write_text("\n".join(lines) + "\n" + json.dumps({**turn, "step": 2}), encoding="utf-8")
    complete = len(("\n".join(lines) + "\n").encode())

    assert [r["type"] for r in read_transcript(path)] == ["start", "turn"]
    assert [m.type for m in TranscriptIndex().records(path)] == ["start", "turn"]
    actions, offset = read_actions(path)
    assert [a.step for a in actions] == [1] and offset == complete
    assert read_records(path).end == complete
    TranscriptWriter(path, "ada").close()
    assert path.stat().st_size == complete and len(read_transcript(path)) == 2

    # A bad line with records after it is no crash's doing: resuming refuses it, the viewers skip it.
    path.write_text(lines[0] + "\n{not json\n" + lines[1] + "\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match="line 2"):
        read_transcript(path)
    assert [m.type for m in TranscriptIndex().records(path)] == ["start", "turn"]
    assert [a.step for a in read_actions(path)[0]] == [1]
