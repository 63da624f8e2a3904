"""The ``process`` backend: no isolation (and it says so), but a clean environment, timeouts and caps."""

from __future__ import annotations

import logging

import pytest

from aarlab.sandbox import SandboxError, create


def test_process_backend_declares_that_it_does_not_isolate(layout, h, caplog):
    sandbox = create("process", h.make_spec(layout))
    assert sandbox.isolates is False
    with caplog.at_level(logging.WARNING), sandbox:
        pass
    assert "does NOT isolate" in caplog.text


def test_commands_run_in_the_workspace_with_only_the_specs_environment(layout, h, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-process")
    with create("process", h.make_spec(layout, env={"AARLAB_AGENT": "alice"})) as sandbox:
        result = sandbox.exec("pwd; env")
        assert result.stdout.splitlines()[0] == str(layout.alice.resolve())
        assert "sk-ant-secret-process" not in result.stdout
        assert "AARLAB_AGENT=alice" in result.stdout
        sandbox.write_file("a/b.txt", "x")
        assert sandbox.exec("cat a/b.txt").stdout == "x"
        assert sandbox.list_files() == ["a/b.txt"]


def test_timeout_kills_the_whole_tree(layout, h):
    marker = "33.1415"
    with create("process", h.make_spec(layout)) as sandbox:
        result = sandbox.exec(f"(sleep {marker}) & setsid sleep 1{marker} & sleep 43.1415", timeout=1.0)
        assert result.timed_out and result.exit_code == 124
        assert result.duration_s < 10
        if sandbox._cgroup is None:
            pytest.skip("no cgroup here: a process that called setsid() escapes the process backend's reach")
        assert h.host_processes_with(marker) == []
        assert sandbox.exec("echo ok").stdout == "ok\n"


def test_output_is_capped(layout, h):
    with create("process", h.make_spec(layout, max_output_bytes=500)) as sandbox:
        result = sandbox.exec("seq 1 50000; seq 1 50000 >&2")
        assert result.truncated and "output truncated" in result.stdout and "output truncated" in result.stderr
        assert result.stdout.rstrip().endswith("50000")


def test_paths_outside_the_workspace_are_refused(layout, h):
    with create("process", h.make_spec(layout)) as sandbox:
        for path in ("../bob/notes.txt", str(layout.bob / "notes.txt"), "/etc/passwd"):
            with pytest.raises(SandboxError):
                sandbox.read_file(path)
        with pytest.raises(SandboxError):
            sandbox.exec("true", cwd="..")


def test_exec_before_start_is_an_error(layout, h):
    with pytest.raises(SandboxError, match="not started"):
        create("process", h.make_spec(layout)).exec("true")
