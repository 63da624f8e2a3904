"""A known method of the w2s library, claimed honestly, verifies within noise of its claim."""

from __future__ import annotations

import pytest

from aarlab.server.testing import running_lab
from aarlab.verify import ComputeLimits, TaskDirScorer, VerificationWorker, run_method
from aarlab.w2s.scoring import aggregate
from aarlab.w2s.synthetic import write_synthetic_task

ENTRY = "aarlab.w2s.methods.vanilla"


@pytest.mark.slow
def test_an_honest_known_method_verifies_within_noise(tmp_path, method_tar):
    # 800 weak-labelled examples: with a few hundred, which examples the strong model trains on moves its
    # PGR by more than its seed SE, and a fresh held-out sample is then (rightly) flagged as not transferring
    task_dir = write_synthetic_task(tmp_path / "task", n_unlabel=800, n_test=300)
    # the claim, as an agent measures it: two seeds on the main split, scored on the public test part
    limits = ComputeLimits(timeout_s=300)
    scorer = TaskDirScorer(task_dir, heldout=False, part="public")
    scores = [scorer.score(run_method(ENTRY, task_dir / "public", s, limits).predictions) for s in range(2)]
    stats = aggregate(scores)
    claim = {"pgr": stats.pgr, "pgr_se": stats.pgr_se, "seeds": 2, "n_examples": scores[0].n_examples}
    with running_lab(tmp_path, task_dir=task_dir, min_result_seeds=2) as lab:
        alice = lab.client(lab.client().create_agent("alice").token)
        snapshot = alice.publish_snapshot(method_tar("notes", module="NOTES", source="vanilla, as shipped"), "vanilla")
        post = alice.post("result", "vanilla fine-tune", "", snapshot_id=snapshot.id, metrics=claim,
                          entry_point=ENTRY, task=lab.task_name)
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token, {"seeds": 2, "timeout_s": 300},
                                    task_dir=task_dir)
        assert worker.run_once() == 1
        verification = lab.client().verifications(post_id=post.id)[-1]
    assert verification.status == "done", verification.reason
    gap = verification.details["gap_test"]
    assert not gap["flagged"], gap
    assert abs(verification.verified_pgr - claim["pgr"]) <= gap["threshold"]
