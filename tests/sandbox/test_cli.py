"""``aarlab sandbox check`` and ``aarlab sandbox exec``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aarlab.errors import UserError
from aarlab.sandbox.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_check_lists_backends_and_warns_loudly_about_process():
    result = invoke("check")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.split()}
    assert {"bwrap", "process", "docker", "ray"} <= set(lines)
    assert "NO ISOLATION" in lines["process"]
    assert "isolates" in lines["bwrap"]
    assert "WARNING" in result.output and "does NOT isolate" in result.output


def test_check_states_what_this_machine_enforces(bwrap_required):
    result = invoke("check", "--backend", "bwrap")
    assert result.exit_code == 0, result.output
    line = result.output.splitlines()[0]
    assert "host uid" in line or "as root" in line
    assert "cgroup" in line and "CPU time per command" in line or "allow_weak_limits" in line
    assert "RLIMIT_FSIZE" in line


def test_check_rejects_unknown_backends():
    result = invoke("check", "--backend", "chroot")
    assert isinstance(result.exception, UserError)


def test_exec_runs_a_command_and_passes_its_exit_code(tmp_path, bwrap_required):
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "task.json").write_text("{}")
    ws = tmp_path / "ws"
    result = invoke("exec", "--workspace", str(ws), "--mount", f"{tmp_path / 'task'}:/task", "--",
                    "bash", "-c", "ls /task; pwd; exit 5")
    assert result.exit_code == 5
    assert result.stdout == "task.json\n/workspace\n"


def test_exec_with_process_backend_warns(tmp_path):
    result = invoke("exec", "--backend", "process", "--workspace", str(tmp_path), "--", "echo", "hi")
    assert result.exit_code == 0
    assert "hi" in result.output and "does NOT isolate" in result.output


def test_exec_times_out_with_124(tmp_path, bwrap_required):
    result = invoke("exec", "--workspace", str(tmp_path), "--timeout", "1", "--", "sleep 20")
    assert result.exit_code == 124


@pytest.mark.parametrize(
    "args",
    [
        ("exec", "--workspace", "W"),
        ("exec", "--workspace", "W", "--backend", "nope", "--", "true"),
        ("exec", "--workspace", "W", "--mount", "/nonexistent:/task", "--", "true"),
        ("exec", "--workspace", "W", "--mount", "W:relative", "--", "true"),
    ],
    ids=["no-command", "unknown-backend", "missing-mount", "relative-target"],
)
def test_exec_user_mistakes_are_user_errors(tmp_path, args):
    result = invoke(*(str(tmp_path) if a == "W" else a for a in args))
    assert isinstance(result.exception, UserError), result.output
