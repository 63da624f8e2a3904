"""The live view and `aarlab status` read transcripts incrementally and never trip on a half-written line."""

from __future__ import annotations

import json

from aarlab.team._view import TranscriptTail, describe_action


def _turn(step: int, command: str, cost: float) -> str:
    return json.dumps({"type": "turn", "step": step, "time": 0, "agent": "ada", "cost_usd": cost,
                       "usage": {"input_tokens": 100, "output_tokens": 10},
                       "assistant": {"role": "assistant", "tool_calls": [
                           {"id": f"c{step}", "name": "bash", "arguments": {"command": command}}]},
                       "tool_results": []})


def test_transcript_tail_follows_appends_and_waits_for_torn_lines(tmp_path):
    path = tmp_path / "ada.jsonl"
    tail = TranscriptTail(path)
    assert tail.poll().step == 0  # no file yet
    first, second = _turn(1, "ls", 0.5), _turn(2, "python -m vanilla --seed 0", 0.25)
    path.write_text(first + "\n" + second[:30])  # the writer is in the middle of line 2
    progress = tail.poll()
    assert (progress.step, progress.cost_usd, progress.tokens) == (1, 0.5, 110)
    assert progress.last_action == "bash: ls"
    with open(path, "a") as fh:
        fh.write(second[30:] + "\n" + json.dumps({"type": "stop", "reason": "done", "step": 2}) + "\n")
    progress = tail.poll()
    assert (progress.step, progress.cost_usd, progress.stop) == (2, 0.75, "done")
    assert progress.last_action.startswith("bash: python -m vanilla")


def test_describe_action_is_short():
    calls = [{"name": "write_file", "arguments": {"path": "method/x.py", "content": "x" * 5000}},
             {"name": "forum_read", "arguments": {}}, {"name": "leaderboard", "arguments": {}}]
    assert describe_action({"tool_calls": calls}) == "write_file: method/x.py; forum_read (+1)"
    assert describe_action({"content": "I am done.\nBye"}) == "said: I am done. Bye"


def test_live_view_renders_a_fresh_run_and_cluster_maps_to_ray_sandboxes(tmp_path, monkeypatch):
    import io

    from rich.console import Console
    from team_helpers import tiny_config, write_config

    import aarlab.sandbox
    from aarlab.config import RunConfig
    from aarlab.team import TeamSession, create_run
    from aarlab.team._view import LiveView

    config = RunConfig.load(write_config(tmp_path / "c.yaml", tiny_config(sandbox={"gpus": 1, "num_cpus": 2})),
                            {"cluster": "ray://10.0.0.1:10001"})
    monkeypatch.setattr(RunConfig, "check", lambda self: None)  # no Ray needed to render or build specs
    create_run(config, tmp_path / "run")
    session = TeamSession(tmp_path / "run", config)
    out = io.StringIO()
    view = LiveView(session, Console(file=out, force_terminal=True, width=160))
    view.console.print(view.renderable())
    text = out.getvalue()
    for agent in session.state.agents:
        assert agent.name in text and agent.direction in text
    assert "0/3 agents finished" in text and "of 45m00s" in text

    made = []
    monkeypatch.setattr(aarlab.sandbox, "create", lambda backend, spec: made.append((backend, spec)))
    session._sandbox(1, session.state.agents[1])
    backend, spec = made[0]
    assert backend == "ray" and spec.ray_address == "ray://10.0.0.1:10001"
    assert (spec.num_gpus, spec.num_cpus, spec.gpus) == (1.0, 2.0, [])
    assert spec.mounts[0].target.as_posix() == "/task" and spec.workspace.name == session.state.agents[1].name


def test_the_leaderboard_table_shows_every_pgr_with_its_seed_se_and_test_se(tmp_path):
    from rich.console import Console

    from aarlab.server import schemas as m
    from aarlab.team._view import LabView, TeamSnapshot

    entry = m.LeaderboardEntry(
        rank=1, post_id=1, title="vanilla", author="ada", agent_id=1, method="m", snapshot_id="s", created=0.0,
        claimed_pgr=0.375, claimed_pgr_se=0.198, claimed_pgr_test_se=0.05, claimed_seeds=3, public_pgr=0.373,
        public_pgr_se=0.032, public_pgr_test_se=0.034, private_pgr=0.431, private_pgr_se=0.036,
        private_pgr_test_se=0.033, submission_id=1, verified_pgr=0.281, verified_pgr_se=0.011,
        verified_pgr_test_se=0.039, verified_seeds=3, verification_status="done", gap=0.09)
    snapshot = TeamSnapshot(tmp_path)
    snapshot.lab = LabView(leaderboard=m.Leaderboard(task="t", sort="final", baselines=[], entries=[entry]))
    console = Console(width=250, record=True)
    console.print(snapshot.leaderboard_table())
    text = console.export_text()
    for cell in ("0.38 ± 0.20 ± 0.05", "0.37 ± 0.03 ± 0.03", "0.43 ± 0.04 ± 0.03", "0.28 ± 0.01 ± 0.04",
                 "mean ± seed SE ± test SE"):
        assert cell in text, text
    # the agents' view has no private numbers: no private column
    agents = m.Leaderboard(task="t", sort="final", baselines=[], entries=[entry.model_copy(update={
        "private_pgr": None, "private_pgr_se": None, "private_pgr_test_se": None})])
    snapshot.lab = LabView(leaderboard=agents)
    console = Console(width=250, record=True)
    console.print(snapshot.leaderboard_table())
    assert "private PGR" not in console.export_text()


def test_a_claimed_seed_se_rounded_to_zero_by_the_reply_reads_as_below_its_grid():
    from aarlab.team._view import _fmt

    # the coarse reply's seed SE was 0 on a PGR grid of 0.2: the spread is below the grid, not zero
    assert _fmt(0.31, 0.0, 0.05, step=0.2) == "0.31 ± <0.20 ± 0.05"
    assert _fmt(0.31, 0.2, 0.05, step=0.2) == "0.31 ± 0.20 ± 0.05"  # a spread the grid shows is shown
    assert _fmt(0.31, 0.0, 0.05) == "0.31 ± 0.00 ± 0.05"  # no grid stated: what the post says


def test_post_titles_show_a_seed_se_below_the_replys_grid_as_such():
    from aarlab.team._demo import pm_grid

    assert pm_grid(0.35, 0.0, 0.194) == "0.35 ± <0.19"
    assert pm_grid(0.35, 0.19, 0.194) == "0.35 ± 0.19"
    assert pm_grid(0.35, 0.0, None) == "0.35 ± 0.00"
