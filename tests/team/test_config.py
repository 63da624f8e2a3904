"""Run configs: validation with one clear line, directions, and that a bad config leaves no run dir behind."""

from __future__ import annotations

import os

import pytest
from team_helpers import cli, tiny_config, write_config

from aarlab.config import DEMO_MODEL, RunConfig
from aarlab.errors import UserError
from aarlab.team import BUILTIN_DIRECTIONS, assign_directions


def _bad_run(tmp_path, capsys, config_path, *extra) -> str:
    run_dir = tmp_path / "runs" / "bad"
    code, out, err = cli("run", config_path, "--run-dir", run_dir, "--no-live", *extra, capsys=capsys)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    assert not run_dir.exists() and not (tmp_path / "runs").exists()
    return lines[0]


def test_unknown_dataset_is_one_line_and_leaves_nothing(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", {**tiny_config(), "task": {"dataset": "no_such_set:reviews"}})
    assert "task.dataset: unknown dataset 'no_such_set:reviews'" in _bad_run(tmp_path, capsys, config)


def test_negative_budget_names_the_key(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config(budget={"total": {"usd": -1}}))
    assert "budget.total.usd" in _bad_run(tmp_path, capsys, config)


def test_negative_budget_flag(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config())
    assert "budget.total.usd" in _bad_run(tmp_path, capsys, config, "--budget-usd", "-3")


def test_unknown_provider(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config(team={"model": "nosuchprovider:big-model"}))
    assert "nosuchprovider" in _bad_run(tmp_path, capsys, config)


def test_missing_api_key_for_a_named_provider(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config(team={"model": "anthropic:claude-sonnet-4-5"}))
    assert "ANTHROPIC_API_KEY" in _bad_run(tmp_path, capsys, config)


def test_unreadable_config_file(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config())
    config.chmod(0)
    try:
        if not os.access(config, os.R_OK):
            assert "cannot read config file" in _bad_run(tmp_path, capsys, config)
    finally:
        config.chmod(0o600)
    # Also as root, who can read anything: a directory and a file that is not text cannot be read either.
    (tmp_path / "dir.yaml").mkdir()
    assert "cannot read config file" in _bad_run(tmp_path, capsys, tmp_path / "dir.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    assert "binary.yaml" in _bad_run(tmp_path, capsys, tmp_path / "binary.yaml")


def test_missing_config_file_and_typo_key(tmp_path, capsys):
    assert "does not exist" in _bad_run(tmp_path, capsys, tmp_path / "nope.yaml")
    config = write_config(tmp_path / "c.yaml", {**tiny_config(), "teem": {"agents": 2}})
    assert "teem" in _bad_run(tmp_path, capsys, config)


def test_unknown_direction_and_process_backend_without_consent(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config(team={"directions": ["nonsense"]}))
    assert "nonsense" in _bad_run(tmp_path, capsys, config)
    config = write_config(tmp_path / "d.yaml", tiny_config(sandbox={"backend": "process"}))
    assert "allow_unisolated" in _bad_run(tmp_path, capsys, config)


def test_bad_cluster_address(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config())
    assert "cluster" in _bad_run(tmp_path, capsys, config, "--cluster", "http://somewhere")


def test_flags_and_env_override_the_file(tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config(team={"agents": 5}))
    config = RunConfig.load(path, {"budget.total.usd": 2.5, "team.agents": None},
                            environ={"AARLAB_RUN__BUDGET__TOTAL__HOURS": "0.5", "AARLAB_RUN__TEAM__AGENTS": "4"})
    assert (config.team.agents, config.budget.total.usd, config.budget.total.hours) == (4, 2.5, 0.5)


def test_no_model_and_no_key_means_the_demo_researcher():
    config = RunConfig.load(None, environ={})
    assert config.agent_models({}) == [DEMO_MODEL] * config.team.agents
    assert config.agent_models({"ANTHROPIC_API_KEY": "k"})[0].startswith("anthropic:")


def test_directions_round_robin_user_added_and_homogeneous(tmp_path):
    nine = assign_directions(11)
    assert [d.name for d in nine[:9]] == list(BUILTIN_DIRECTIONS) and nine[9].name == BUILTIN_DIRECTIONS[0]
    for d in nine[:9]:
        assert d.title and len(d.text) > 300  # a real brief, not a placeholder
    mine = tmp_path / "mine.md"
    mine.write_text("# Curriculum by length\n\nTrain on short inputs first, then longer ones.")
    mixed = assign_directions(3, ["mine.md", "distillation", "Look for spurious features in the weak labels"],
                              base_dir=tmp_path)
    assert [d.title for d in mixed][:2] == ["Curriculum by length", mixed[1].title]
    assert mixed[1].name == "distillation" and "spurious" in mixed[2].text
    same = assign_directions(4, homogeneous=True)
    assert len({d.text for d in same}) == 1 and same[0].name == "general"
    with pytest.raises(UserError, match="does not exist"):
        assign_directions(1, ["missing.md"], base_dir=tmp_path)


def test_a_saved_config_loads_again(tmp_path):
    config = RunConfig.load(write_config(tmp_path / "c.yaml", tiny_config()))
    (tmp_path / "saved.yaml").write_text(config.to_yaml())
    again = RunConfig.load(tmp_path / "saved.yaml")
    assert again.model_dump() == config.model_dump()


def test_homogeneous_flag_reaches_the_run(tmp_path):
    config = RunConfig.load(write_config(tmp_path / "c.yaml", tiny_config()), {"team.homogeneous": True})
    assert config.team.homogeneous
