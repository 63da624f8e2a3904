"""`aarlab flags` on a run directory whose server is not running: it reads and resolves the database."""

from __future__ import annotations

import json
import time

import pytest
import typer
from typer.testing import CliRunner

from aarlab.monitor import cli as monitor_cli
from aarlab.store import open_store
from aarlab.store import tables as t

# Mounted as `aarlab.cli` mounts it, without importing the other packages' commands.
app = typer.Typer()
app.command("flags")(monitor_cli.flags)
app.command("other")(lambda: None)  # with two commands typer keeps the command name, like the real CLI


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    store = open_store(run_dir=run)
    now = time.time()
    with store.write() as conn:
        alice = conn.execute(t.agents.insert().values(name="alice", direction="", token_hash="a" * 64,
                                                      created=now)).inserted_primary_key[0]
        conn.execute(t.flags.insert().values(
            detector="probing", severity="severe", status="open", agent_id=alice, created=now, key="k1",
            summary="5 near-duplicate submissions", evidence={"lines": ["submission 2 differs from 1 in 1 of 200"],
                                                              "submission_ids": [1, 2]}))
        conn.execute(t.flags.insert().values(
            detector="network", severity="warning", status="cleared", agent_id=alice, created=now, key="k2",
            summary="tried to reach the network", evidence={"lines": ["step 3 bash: curl x"]}, resolved=now))
    store.close()
    (run / "admin_token").write_text("t" * 32)
    return run


def test_lists_open_flags_with_evidence(run_dir):
    result = CliRunner().invoke(app, ["flags", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "#1" in result.output and "probing" in result.output
    assert "> submission 2 differs from 1 in 1 of 200" in result.output
    assert "network" not in result.output  # cleared: only with --all
    everything = CliRunner().invoke(app, ["flags", str(run_dir), "--all", "--agent", "alice", "--json"])
    assert [f["detector"] for f in json.loads(everything.output)] == ["probing", "network"]


def test_clear_and_confirm_update_the_database(run_dir):
    result = CliRunner().invoke(app, ["flags", str(run_dir), "confirm", "1", "--note", "it flipped labels"])
    assert result.exit_code == 0, result.output
    assert "flag #1 confirmed" in result.output
    rows = json.loads(CliRunner().invoke(app, ["flags", str(run_dir), "--all", "--json"]).output)
    assert rows[0]["status"] == "confirmed" and rows[0]["note"] == "it flipped labels"
    store = open_store(run_dir=run_dir)
    with store.read() as conn:
        kinds = [r.kind for r in conn.execute(t.events.select()).all()]
    store.close()
    assert "flag" in kinds


def test_user_mistakes_are_one_line_errors(run_dir, tmp_path):
    from aarlab.errors import UserError

    runner = CliRunner()
    for args in (["flags", str(run_dir), "delete", "1"], ["flags", str(run_dir), "clear"],
                 ["flags", str(run_dir), "clear", "99"], ["flags", str(tmp_path / "nope")]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, UserError), (args, result.output)
