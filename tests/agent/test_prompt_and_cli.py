"""The system prompt template, and ``aarlab agent run`` against a real lab server and a real sandbox."""

from __future__ import annotations

import subprocess
import sys

import yaml
from typer.testing import CliRunner

from aarlab.agent import AgentConfig, read_transcript, render_system_prompt
from aarlab.cli import app
from aarlab.server.testing import running_lab
from aarlab.w2s.taskdir import TaskDir


def test_the_system_prompt_carries_task_direction_budget_and_rules(task_dir):
    info = TaskDir(task_dir).info()
    config = AgentConfig(name="ada", direction="Study confidence-weighted losses.", min_seeds=5,
                         baselines_dir="/workspace/baselines")
    text = render_system_prompt(config, info, budget="left: 10 of 10 steps, $5.00 of $5.00", sandbox="bwrap",
                                consult=True)
    weak = info.fixed.weak_acc
    for expected in ["You are ada", "weak-to-strong", "PGR = (transfer_accuracy - weak_accuracy)",
                     f"weak accuracy {weak.mean:.3f} ± {weak.se:.3f} (n={weak.n} seeds)", "/workspace/baselines",
                     "Study confidence-weighted losses.", "left: 10 of 10 steps", "at least 5 independent seeds",
                     "held-out split", "disqualifies", "`consult`", info.weak_model, "/task/", "NOTEBOOK.md"]:
        assert expected in text, expected
    assert "$" not in text.replace("$5.00", "")  # every template placeholder was filled


def test_agent_run_cli_runs_one_agent_and_resumes(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"steps": [
        {"tool": "bash", "arguments": {"command": "head -c 60 /task/test.jsonl; echo; ls"}},
        {"tool": "leaderboard", "arguments": {}},
        {"tool": "forum_post", "arguments": {"kind": "question", "title": "Anyone tried bootstrapping?",
                                             "body": "Curious."}},
        {"tool": "finish", "arguments": {"summary": "asked a question"}},
    ]}))
    with running_lab(tmp_path / "lab") as lab:
        token = lab.client().create_agent("cli-agent").token
        command = [sys.executable, "-m", "aarlab.cli", "agent", "run", "--lab", lab.url, "--token", token,
                   "--workspace", str(tmp_path / "ws"), "--model", f"scripted:{script}", "--sandbox", "bwrap",
                   "--task-dir", str(lab.task_dir), "--name", "cli-agent", "--max-steps", "10"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "cli-agent stopped at step 4: done (asked a question)" in done.stdout
        [post] = lab.client().posts()
        assert post.author == "cli-agent" and post.kind == "question"
        records = read_transcript(tmp_path / "cli-agent.jsonl")
        turns = [r for r in records if r["type"] == "turn"]
        assert '"id"' in turns[0]["tool_results"][0]["content"]  # /task is mounted
        assert "baselines:" in turns[1]["tool_results"][0]["content"]
        # In-process from here on (a subprocess start costs seconds): a finished agent is not run again.
        runner = CliRunner()
        again = runner.invoke(app, command[3:])
        assert again.exit_code == 0 and "step 4: done" in again.output, again.output
        assert len([r for r in read_transcript(tmp_path / "cli-agent.jsonl") if r["type"] == "turn"]) == 4
        assert runner.invoke(app, command[3:-2] + ["--max-steps", "-1"]).exit_code == 2
        shown = runner.invoke(app, ["agent", "show", str(tmp_path / "cli-agent.jsonl"), "--last", "2"])
        assert shown.exit_code == 0 and "4 steps" in shown.output and "finish(" in shown.output
