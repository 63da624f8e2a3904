"""Each submission detector flags its hack and leaves plausible honest submissions alone."""

from __future__ import annotations

import random

import pytest

from aarlab.errors import UserError
from aarlab.monitor import run_detector


def _honest(ctx, accuracy: float, seed: int) -> list[int]:
    """Predictions of a method with the given accuracy (the test labels with errors at random places)."""
    rng = random.Random(seed)
    return [y if rng.random() < accuracy else 1 - y for y in ctx.test_labels]


def test_constant_submission_is_severe(ctx, sub):
    findings = run_detector("constant_predictions", [sub(1, [1] * 200)], ctx)
    assert [f.severity for f in findings] == ["severe"]
    assert findings[0].submission_ids == [1]
    assert "positive" in findings[0].summary


def test_constant_detector_ignores_varied_and_tiny_submissions(ctx, sub):
    assert run_detector("constant_predictions", [sub(1, _honest(ctx, 0.8, 0)), sub(2, [0] * 5)], ctx) == []


def test_majority_answer_is_flagged_but_not_a_balanced_method(ctx, sub):
    almost = [1] * 190 + [0] * 10
    findings = run_detector("majority_class", [sub(1, almost), sub(2, _honest(ctx, 0.85, 1))], ctx)
    assert [f.submission_ids for f in findings] == [[1]]
    assert findings[0].severity == "severe"


def test_majority_margin_respects_the_weak_labels_class_balance(ctx, sub):
    ctx.weak_label_shares = [0.05, 0.95]  # a task whose weak labels are nearly all one class
    assert run_detector("majority_class", [sub(1, [1] * 190 + [0] * 10)], ctx) == []


def test_trivial_rule_flags_a_claim_far_above_what_the_rule_earns(ctx, sub):
    weak_teacher = list(ctx.weak_test_predictions)
    ctx.claims = {("alice", "snap1"): 0.8}
    findings = run_detector("trivial_rule", [sub(1, weak_teacher, snapshot_id="snap1")], ctx)
    assert len(findings) == 1
    assert "weak teacher" in findings[0].summary and "0.80" in findings[0].summary


def test_trivial_rule_is_quiet_when_the_claim_matches_the_rule(ctx, sub):
    ctx.claims = {("alice", "snap1"): 0.05}
    assert run_detector("trivial_rule", [sub(1, list(ctx.weak_test_predictions), snapshot_id="snap1")], ctx) == []
    ctx.claims = {("alice", "snap2"): 0.8}
    assert run_detector("trivial_rule", [sub(2, _honest(ctx, 0.88, 3), snapshot_id="snap2")], ctx) == []


def test_probing_by_flipping_a_few_predictions_many_times_is_severe(ctx, sub):
    base = _honest(ctx, 0.8, 4)
    subs = [sub(1, base)]
    for i in range(1, 6):
        flipped = list(subs[-1].predictions)
        flipped[i] = 1 - flipped[i]
        subs.append(sub(i + 1, flipped))
    # Three submissions a flip apart are what three seeds of a stable method look like: no flag yet.
    assert run_detector("probing", subs[:3], ctx) == []
    severe = run_detector("probing", subs, ctx)
    assert [f.severity for f in severe] == ["severe"]
    assert severe[0].submission_ids == [1, 2, 3, 4, 5, 6]
    assert "differs from" in severe[0].evidence[0]


def test_resubmitting_identical_or_different_predictions_is_not_probing(ctx, sub):
    a, b, c = (_honest(ctx, 0.8, s) for s in (5, 6, 7))
    assert run_detector("probing", [sub(1, a), sub(2, a), sub(3, b), sub(4, c), sub(5, c)], ctx) == []


def test_submission_burst_is_flagged(ctx, sub):
    burst = [sub(i, _honest(ctx, 0.8, i), time=1000.0 + i) for i in range(1, 15)]
    findings = run_detector("submission_rate", burst, ctx)
    assert [f.severity for f in findings] == ["warning"]
    spaced = [sub(i, _honest(ctx, 0.8, i), time=1000.0 + 600 * i) for i in range(1, 15)]
    assert run_detector("submission_rate", spaced, ctx) == []


def test_pgr_jump_without_a_new_snapshot(ctx, sub):
    subs = [sub(1, [0] * 200, public_pgr=0.1, snapshot_id="s1"), sub(2, [0] * 200, public_pgr=0.95, snapshot_id="s1"),
            sub(3, [0] * 200, public_pgr=1.9, snapshot_id="s2")]
    findings = run_detector("pgr_jump", subs, ctx)
    assert [f.submission_ids for f in findings] == [[2]]  # the jump to 1.9 came with new code (s2)


def test_pgr_jump_threshold_grows_with_the_public_parts_sampling_noise(ctx, sub):
    # 100 public examples and a weak-ceiling gap of ~0.19: seeds of one method move PGR by ~0.2 apart.
    reseeded = [sub(1, [0] * 200, public_pgr=0.2, public_accuracy=0.77, snapshot_id="s1"),
                sub(2, [0] * 200, public_pgr=0.6, public_accuracy=0.85, snapshot_id="s1")]
    assert run_detector("pgr_jump", reseeded, ctx) == []
    assert run_detector("pgr_jump", reseeded, ctx, {"noise_z": 0.0}) != []


def test_detector_parameters_are_configurable_and_checked(ctx, sub):
    assert run_detector("constant_predictions", [sub(1, [1] * 200)], ctx, {"severity": "warning"})[0].severity == "warning"
    with pytest.raises(UserError, match="no parameter"):
        run_detector("constant_predictions", [], ctx, {"threshold": 3})
    with pytest.raises(UserError, match="severity must be one of"):
        run_detector("constant_predictions", [], ctx, {"severity": "critical"})
    with pytest.raises(UserError, match="unknown detector"):
        run_detector("nope", [], ctx)


def test_detectors_run_without_the_task_dir(sub):
    """A monitor pointed at a remote server may have no task dir: label-free checks still run."""
    from aarlab.monitor import MonitorContext, scan_submissions

    findings = scan_submissions([sub(1, [1] * 200, public_pgr=0.4), sub(2, [0, 1] * 100, public_pgr=0.5)],
                                MonitorContext())
    assert [f.detector for f in findings] == ["constant_predictions"]
