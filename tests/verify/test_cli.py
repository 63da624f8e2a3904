"""``aarlab verify RUN_DIR`` on a stopped run: it starts the run's lab, re-runs, records, prints a table."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.server import LabServer
from aarlab.server.testing import running_lab


def test_verify_command_reverifies_a_post_reproducibly(tmp_path, task_dir, method_tar, honest_claim):
    run_dir = tmp_path / "run"
    shutil.copytree(task_dir, run_dir / "task")
    with running_lab(tmp_path, task_dir=run_dir / "task") as lab:
        (run_dir / "admin_token").write_text(lab.admin_token)
        alice = lab.client(lab.client().create_agent("alice").token)
        tar = method_tar("honest_nb")
        snapshot = alice.publish_snapshot(tar, "nb")
        post = alice.post("result", "nb", "", snapshot_id=snapshot.id, metrics=honest_claim(tar),
                          entry_point="method", task=lab.task_name)
    runner = CliRunner()
    history = []
    for args in (["--seeds", "1"], ["--post", str(post.id), "--seeds", "1"]):
        result = runner.invoke(app, ["verify", str(run_dir), *args])
        assert result.exit_code == 0, result.output
        assert f"| {post.id} | done |" in result.output
        with LabServer(run_dir=run_dir) as lab, lab.client() as admin:
            history.append(admin.verifications(post_id=post.id)[-1])
    assert history[0].id != history[1].id  # --post re-verified it
    hashes = [[s["predictions_sha256"] for s in v.per_seed] for v in history]
    assert len(hashes[0]) == 1 and hashes[0] == hashes[1]  # same snapshot, seeds and data: same predictions


def test_verify_command_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["verify", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "does not exist" in str(result.exception)
