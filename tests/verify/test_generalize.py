"""``generalize``: one method on several prepared tasks → a table of weak, ceiling, transfer, PGR ± SE, a plot."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.server.testing import running_lab
from aarlab.verify import ComputeLimits, generalize, plot_generalization, render_table
from aarlab.w2s.synthetic import write_synthetic_task


def test_generalize_scores_each_task_and_reports_failures(tmp_path, method_tar):
    dirs = [write_synthetic_task(tmp_path / f"t{i}", seed=i, n_unlabel=200, n_test=100, name=f"syn{i}")
            for i in range(2)]
    rows = generalize("method", dirs, seeds=2, limits=ComputeLimits(timeout_s=30),
                      code_tar=method_tar("honest_nb"), method_label="nb")
    assert [r.task_dir for r in rows] == [str(d) for d in dirs]
    for row in rows:
        assert row.error is None and row.seeds == 2 and len(row.per_seed_pgr) == 2
        assert row.n_test == 100 and 0.5 < row.transfer_acc <= 1.0
        assert row.pgr == (row.per_seed_pgr[0] + row.per_seed_pgr[1]) / 2
        assert row.weak_acc < row.ceiling_acc
    broken = generalize("method", dirs[:1], seeds=2, limits=ComputeLimits(timeout_s=30),
                        code_tar=method_tar("crash"), method_label="crash")
    assert broken[0].pgr is None and broken[0].error.startswith("crash:")
    table = render_table(rows + broken)
    assert table.count("\n") == 4 and "| nb | synthetic:sentiment |" in table and "failed: crash" in table
    png = plot_generalization(rows + broken, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generalize_command_runs_a_snapshot_of_a_run(tmp_path, task_dir, method_tar, honest_claim):
    run_dir = tmp_path / "run"
    shutil.copytree(task_dir, run_dir / "task")
    with running_lab(tmp_path, task_dir=run_dir / "task") as lab:
        (run_dir / "admin_token").write_text(lab.admin_token)
        alice = lab.client(lab.client().create_agent("alice").token)
        tar = method_tar("honest_nb")
        snapshot = alice.publish_snapshot(tar, "nb")
        alice.post("result", "nb", "", snapshot_id=snapshot.id, metrics=honest_claim(tar), entry_point="method",
                   task=lab.task_name)
    others = [write_synthetic_task(tmp_path / f"other{i}", seed=10 + i, n_unlabel=150, n_test=80) for i in range(3)]
    out = tmp_path / "gen"  # one seed: this pins the command's plumbing; the function's test covers seeds
    result = CliRunner().invoke(app, ["generalize", "--snapshot", snapshot.id, "--run-dir", str(run_dir),
                                      "--task-dirs", ",".join(map(str, others)), "--seeds", "1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.count(f"| {snapshot.id[:12]}:method | synthetic:sentiment |") == 3
    rows = json.loads((out / "generalization.json").read_text())
    assert [r["seeds"] for r in rows] == [1, 1, 1] and all(r["error"] is None for r in rows)
    assert (out / "generalization.png").stat().st_size > 1000


def test_generalize_command_refuses_ambiguous_requests(tmp_path):
    runner = CliRunner()
    both = runner.invoke(app, ["generalize", "--method", "vanilla", "--snapshot", "x", "--task-dirs", "d"])
    assert both.exit_code != 0 and "exactly one of" in str(both.exception)
    unknown = runner.invoke(app, ["generalize", "--method", "nope", "--task-dirs", "d"])
    assert "unknown method 'nope'" in str(unknown.exception)


@pytest.mark.slow
def test_prepared_tasks_are_cached_per_dataset_and_models(tmp_path, monkeypatch):
    from aarlab.verify._prepare import prepare_cached
    from aarlab.w2s.taskdir import TaskDir

    kwargs = dict(weak="hashbow-weak", strong="hashbow-strong", size=1500, seeds=1, cache_root=tmp_path)
    first = prepare_cached("synthetic:1500", **kwargs)
    assert TaskDir(first, heldout=True).check().info().strong_model == "hashbow-strong"

    def no_prepare(**_):
        raise AssertionError("prepared again instead of using the cache")

    monkeypatch.setattr("aarlab.w2s.prepare.prepare", no_prepare)
    assert prepare_cached("synthetic:1500", **kwargs) == first
    with pytest.raises(AssertionError, match="prepared again"):
        prepare_cached("synthetic:1500", **dict(kwargs, strong="hashbow-mid"))  # other models: another task
