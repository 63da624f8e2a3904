"""The ``docker`` backend. No Docker engine runs on this machine or in CI, so the live tests skip with the
reason; the container's command line is checked without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from aarlab.sandbox import check_backend, create

DOCKER_OK, DOCKER_REASON = check_backend("docker")


def test_docker_run_command_isolates_and_limits(layout, h):
    sandbox = create("docker", h.make_spec(layout, gpus=[0, 2], readonly_paths=[layout.public]))
    argv = sandbox.create_argv("aarlab-test")
    joined = " ".join(argv)
    assert argv[argv.index("--network") + 1] == "none"
    assert "--cap-drop ALL" in joined and "no-new-privileges" in joined
    assert f"{layout.alice.resolve()}:/workspace:rw" in joined
    assert f"{layout.public.resolve()}:/task:ro" in joined
    assert "--memory 512m" in joined and "--pids-limit 64" in joined
    assert '"device=0,2"' in joined
    assert sandbox.isolates is True


def test_check_reports_why_docker_is_unavailable():
    ok, reason = check_backend("docker")
    assert isinstance(ok, bool) and reason


@pytest.mark.skipif(not DOCKER_OK, reason=f"no usable Docker engine here: {DOCKER_REASON}")
def test_docker_sandbox_runs_commands_without_network(layout, h):
    with create("docker", h.make_spec(layout)) as sandbox:
        result = sandbox.exec("pwd; cat /task/task.json; echo hi > out.txt")
        assert result.stdout.startswith("/workspace\n")
        assert (layout.alice / "out.txt").read_text() == "hi\n"
        timed = sandbox.exec("sleep 30", timeout=1)
        assert timed.timed_out
        assert Path(layout.alice).exists()
