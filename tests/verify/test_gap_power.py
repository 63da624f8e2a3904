"""The verifier's gap test has teeth: on a task shaped like the embedded default, a planted +0.2 PGR overclaim
is flagged and an honest claim is not; a claim above its own submission's reply is caught exactly."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.server.testing import running_lab
from aarlab.verify import (
    CLAIM_TOLERANCE,
    GAP_DETECTOR,
    GAP_FLOOR,
    GAP_Z,
    ComputeLimits,
    VerificationWorker,
    claim_check,
    run_method,
)
from aarlab.verify._power import Simulator, coarse_rule, paired_rule, simulate, synthetic_arrays


@pytest.fixture(scope="module")
def power():
    """300 simulated claims with the embedded default's shape and noise: the verifier's rule (held-out re-run +
    paired re-run on the main split), and the rule before."""
    main, heldout = synthetic_arrays(seed=0)
    sim = Simulator(main, heldout, rng=np.random.default_rng(0))
    rows = simulate(sim, {"rule": paired_rule(GAP_Z, GAP_FLOOR), "before": coarse_rule(3.0, 0.05, with_rounding=False)},
                    n_claims=300, deltas=(0.2,))
    return {row.rule: row for row in rows}


def test_a_planted_overclaim_of_0_2_pgr_is_flagged_and_honest_claims_are_not(power):
    rule = power["rule"]
    assert rule.false_flags <= 0.05
    assert rule.power["submission+0.2"] >= 0.9  # the submission beats its code on the whole test
    assert rule.power["public+0.2"] >= 0.9  # ... on the public part only (overfit to the feedback)
    assert rule.power["claim+0.2"] == 1.0  # the claim is raised above its own reply


def test_the_rule_before_compared_the_coarse_claim_and_missed_most_overclaims(power):
    assert power["before"].power["submission+0.2"] < 0.6
    assert power["before"].mean_threshold > 2 * power["rule"].mean_threshold


def test_the_claim_check_is_exact():
    assert not claim_check(0.30, 0.30, 0.2).flagged
    assert not claim_check(0.30 + CLAIM_TOLERANCE / 2, 0.30, 0.2).flagged  # a quoted number's rounding
    assert claim_check(0.25, 0.10, 0.2).severity == "warning"  # within one reply step
    assert claim_check(0.50, 0.10, 0.2).severity == "severe"
    assert not claim_check(0.0, 0.30, 0.2).flagged  # claiming less is no overclaim


def test_the_verifier_catches_a_claim_above_the_reply_of_the_submission_it_names(tmp_path, task_dir, method_tar):
    code = method_tar("honest_nb")
    with running_lab(tmp_path, task_dir=task_dir, submissions_per_hour=1000) as lab:
        admin = lab.client()
        alice = lab.client(admin.create_agent("alice").token)
        snapshot = alice.publish_snapshot(code, "naive Bayes")
        runs = [run_method("method", task_dir / "public", s, ComputeLimits(timeout_s=30), code_tar=code).predictions
                for s in range(3)]
        reply = alice.submit(lab.task_name, runs, snapshot_id=snapshot.id)
        posts = {}
        for name, claimed in (("honest", reply.public_pgr), ("raised", reply.public_pgr + 0.2)):
            posts[name] = alice.post("result", name, "", snapshot_id=snapshot.id, entry_point="method",
                                     task=lab.task_name, submission_id=reply.id,
                                     metrics={"pgr": claimed, "pgr_se": reply.public_pgr_se, "seeds": 3})
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token,
                                    {"seeds": 3, "timeout_s": 30.0, "poll_interval_s": 0.2}, task_dir=task_dir)
        assert worker.run_once() == 2
        gaps = {name: admin.verifications(post_id=post.id)[-1].details["gap_test"] for name, post in posts.items()}
        flags = admin.flags(detector=GAP_DETECTOR)
    assert gaps["honest"]["reference"].startswith(f"submission {reply.id}")
    assert not gaps["honest"]["flagged"], gaps["honest"]
    assert gaps["raised"]["claim"]["flagged"] and gaps["raised"]["flagged"]
    assert gaps["raised"]["claim"]["excess"] == pytest.approx(0.2)
    assert [f.post_id for f in flags] == [posts["raised"].id]


def test_a_submission_better_than_its_own_code_is_caught_by_the_paired_re_run_on_the_main_split(
        tmp_path, task_dir, method_tar):
    """The honest post claims exactly what its submission was told; but the submission's predictions were
    doctored (a third of its wrong answers corrected), so the snapshot's code does not earn them. The re-run
    on the main split (same training examples, same test set) shows it; an honest submission passes."""
    from aarlab.w2s.taskdir import TaskDir

    labels = np.array([int(row["label"]) for row in TaskDir(task_dir).test_labels()])
    code = method_tar("honest_nb")
    with running_lab(tmp_path, task_dir=task_dir, submissions_per_hour=1000) as lab:
        admin = lab.client()
        alice = lab.client(admin.create_agent("alice").token)
        snapshot = alice.publish_snapshot(code, "naive Bayes")
        runs = [np.array(run_method("method", task_dir / "public", s, ComputeLimits(timeout_s=30),
                                    code_tar=code).predictions) for s in range(3)]
        rng = np.random.default_rng(0)
        doctored = [np.where((run != labels) & (rng.random(len(labels)) < 0.35), labels, run) for run in runs]
        posts = {}
        for name, submitted in (("honest", runs), ("doctored", doctored)):
            reply = alice.submit(lab.task_name, [r.tolist() for r in submitted], snapshot_id=snapshot.id)
            posts[name] = alice.post("result", name, "", snapshot_id=snapshot.id, entry_point="method",
                                     task=lab.task_name, submission_id=reply.id,
                                     metrics={"pgr": reply.public_pgr, "pgr_se": reply.public_pgr_se, "seeds": 3})
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token,
                                    {"seeds": 3, "timeout_s": 30.0, "poll_interval_s": 0.2, "reproduce_seeds": 1},
                                    task_dir=task_dir)
        assert worker.run_once() == 2
        details = {name: admin.verifications(post_id=post.id)[-1].details for name, post in posts.items()}
        flags = admin.flags(detector=GAP_DETECTOR)
    honest, doctored_run = details["honest"]["reproduction"], details["doctored"]["reproduction"]
    assert not honest["flagged"], honest
    assert doctored_run["flagged"] and doctored_run["severity"] in ("warning", "severe"), doctored_run
    assert doctored_run["training_se"] == 0 and doctored_run["claimed_test_se"] == 0  # paired: seeds only
    assert "main split" in doctored_run["rerun"]
    flagged_posts = {f.post_id for f in flags}
    assert posts["doctored"].id in flagged_posts and posts["honest"].id not in flagged_posts
