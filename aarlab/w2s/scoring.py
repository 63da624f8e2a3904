"""Scoring: transfer accuracy and performance gap recovered (PGR), with standard errors.

PGR = (transfer_acc - weak_acc) / (ceiling_acc - weak_acc). The weak and ceiling accuracies are computed on
exactly the examples being scored (e.g. the public part of the test set) from the baselines' stored
per-seed predictions, so that a part's PGR is not skewed by the other part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel

from aarlab.errors import UserError


class Score(BaseModel):
    """A scored set of predictions. ``pgr_se`` is 0 for a single run; see ``aggregate`` for seeds."""

    transfer_acc: float
    weak_acc: float
    ceiling_acc: float
    pgr: float
    n_examples: int


class SeedStats(BaseModel):
    """Mean ± standard error over seeds, for transfer accuracy and PGR."""

    transfer_acc: float
    transfer_acc_se: float
    pgr: float
    pgr_se: float
    n_seeds: int


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if len(predictions) != len(labels):
        raise UserError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise UserError("cannot score an empty set of predictions")
    return sum(int(p == y) for p, y in zip(predictions, labels, strict=True)) / len(labels)


def pgr(transfer_acc: float, weak_acc: float, ceiling_acc: float) -> float:
    """Performance gap recovered; a UserError when the ceiling does not beat the weak teacher."""
    if ceiling_acc <= weak_acc:
        raise UserError(
            f"PGR is undefined: the strong ceiling ({ceiling_acc:.3f}) does not beat the weak teacher ({weak_acc:.3f})"
        )
    return (transfer_acc - weak_acc) / (ceiling_acc - weak_acc)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def score(
    predictions: Sequence[int],
    labels: Sequence[int],
    weak_predictions: Sequence[Sequence[int]],
    ceiling_predictions: Sequence[Sequence[int]],
    mask: Sequence[bool] | None = None,
) -> Score:
    """Score predictions against labels; baselines are per-seed prediction lists on the same examples.

    ``mask`` selects the examples to score (e.g. the public part); every list is in the same order.
    """
    if len(predictions) != len(labels):
        raise UserError(f"{len(predictions)} predictions for {len(labels)} test inputs")
    keep = [i for i in range(len(labels)) if mask is None or mask[i]]
    pick = lambda seq: [seq[i] for i in keep]  # noqa: E731
    y = pick(labels)
    transfer = accuracy(pick(predictions), y)
    weak = sum(accuracy(pick(w), y) for w in weak_predictions) / len(weak_predictions)
    ceiling = sum(accuracy(pick(c), y) for c in ceiling_predictions) / len(ceiling_predictions)
    return Score(transfer_acc=transfer, weak_acc=weak, ceiling_acc=ceiling, pgr=pgr(transfer, weak, ceiling), n_examples=len(y))


def aggregate(scores: Sequence[Score]) -> SeedStats:
    """Combine one Score per seed into mean ± SE."""
    if not scores:
        raise UserError("no scores to aggregate")
    acc, acc_se = mean_se([s.transfer_acc for s in scores])
    p, p_se = mean_se([s.pgr for s in scores])
    return SeedStats(transfer_acc=acc, transfer_acc_se=acc_se, pgr=p, pgr_se=p_se, n_seeds=len(scores))


def score_task(task_dir, predictions: Sequence[int], part: str = "all", heldout: bool = False) -> Score:
    """Score predictions for a prepared task on its (hidden) labels, as the lab server does.

    ``part`` is ``all``, ``public`` or ``private`` (the test set's parts); ``heldout`` scores against the
    held-out split instead. Predictions are validated first (length, type, label range).
    """
    from aarlab.w2s.taskdir import TaskDir, validate_predictions

    if part not in ("all", "public", "private"):
        raise UserError(f"unknown part {part!r} (all, public or private)")
    task = TaskDir(task_dir, heldout=heldout).check()
    rows = task.test_labels()
    info = task.info()
    predictions = validate_predictions(list(predictions), len(rows), len(info.label_space))
    baselines = task.baseline_predictions()
    mask = None if part == "all" else [row.get("part") == part for row in rows]
    return score(predictions, [row["label"] for row in rows], baselines["weak"], baselines["ceiling"], mask)
