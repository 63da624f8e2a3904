import math
import time

import numpy as np
import pytest

from aarlab.errors import UserError
from aarlab.w2s import aggregate, score, score_task
from aarlab.w2s.scoring import (
    TRAINING_SAMPLE_PGR_SD,
    BaselineSeeds,
    PartScorer,
    SeedStats,
    baseline_seed_se,
    compare_independent,
    pgr,
    total_se,
    training_sample_sd,
)
from aarlab.w2s.taskdir import TaskDir


def test_pgr_is_computed_on_the_scored_part_only():
    labels = [0, 1, 0, 1]
    weak = [[0, 0, 0, 0]]  # right on 0 and 2
    ceiling = [[0, 1, 0, 1]]
    s = score([0, 1, 1, 1], labels, weak, ceiling)
    assert (s.transfer_acc, s.weak_acc, s.ceiling_acc, s.pgr) == (0.75, 0.5, 1.0, 0.5)
    part = score([0, 1, 1, 1], labels, weak, ceiling, mask=[False, True, False, True])
    assert (part.transfer_acc, part.weak_acc, part.pgr, part.n_examples) == (1.0, 0.0, 1.0, 2)


def test_pgr_is_undefined_when_the_ceiling_does_not_beat_weak():
    with pytest.raises(UserError, match="PGR is undefined"):
        score([0, 1], [0, 1], [[0, 1]], [[0, 1]])


def test_aggregate_reports_mean_and_standard_error():
    scores = [score(p, [0, 1, 0, 1], [[0, 0, 0, 0]], [[0, 1, 0, 1]]) for p in ([0, 1, 1, 1], [0, 1, 0, 1])]
    stats = aggregate(scores)
    assert stats.pgr == 0.75 and stats.pgr_se == pytest.approx(0.25) and stats.n_seeds == 2


def test_score_task_reads_hidden_labels_and_validates_predictions(synthetic_task):
    labels = [row["label"] for row in TaskDir(synthetic_task).test_labels()]
    perfect = score_task(synthetic_task, labels)
    assert perfect.transfer_acc == 1.0 and perfect.pgr > 1.0
    public = score_task(synthetic_task, labels, part="public")
    assert public.n_examples == sum(row["part"] == "public" for row in TaskDir(synthetic_task).test_labels())
    with pytest.raises(UserError, match="79 predictions for 80 test inputs"):
        score_task(synthetic_task, labels[:-1])
    with pytest.raises(UserError, match="prediction 0 is 0.5"):
        score_task(synthetic_task, [0.5] + labels[1:])


def _noisy(rng, labels, accuracy):
    return np.where(rng.random(len(labels)) < accuracy, labels, 1 - labels)


@pytest.fixture
def part():
    """A 10,000-example part: weak teacher ~0.72 and ceiling ~0.86 over three seeds each."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 10_000)
    weak = [_noisy(rng, labels, 0.72) for _ in range(3)]
    ceiling = [_noisy(rng, labels, 0.86) for _ in range(3)]
    return rng, labels, PartScorer(labels, weak, ceiling)


def test_test_se_is_the_paired_bootstrap_over_test_examples(part):
    rng, labels, scorer = part
    transfer = _noisy(rng, labels, 0.76)
    # The reference: an index-matrix bootstrap recomputing all three accuracies on the same resampled examples.
    idx = np.random.default_rng(1).integers(0, len(labels), (400, len(labels)))
    t, w, c = (transfer == labels).astype(float)[idx].mean(1), scorer.weak_correct[idx].mean(1), \
        scorer.ceiling_correct[idx].mean(1)
    reference = ((t - w) / (c - w)).std()
    se = scorer.score(transfer).pgr_test_se
    assert se == pytest.approx(reference, rel=0.15)
    # Binomial arithmetic for independent errors: sd of (t − w) − PGR·(c − w) per example, over √n and the gap.
    assert 0.02 < se < 0.05


def test_test_se_is_deterministic_and_takes_well_under_half_a_second_for_1000_replicates(part):
    rng, labels, scorer = part
    transfer = _noisy(rng, labels, 0.76)
    started = time.perf_counter()
    first = scorer.test_se(transfer, n_boot=1000)
    assert time.perf_counter() - started < 0.5
    assert scorer.test_se(transfer, n_boot=1000) == first


def test_a_method_agreeing_with_the_teacher_except_where_the_ceiling_fixes_it_has_a_small_test_se():
    # Paired: what drives the SE is disagreement with the baselines on the same examples, not accuracy.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 5000)
    weak = _noisy(rng, labels, 0.72)
    ceiling = np.where(rng.random(len(labels)) < 0.5, labels, weak)  # fixes half of the teacher's mistakes
    scorer = PartScorer(labels, [weak] * 3, [ceiling] * 3)
    fixes = (ceiling != weak) & (rng.random(len(labels)) < 0.5)
    transfer = np.where(fixes, ceiling, weak)
    independent = _noisy(rng, labels, float((transfer == labels).mean()))
    assert scorer.score(transfer).pgr == pytest.approx(scorer.score(independent).pgr, abs=0.1)
    assert scorer.test_se(transfer) < 0.5 * scorer.test_se(independent)


def test_comparing_two_methods_on_the_same_examples_is_paired(part):
    rng, labels, scorer = part
    a = _noisy(rng, labels, 0.78)
    b = a.copy()
    flip = rng.random(len(labels)) < 0.02
    b[flip] = 1 - b[flip]
    same = scorer.compare(a, a)
    assert same.difference == 0 and same.test_se == 0 and same.agrees()
    close = scorer.compare(a, b)
    unpaired = math.hypot(scorer.test_se(a), scorer.test_se(b))
    assert close.paired and close.test_se < 0.4 * unpaired
    assert close.difference == pytest.approx(scorer.score(a).pgr - scorer.score(b).pgr)


def test_seed_stats_carry_the_seed_se_and_the_test_se_of_the_mean(part):
    rng, labels, scorer = part
    runs = np.asarray([_noisy(rng, labels, acc) for acc in (0.75, 0.76, 0.77)])
    stats = scorer.score_seeds(runs)
    per_seed = [scorer.score(run) for run in runs]
    assert stats.pgr == pytest.approx(np.mean([s.pgr for s in per_seed]))
    assert stats.pgr_se == pytest.approx(aggregate(per_seed).pgr_se)
    # The seeds' errors are independent here, so the mean's test SE is below each seed's (and below the
    # bound ``aggregate`` reports without the predictions).
    assert stats.pgr_test_se < aggregate(per_seed).pgr_test_se
    assert stats.pgr_total_se == pytest.approx(total_se(stats.pgr_se, stats.pgr_test_se))
    assert total_se(0.03, 0.04) == pytest.approx(0.05)


def test_disjoint_parts_compare_with_independent_noise_and_paired_seeds():
    a = SeedStats(transfer_acc=0.8, transfer_acc_se=0.0, pgr=0.40, pgr_se=0.05, n_seeds=3, pgr_test_se=0.03)
    b = SeedStats(transfer_acc=0.8, transfer_acc_se=0.0, pgr=0.30, pgr_se=0.05, n_seeds=3, pgr_test_se=0.04)
    independent = compare_independent(a, b)
    assert independent.test_se == pytest.approx(0.05) and independent.seed_se == pytest.approx(math.hypot(0.05, 0.05))
    paired = compare_independent(a, b, paired_seeds=[0.1, 0.1, 0.1])
    assert paired.seed_se == pytest.approx(0) and paired.total_se == pytest.approx(0.05) and not paired.agrees(z=1.9)


def test_score_task_reports_the_test_se_of_the_scored_part(synthetic_task):
    labels = [row["label"] for row in TaskDir(synthetic_task).test_labels()]
    half = [y if i % 4 else 1 - y for i, y in enumerate(labels)]
    public, whole = score_task(synthetic_task, half, part="public"), score_task(synthetic_task, half)
    assert public.pgr_test_se > whole.pgr_test_se > 0


def test_a_ceiling_seed_that_lands_high_lowers_every_pgr_on_its_split_by_pgr_over_gap():
    """The baselines' seed noise, computed from their per-seed predictions, matches moving the gap by hand."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 4000)
    weak = [_noisy(rng, labels, 0.74)] * 3  # the same teacher predictions: no weak seed spread
    ceiling = [_noisy(rng, labels, acc) for acc in (0.85, 0.86, 0.87)]
    scorer = PartScorer(labels, weak, ceiling)
    seeds = scorer.baseline_seeds()
    sd = float(np.std([np.mean(c == labels) for c in ceiling], ddof=1))
    assert seeds.ceiling_acc_sd == pytest.approx(sd) and seeds.weak_acc_sd == 0 and seeds.ceiling_seeds == 3
    # by hand: ∂PGR/∂ceiling (a finite difference) times the SE of the three seeds' mean
    eps = 1e-6
    shifted = pgr(scorer.weak_acc + 0.4 * scorer.gap, scorer.weak_acc, scorer.ceiling_acc + eps)
    assert baseline_seed_se(0.4, seeds) == pytest.approx(abs(shifted - 0.4) / eps * sd / math.sqrt(3), rel=1e-4)
    assert scorer.score_seeds([_noisy(rng, labels, 0.8)]).baselines == seeds


def test_a_held_out_ceiling_of_one_seed_takes_the_spread_of_the_main_ceilings_seeds():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 2000)
    main = PartScorer(labels, [_noisy(rng, labels, 0.74)], [_noisy(rng, labels, a) for a in (0.84, 0.86, 0.88)])
    held = PartScorer(labels, [_noisy(rng, labels, 0.74)], [_noisy(rng, labels, 0.86)])
    assert held.baseline_seeds().ceiling_acc_sd == 0  # one seed: no spread of its own
    borrowed = held.baseline_seeds(reference=main.baseline_seeds())
    assert borrowed.ceiling_acc_sd == main.baseline_seeds().ceiling_acc_sd and borrowed.ceiling_seeds == 1
    # one seed's error is √3 times a three-seed mean's (on the scale of each split's gap)
    assert borrowed.pgr_se(0.5) * held.gap == pytest.approx(math.sqrt(3) * main.baseline_seeds().pgr_se(0.5) * main.gap)


def test_main_vs_held_out_adds_the_baselines_seed_noise_and_the_training_sample_term():
    main = BaselineSeeds(gap=0.126, weak_acc_sd=0.001, weak_seeds=3, ceiling_acc_sd=0.0016, ceiling_seeds=3)
    held = main.model_copy(update={"ceiling_seeds": 1})
    a = SeedStats(transfer_acc=0.8, transfer_acc_se=0.0, pgr=0.43, pgr_se=0.036, n_seeds=3, pgr_test_se=0.033,
                  baselines=main)
    b = SeedStats(transfer_acc=0.8, transfer_acc_se=0.0, pgr=0.28, pgr_se=0.011, n_seeds=3, pgr_test_se=0.034,
                  baselines=held)
    plain = compare_independent(a.model_copy(update={"baselines": None}), b, training_sample_sd=0.0)
    full = compare_independent(a, b, training_sample_sd=0.03)
    ceiling = math.hypot(0.43 * 0.0016 / math.sqrt(3), 0.28 * 0.0016) / 0.126
    # the teacher is the same models on both splits: only the difference of its two derivatives remains
    weak = abs(0.43 - 0.28) / 0.126 * 0.001 / math.sqrt(3)
    assert full.baseline_se == pytest.approx(math.hypot(ceiling, weak))
    assert full.training_se == pytest.approx(math.sqrt(2) * 0.03)
    assert full.total_se == pytest.approx(math.sqrt(plain.total_se**2 + full.baseline_se**2 + full.training_se**2))
    assert plain.baseline_se == 0 and plain.training_se == 0
    # public vs private share baselines and training sample: neither term enters
    paired = compare_independent(a, a.model_copy(update={"pgr": 0.4}), paired_seeds=[0.01, 0.03, 0.02],
                                 training_sample_sd=0.03)
    assert paired.baseline_se == 0 and paired.training_se == 0


def test_a_tasks_measured_training_sample_sd_is_read_from_its_task_json(synthetic_task):
    info = TaskDir(synthetic_task).info()
    assert training_sample_sd(info) == TRAINING_SAMPLE_PGR_SD > 0  # measured on the embedded default
    measured = info.model_copy(update={"extra": {**info.extra, "training_sample_pgr_sd": 0.03}})
    assert training_sample_sd(measured) == 0.03
