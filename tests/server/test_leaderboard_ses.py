"""The leaderboard carries every PGR's test-sampling SE beside its seed SE: the claim's (when the post states
it) and the verified re-run's (as the verifier records it)."""

from __future__ import annotations

import pytest

from aarlab.server.testing import running_lab
from aarlab.w2s.synthetic import write_synthetic_task


def test_claimed_and_verified_pgrs_carry_their_test_se(tmp_path):
    task_dir = write_synthetic_task(tmp_path / "task")
    with running_lab(tmp_path, task_dir=task_dir) as lab:
        admin = lab.client()
        ada = lab.client(admin.create_agent("ada").token)
        snapshot = ada.publish_snapshot(_tar(), "code")
        post = ada.post("result", "vanilla", "", snapshot_id=snapshot.id, entry_point="method", task=lab.task_name,
                        metrics={"pgr": 0.4, "pgr_se": 0.05, "seeds": 3, "test_se": 0.06})
        admin.record_verification(post.id, "done", verified_pgr=0.3, se=0.02, seeds=3,
                                  details={"pgr_test_se": 0.045})
        for board in (admin.leaderboard(lab.task_name), ada.leaderboard(lab.task_name)):
            entry = next(e for e in board.entries if e.post_id == post.id)
            assert entry.claimed_pgr_test_se == pytest.approx(0.06)
            assert entry.verified_pgr == pytest.approx(0.3) and entry.verified_pgr_test_se == pytest.approx(0.045)


def _tar() -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("method.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_claim_states_its_replys_pgr_grid_and_every_view_shows_a_zero_seed_se_as_below_it(tmp_path):
    from aarlab.agent.tools._lab_tools import _fmt_stat
    from aarlab.dashboard._render import fmt_pm

    task_dir = write_synthetic_task(tmp_path / "task")
    with running_lab(tmp_path, task_dir=task_dir) as lab:
        admin = lab.client()
        ada = lab.client(admin.create_agent("ada").token)
        reply = ada.submit(lab.task_name, [[0] * lab.task.n_test] * 3)
        assert reply.public_pgr_se == 0  # three identical seeds
        assert reply.public_pgr_step is not None and 0 < reply.step / reply.public_pgr_step < 1  # step / gap
        snapshot = ada.publish_snapshot(_tar(), "code")
        post = ada.post("result", "constant", "", snapshot_id=snapshot.id, entry_point="method", task=lab.task_name,
                        metrics={"pgr": reply.public_pgr, "pgr_se": reply.public_pgr_se, "seeds": 3,
                                 "pgr_step": reply.public_pgr_step}, submission_id=reply.id)
        bad = ada.post("result", "junk step", "", snapshot_id=snapshot.id, entry_point="method", task=lab.task_name,
                       metrics={"pgr": 0.1, "pgr_se": 0.0, "seeds": 3, "pgr_step": "inf"})
        board = admin.leaderboard(lab.task_name)
        entry = next(e for e in board.entries if e.post_id == post.id)
        assert entry.claimed_pgr_step == pytest.approx(reply.public_pgr_step)
        assert next(e for e in board.entries if e.post_id == bad.id).claimed_pgr_step is None
    assert "± <0.200" in _fmt_stat(0.3, 0.0, 3, 0.2) and "± &lt;0.200" in str(fmt_pm(0.3, 0.0, 3, step=0.2))
    assert "± 0.050" in _fmt_stat(0.3, 0.05, 3, 0.2) and str(fmt_pm(0.3, 0.05, 3, step=0.2)).startswith("0.300 ± 0.050")
