import pytest

from aarlab.errors import UserError
from aarlab.w2s import aggregate, score, score_task
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
