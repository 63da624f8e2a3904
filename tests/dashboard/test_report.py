"""``aarlab report`` and ``aarlab export --format inspect`` on finished and crashed runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from dashboard_testdata import transcript_records, write_transcript

from aarlab.dashboard import build_report, export_inspect
from aarlab.errors import UserError


@pytest.fixture(scope="module")
def run_copy(populated, tmp_path_factory):
    """A copy of the populated run directory, as a finished run leaves it (with generalization results)."""
    dest = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(populated.run_dir, dest)
    (dest / "generalization").mkdir()
    (dest / "generalization" / "generalization.json").write_text(json.dumps([
        {"method": "aarlab.w2s.methods.logconf", "dataset": "synthetic:sentiment", "task_dir": "/t", "strong_model": "s",
         "weak_acc": 0.7, "ceiling_acc": 0.9, "transfer_acc": 0.8, "transfer_acc_se": 0.01, "pgr": 0.5, "pgr_se": 0.05,
         "seeds": 3},
        {"method": "aarlab.w2s.methods.logconf", "dataset": "other", "task_dir": "/u", "error": "timed out", "seeds": 0},
    ]))
    return dest


def test_report_is_self_contained_and_has_every_section(run_copy):
    files = build_report(run_copy)
    html = files.html.read_text()
    for section in ("setup", "team", "leaderboard", "plots", "best", "flags", "cost", "generalization"):
        assert f'id="{section}"' in html, section
    assert html.count("<svg") >= 5
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert "<script" not in html and 'rel="stylesheet"' not in html
    assert "0.410 ± 0.040" in html and "quarantined" in html  # verified numbers, flags
    assert "Auxiliary confidence loss" in html  # directions and the best methods' descriptions
    assert "timed out" in html and "synthetic:sentiment" in html
    md = files.markdown.read_text()
    assert "| rank | result |" in md and "0.410 ± 0.040 (n=3)" in md and "## Generalization" in md
    assert "![verified](plots/verified.svg)" in md and (files.html.parent / "plots" / "verified.svg").exists()
    assert files.html.parent == run_copy / "report"


def test_report_on_a_crashed_run_without_a_database(tmp_path):
    run = tmp_path / "crashed"
    write_transcript(run / "transcripts" / "alice.jsonl", transcript_records("alice", 12, 1_700_000_000), torn=True)
    (run / "state.json").write_text('{"status": "crash')  # torn state file too
    files = build_report(run, tmp_path / "out")
    html = files.html.read_text()
    assert "alice" in html and "$0.1200" in html  # 12 turns at $0.01: the torn line is not counted
    assert not (run / "lab.db").exists()  # the report does not create a database in the run


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="does not look like a run"):
        build_report(tmp_path)
    with pytest.raises(UserError, match="no such run directory"):
        build_report(tmp_path / "missing")


def test_report_cli(run_copy, tmp_path):
    from typer.testing import CliRunner

    from aarlab.cli import app

    out = tmp_path / "cli-report"
    result = CliRunner().invoke(app, ["report", str(run_copy), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").exists() and (out / "report.md").exists() and "wrote" in result.output


def test_export_inspect_writes_one_log_per_agent(run_copy, tmp_path):
    written = export_inspect(run_copy, tmp_path / "logs")
    assert sorted(p.name.split("_aarlab_")[1] for p in written) == ["alice.json", "bob.json", "carol.json"]
    log = json.loads(next(p for p in written if p.name.endswith("bob.json")).read_text())
    sample = log["samples"][0]
    assert sample["metadata"]["turns"] == 70  # the torn last line is skipped
    assert sum(1 for m in sample["messages"] if m["role"] == "tool") == 70
    assert any(m.get("error") for m in sample["messages"] if m["role"] == "tool")
    with pytest.raises(UserError, match="no transcript for agent"):
        export_inspect(run_copy, tmp_path / "x", agents=["zed"])


def test_export_inspect_logs_read_back_with_inspect_ai(run_copy, tmp_path):
    log_api = pytest.importorskip("inspect_ai.log", reason="inspect-ai is not installed (extra: inspect)")
    written = export_inspect(run_copy, tmp_path / "logs")
    for path in written:
        log = log_api.read_eval_log(str(path))
        assert log.samples and log.samples[0].id in ("alice", "bob", "carol")
        assert len(log.samples[0].messages) > 60


def test_export_cli_refuses_unknown_formats_in_one_line(run_copy):
    # Through the real entry point: a user mistake is one line on stderr and exit code 2.
    result = subprocess.run([sys.executable, "-c", "import sys; from aarlab.cli import main; sys.argv[0] = 'aarlab'; main()",
                             "export", str(run_copy), "--format", "csv"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown export format" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_inspect_carries_background_job_events(tmp_path):
    from aarlab.dashboard._inspect import transcript_to_log_dict

    records = [
        {"type": "start", "time": 1.0, "agent": "ada", "system_prompt": "s", "first_message": "go",
         "config": {"model": "scripted:demo"}},
        {"type": "job", "time": 2.0, "agent": "ada", "event": "start", "name": "seed-0",
         "command": "python -m m --seed 0", "slot": 0, "gpus": [], "log": ".jobs/seed-0.log"},
        {"type": "job", "time": 9.0, "agent": "ada", "event": "lost", "name": "seed-0",
         "command": "python -m m --seed 0", "slot": 0, "gpus": [], "log": ".jobs/seed-0.log", "state": "lost",
         "exit_code": None, "runtime_s": 7.0},
        {"type": "stop", "time": 10.0, "agent": "ada", "reason": "done", "step": 1},
    ]
    log = transcript_to_log_dict(records, "ada", "run")
    sample = log["samples"][0]
    assert [j["event"] for j in sample["metadata"]["jobs"]] == ["start", "lost"]
    shown = [m["content"] for m in sample["messages"] if (m.get("metadata") or {}).get("aarlab_job")]
    assert shown[0].startswith("[job start: seed-0] $ python -m m --seed 0")
    assert "lost" in shown[1] and "7.0 s" in shown[1]
    # job notes are not part of the sample's input (what the agent was first given)
    assert all("[job" not in m["content"] for m in sample["input"])
    log_api = pytest.importorskip("inspect_ai.log", reason="inspect-ai is not installed (extra: inspect)")
    path = tmp_path / "log.json"
    path.write_text(json.dumps(log))
    assert len(log_api.read_eval_log(str(path)).samples[0].messages) == 4
