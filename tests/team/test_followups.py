"""The team's links to the other packages: the viewer token and ``aarlab serve``, monitor notifications,
sandbox recoveries and checkpoints, an OpenAI-compatible server from the config, the unisolated warning."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import httpx
import pytest
from team_helpers import AARLAB, REPO, cli, tiny_config, transcript, write_config

from aarlab.config import RunConfig
from aarlab.errors import UserError
from aarlab.sandbox import check_backend

needs_bwrap = pytest.mark.skipif(not check_backend("bwrap")[0], reason="bubblewrap cannot run here")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_bwrap
def test_viewer_token_is_printed_and_aarlab_serve_opens_the_finished_run(tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_config(team={"agents": 1}))
    run_dir = tmp_path / "run"
    code, out, err = cli("run", config, "--run-dir", run_dir, "--no-live", capsys=capsys)
    assert code == 0, err
    path = run_dir / "viewer_token"
    token = path.read_text().strip()
    assert len(token) >= 16 and path.stat().st_mode & 0o077 == 0
    assert token != (run_dir / "admin_token").read_text().strip()
    # At the start: the live dashboard; at the end: how to serve it again, with the same token.
    assert re.search(rf"dashboard: http://127\.0\.0\.1:\d+/\?token={re.escape(token)}", out), out
    assert f"aarlab serve --run-dir {run_dir}" in out
    assert f"/?token={token}" in out.split("run finished")[1]

    port = _free_port()
    serve = subprocess.Popen([*AARLAB, "serve", "--run-dir", str(run_dir), "--port", str(port),
                              "--viewer-token", token], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None and time.monotonic() < deadline, serve.stderr.read().decode()[-2000:]
            time.sleep(0.3)
        from aarlab.server.client import LabClient

        with LabClient(url, token) as viewer:  # the run's own task and results, read with the viewer token
            board = viewer.leaderboard()
        agent = json.loads((run_dir / "state.json").read_text())["agents"][0]["name"]
        assert board.entries and {e.author for e in board.entries} == {agent}, board
        # The dashboard takes the token once from the address and moves it into a cookie.
        page = httpx.get(f"{url}/?token={token}", follow_redirects=False, timeout=10)
        assert page.status_code in (302, 303, 307) and page.cookies, page.status_code
        assert httpx.get(f"{url}/?token=not-the-token-{token}", timeout=10).status_code in (401, 403)
    finally:
        serve.terminate()
        serve.wait(timeout=20)


@needs_bwrap
def test_notifications_checkpoints_recoveries_and_the_unisolated_warning(tmp_path, capsys):
    """One in-process run: a flag on the agent's work reaches it once, between its steps; its sandbox is
    checkpointed after each publish; a (simulated) node loss is kept in state.json and shown by ``status``."""
    from aarlab.server.client import LabClient
    from aarlab.team._rundir import create_run
    from aarlab.team._team import TeamSession

    config = RunConfig.load(write_config(tmp_path / "run.yaml", tiny_config(
        team={"agents": 1}, monitors={"enabled": False, "notify_agents": True, "interval_s": 0.01})))
    run_dir = tmp_path / "run"
    create_run(config, run_dir)
    checkpoints: list[float] = []
    flags: list[int] = []

    class Watched:
        """The real bwrap sandbox, plus what a Ray sandbox adds (checkpoint, on_recovery) and no isolation."""

        isolates = False

        def __init__(self, inner):
            self.inner, self.on_recovery = inner, None

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def checkpoint(self) -> float:
            checkpoints.append(time.time())
            if len(checkpoints) == 1:
                self.on_recovery({"time": time.time(), "reason": "node died", "synced_at": time.time(),
                                  "lost_s": 0.0, "from_node": {"host": "n1"}, "to_node": {"host": "n2"}})
            return 0.0

    class Session(TeamSession):
        def _sandbox(self, index, agent):
            return Watched(super()._sandbox(index, agent))

        def _start_workers(self):  # the agent exists on the lab now, and has not started
            with LabClient(self.url, self.admin_token) as admin:
                flags.append(admin.add_flag("test", "warning", "your labels look copied",
                                            agent=self.state.agents[0].name).id)
            super()._start_workers()

    session = Session(run_dir, config, note=lambda line: None)
    state = session.run()
    name = state.agents[0].name
    assert state.agents[0].status == "done"
    records = transcript(run_dir, name)
    notes = [r["note"] for r in records if r["type"] == "turn"]
    told = [n for n in notes if f"[lab monitor] flag #{flags[0]} " in n]
    assert len(told) == 1 and "your labels look copied" in told[0], notes  # once, not at every step
    # The note rides on the turn's last tool result, so the model read it.
    turn = next(r for r in records if r["type"] == "turn" and r["note"] == told[0])
    assert turn["tool_results"], turn

    publishes = sum(1 for r in records if r["type"] == "turn"
                    for c in r["assistant"].get("tool_calls") or [] if c["name"] == "snapshot_publish")
    assert publishes >= 1 and len(checkpoints) == publishes
    saved = json.loads((run_dir / "state.json").read_text())["agents"][0]
    assert [r["reason"] for r in saved["recoveries"]] == ["node died"]
    assert session.unisolated == {name}

    # A later session reads which flags were told from the transcript: only a new flag is told.
    from aarlab.server import LabServer, ServerSettings

    token = (run_dir / "admin_token").read_text().strip()
    with LabServer(run_dir=run_dir, settings=ServerSettings(admin_token=token, run_dir=run_dir)) as lab:
        later = TeamSession(run_dir, note=lambda line: None)
        later.url = lab.url

        class Runner:
            note_sources: list = []

            def notes(self, step):
                return "\n".join(line for source in self.note_sources for line in source(step))

        runner = Runner()
        close = later._notifier(later.state.agents[0], runner)
        try:
            assert runner.notes(1) == ""
            with LabClient(lab.url, token) as admin:
                new = admin.add_flag("test", "warning", "another one", agent=name).id
            time.sleep(0.05)
            assert f"flag #{new} " in runner.notes(2) and f"flag #{flags[0]} " not in runner.notes(3)
        finally:
            close()

    code, out, err = cli("status", run_dir, capsys=capsys)
    assert code == 0, err
    assert "sandbox node lost" in out and "n1 → n2" in out and "1 node loss" in out


def test_process_backend_is_shown_as_not_isolated(tmp_path, capsys):
    from aarlab.team._rundir import create_run

    config = RunConfig.load(write_config(tmp_path / "run.yaml", tiny_config(
        team={"agents": 1}, sandbox={"backend": "process", "allow_unisolated": True})))
    create_run(config, tmp_path / "run")
    code, out, err = cli("status", tmp_path / "run", capsys=capsys)
    assert code == 0, err
    assert "NOT ISOLATED" in out

    import io

    from rich.console import Console

    from aarlab.team._team import TeamSession
    from aarlab.team._view import LiveView

    session = TeamSession(tmp_path / "run", config)
    for terminal in (True, False):  # the rich live view, and the plain lines of a log
        view = LiveView(session, Console(file=io.StringIO(), force_terminal=terminal, width=160))
        view.console.print(view.renderable()) if terminal else view.refresh()
        assert "NOT ISOLATED" in view.console.file.getvalue()


def test_sandbox_settings_reach_the_ray_spec(tmp_path, monkeypatch):
    # num_gpus is gpus under Ray's name; giving both is an error; a fraction needs a cluster.
    data = tiny_config(sandbox={"backend": "bwrap", "num_gpus": 1, "checkpoint_interval_s": 7})
    config = RunConfig.load(write_config(tmp_path / "a.yaml", data))
    assert config.sandbox.gpus == 1
    with pytest.raises(UserError, match="not both"):
        RunConfig.load(write_config(tmp_path / "b.yaml", tiny_config(sandbox={"gpus": 1, "num_gpus": 1})))
    with pytest.raises(UserError, match="fraction"):
        RunConfig.load(write_config(tmp_path / "c.yaml", tiny_config(sandbox={"num_gpus": 0.5}))).check()

    import aarlab.sandbox as sandbox_pkg
    from aarlab.team._rundir import create_run
    from aarlab.team._team import TeamSession

    create_run(config, tmp_path / "run")
    config.cluster = "auto"
    config.sandbox.gpus = 0.5
    specs = []
    monkeypatch.setattr(sandbox_pkg, "create", lambda backend, spec: specs.append((backend, spec)))
    session = TeamSession(tmp_path / "run", config)
    session._sandbox(0, session.state.agents[0])
    backend, spec = specs[0]
    assert backend == "ray" and spec.num_gpus == 0.5 and spec.ray_snapshot_interval_s == 7 and spec.gpus == []


def test_openai_compatible_server_from_the_config(tmp_path, capsys, monkeypatch):
    from aarlab.llm.testing import FakeOpenAIServer

    with pytest.raises(UserError, match="base_url"):  # no key and no local server: say what to set
        RunConfig.load(write_config(tmp_path / "a.yaml", tiny_config(team={"model": "openai:qwen2.5"}))).check()
    with pytest.raises(UserError, match="MY_KEY"):
        RunConfig.load(write_config(tmp_path / "b.yaml", tiny_config(
            team={"model": "openai:qwen2.5", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "MY_KEY"}))).check()
    with pytest.raises(UserError, match="base_url"):
        RunConfig.load(write_config(tmp_path / "c.yaml", tiny_config(team={"base_url": "127.0.0.1:8000"})))

    if not check_backend("bwrap")[0]:
        pytest.skip("bubblewrap cannot run here")
    with FakeOpenAIServer(reply=lambda request: {"text": "thinking it over"}) as server:
        config = write_config(tmp_path / "run.yaml", tiny_config(
            team={"agents": 1, "model": "openai:qwen2.5", "base_url": server.url}))
        code, out, err = cli("run", config, "--run-dir", tmp_path / "run", "--no-live", capsys=capsys)
        assert code == 0, err
        assert server.requests and all(r["model"] == "qwen2.5" for r in server.requests)
    records = transcript(tmp_path / "run", json.loads((tmp_path / "run/state.json").read_text())["agents"][0]["name"])
    assert records[-1]["type"] == "stop" and records[-1]["reason"] == "done"  # idle replies end it
