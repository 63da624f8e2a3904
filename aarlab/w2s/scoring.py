"""Scoring: transfer accuracy and performance gap recovered (PGR), with their standard errors.

PGR = (transfer_acc - weak_acc) / (ceiling_acc - weak_acc). The weak and ceiling accuracies are computed on
exactly the examples being scored (e.g. the public part of the test set) from the baselines' stored
per-seed predictions, so that a part's PGR is not skewed by the other part.

Every PGR carries two uncertainties, which answer different questions:

- the **seed SE** (``SeedStats.pgr_se``): how much the mean over training seeds would move with other
  seeds, on this test set;
- the **test-sampling SE** (``Score.pgr_test_se``, ``SeedStats.pgr_test_se``): how much the PGR would move
  with another test set of the same size drawn from the same distribution, the models held fixed. It is a
  *paired* bootstrap: test examples are resampled with replacement and the method's, the weak teacher's
  and the ceiling's accuracies are recomputed on the same resampled examples, so it is driven by the
  examples on which they disagree, not by accuracy alone.

``total_se`` combines them as ``sqrt(seed_se² + test_se²)``: right for "what is this method's expected PGR
on the task's distribution" (training seed and test sample are independent draws), and the noise to use
when a PGR is compared with one measured on *another* test set (a private part, a held-out split). Two
methods scored on the *same* examples are compared with ``PartScorer.compare``, which bootstraps their
difference (shared examples cancel).

Two more noise terms matter when a PGR is compared across *splits* (main vs held-out: other trained models,
other baselines), and neither shows in a single PGR's seed or test SE:

- the **baselines' seed noise** (``BaselineSeeds``, ``baseline_seed_se``): every PGR on a split divides by
  that split's gap, measured with a finite number of baseline seeds, so a ceiling seed that lands high
  lowers every PGR on the split together (∂PGR/∂ceiling = −PGR/gap, ∂PGR/∂weak = (PGR − 1)/gap). It is
  computed exactly from the stored per-seed baseline predictions;
- the **training-sample noise** (``TRAINING_SAMPLE_PGR_SD``): on the held-out split a method (and the
  ceiling) trains on other examples. Measured by retraining on other samples (``benchmarks/training_sample.py``):
  ≈ 0.05 PGR per split on the embedded default.

``PartScorer`` is the one scorer: labels and baseline predictions of a part held as numpy arrays, each
score O(n), and a bootstrap of B = 1000 replicates in a few milliseconds (the multinomial-counts trick:
an example's outcome is one of a handful of patterns, so resampling n examples is one multinomial draw
over the patterns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from aarlab.errors import UserError

# The standard deviation of a method's expected PGR between two equally designed splits of a task that comes
# from *which examples it trains on*, beyond training seeds and test sampling. Measured on the embedded default
# (`benchmarks/training_sample.py`, vanilla, Dec 3 2026): 6 runs on random halves of the 3,000 weak-labelled
# examples gave a PGR SD of 0.050, 4 runs on the main split's own examples with other seeds 0.032, so
# sqrt(2 · (0.050² − 0.032²)) ≈ 0.054 (the 2: two halves of one pool share half their examples). So few runs
# leave it rough (anywhere from 0 to ≈ 0.1 is plausible); 0.05 is used for every task that carries no
# measurement of its own (``extra.training_sample_pgr_sd`` in its task.json, read by ``training_sample_sd``).
TRAINING_SAMPLE_PGR_SD = 0.05

# Bootstrap replicates and the seed of their generator: fixed, so that the same predictions always get the
# same SE (a reply can never be re-rolled by resubmitting).
N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0


class Score(BaseModel):
    """A scored set of predictions: one run on one part. ``pgr_test_se`` is its test-sampling SE."""

    # A part whose gap is inside its noise can get an infinite SE; JSON carries it as ``Infinity``.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    transfer_acc: float
    weak_acc: float
    ceiling_acc: float
    pgr: float
    n_examples: int
    pgr_test_se: float = 0.0


class BaselineSeeds(BaseModel):
    """The fixed baselines of one part: its gap, and how far one seed's accuracy spreads for each baseline.

    ``*_acc_sd`` is the standard deviation of one seed's accuracy (not of the mean); the mean over
    ``*_seeds`` seeds that defines the part's gap moves by ``sd / sqrt(seeds)``. A baseline with one seed on
    this part has no spread of its own: it takes the spread measured where there are several (the main split's
    ceiling seeds stand in for the held-out split's single one).
    """

    gap: float
    weak_acc_sd: float = 0.0
    weak_seeds: int = 1
    ceiling_acc_sd: float = 0.0
    ceiling_seeds: int = 1

    def pgr_se(self, pgr_value: float) -> float:
        """The SE of a PGR of ``pgr_value`` on this part that comes from the baselines' seeds alone."""
        return baseline_seed_se(pgr_value, self)


def baseline_seed_se(pgr_a: float, a: BaselineSeeds, pgr_b: float | None = None, b: BaselineSeeds | None = None,
                     shared_weak: bool = True) -> float:
    """The standard error that the baselines' finite seeds put on a PGR, or on the difference of two PGRs
    measured on different splits (``pgr_a − pgr_b``, with ``b`` the other split's baselines).

    First order in the baselines' errors: ∂PGR/∂ceiling = −PGR/gap and ∂PGR/∂weak = (PGR − 1)/gap, times the
    SE of each baseline's mean accuracy (``sd / sqrt(seeds)``). The two splits' ceilings are other models
    trained on other examples: independent, their terms add. The weak teacher is the *same* models on both
    splits (``shared_weak``, as ``prepare`` makes it): their seed effect moves both PGRs together, so only
    the difference of the two derivatives remains (≈ 0 when the PGRs agree).
    """
    def terms(value: float, seeds: BaselineSeeds) -> tuple[float, float, float]:
        if seeds.gap <= 0:
            return math.inf, 0.0, 0.0
        ceiling = value / seeds.gap * seeds.ceiling_acc_sd / math.sqrt(max(1, seeds.ceiling_seeds))
        return ceiling, (value - 1.0) / seeds.gap, seeds.weak_acc_sd / math.sqrt(max(1, seeds.weak_seeds))

    ceiling_a, slope_a, weak_se_a = terms(pgr_a, a)
    if b is None or pgr_b is None:
        return math.hypot(ceiling_a, slope_a * weak_se_a)
    ceiling_b, slope_b, weak_se_b = terms(pgr_b, b)
    if shared_weak:
        weak = abs(slope_a - slope_b) * max(weak_se_a, weak_se_b)
    else:
        weak = math.hypot(slope_a * weak_se_a, slope_b * weak_se_b)
    return math.sqrt(ceiling_a**2 + ceiling_b**2 + weak**2)


def baseline_seeds_from_fixed(fixed, reference: BaselineSeeds | None = None) -> BaselineSeeds:
    """``BaselineSeeds`` from a task's ``FixedBaselines`` (mean ± SE over ``n`` seeds, as ``task.json`` holds
    them: the whole test split's accuracies). A baseline with one seed takes its spread from ``reference``."""
    def spread(stat, fallback: float) -> float:
        return stat.se * math.sqrt(stat.n) if stat.n > 1 else fallback

    return BaselineSeeds(
        gap=fixed.ceiling_acc.mean - fixed.weak_acc.mean,
        weak_acc_sd=spread(fixed.weak_acc, reference.weak_acc_sd if reference else 0.0), weak_seeds=fixed.weak_acc.n,
        ceiling_acc_sd=spread(fixed.ceiling_acc, reference.ceiling_acc_sd if reference else 0.0),
        ceiling_seeds=fixed.ceiling_acc.n)


class SeedStats(BaseModel):
    """Mean over seeds of transfer accuracy and PGR, with the seed SE and the test-sampling SE.

    ``baselines`` (set by ``PartScorer.score_seeds``) describes the part's baseline seeds, for comparisons
    across splits (``compare_independent``).
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    transfer_acc: float
    transfer_acc_se: float
    pgr: float
    pgr_se: float  # over seeds
    n_seeds: int
    pgr_test_se: float = 0.0
    n_examples: int = 0
    baselines: BaselineSeeds | None = None

    @property
    def pgr_baseline_se(self) -> float:
        """The SE this PGR gets from its split's finite baseline seeds (0 when unknown)."""
        return self.baselines.pgr_se(self.pgr) if self.baselines is not None else 0.0

    @property
    def pgr_total_se(self) -> float:
        """``sqrt(seed SE² + test SE²)``: see the module docstring for when that is the right noise."""
        return total_se(self.pgr_se, self.pgr_test_se)


class Comparison(BaseModel):
    """PGR of ``a`` minus PGR of ``b`` with its SEs (test-sampling, the methods' seeds, the baselines' seeds,
    the training sample, combined)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    difference: float
    test_se: float
    seed_se: float
    total_se: float
    paired: bool  # True when both were scored on the same examples (the test noise is of the difference)
    baseline_se: float = 0.0  # from the two splits' baseline seeds (main vs held-out only)
    training_se: float = 0.0  # from the two splits' training samples (main vs held-out only)

    def agrees(self, z: float = 2.0) -> bool:
        """Whether the difference is within ``z`` combined SEs of zero."""
        return abs(self.difference) <= z * self.total_se


def total_se(seed_se: float, test_se: float) -> float:
    """Seed and test-sampling noise combined: ``sqrt(seed_se² + test_se²)`` (independent sources)."""
    return math.sqrt(seed_se**2 + test_se**2)


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if len(predictions) != len(labels):
        raise UserError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not len(labels):
        raise UserError("cannot score an empty set of predictions")
    return float(np.count_nonzero(np.asarray(predictions) == np.asarray(labels))) / len(labels)


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


def bootstrap_means(columns: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Column means of ``columns`` (``[n, k]``) over ``n_boot`` resamples of its rows: ``[n_boot, k]``.

    Rows are resampled with replacement, paired across columns. Rows that are equal are interchangeable, so
    a resample is a multinomial draw of counts over the distinct rows (a handful when the columns are
    per-example correctness), which is exact and needs no ``[n_boot, n]`` index matrix.
    """
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim != 2 or len(columns) == 0:
        raise UserError("bootstrap needs a non-empty [examples, columns] array")
    patterns, inverse = np.unique(columns, axis=0, return_inverse=True)
    freq = np.bincount(inverse.reshape(-1), minlength=len(patterns)) / len(columns)
    counts = np.random.default_rng(seed).multinomial(len(columns), freq, size=n_boot)
    return counts @ patterns / len(columns)


def _pgr_se(replicates: np.ndarray) -> float:
    """Std of PGR over bootstrap replicates ``[B, 3]`` of (transfer, weak, ceiling) accuracy (or of
    the PGR difference of two methods, given ``[B, 4]`` as (transfer_a, transfer_b, weak, ceiling)).

    A replicate whose ceiling does not beat the weak teacher has no PGR and is left out; when none has one,
    the SE is infinite (the part cannot resolve PGR at all).
    """
    weak, ceiling = replicates[:, -2], replicates[:, -1]
    ok = ceiling > weak
    if ok.sum() < 2:
        return math.inf
    gap = ceiling[ok] - weak[ok]
    values = (replicates[ok, 0] - weak[ok]) / gap
    if replicates.shape[1] == 4:
        values = values - (replicates[ok, 1] - weak[ok]) / gap
    return float(values.std(ddof=1))


class PartScorer:
    """Scores predictions on one part of a test split (public, private, all, or the held-out test).

    ``labels`` and every baseline run cover the whole split in test order; ``index`` picks the part's
    positions (all when ``None``). Predictions handed to ``score`` cover the whole split too.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, weak_predictions: Sequence[Sequence[int]] | np.ndarray,
                 ceiling_predictions: Sequence[Sequence[int]] | np.ndarray, index: np.ndarray | None = None,
                 where: str = "this part"):
        labels = np.asarray(labels, dtype=np.int64)
        self.n_test = len(labels)
        self.index = np.arange(self.n_test) if index is None else np.asarray(index, dtype=np.int64)
        if len(self.index) == 0:
            raise UserError(f"{where}: no test examples in this part")
        self.labels = labels[self.index]
        self.where = where
        self.weak_correct = self._baseline_correct(weak_predictions, "weak")
        self.ceiling_correct = self._baseline_correct(ceiling_predictions, "ceiling")
        self.weak_acc = float(self.weak_correct.mean())
        self.ceiling_acc = float(self.ceiling_correct.mean())
        # Per-seed accuracies on this part, for the baselines' own seed noise (``baseline_seeds``).
        self.weak_seed_accs = self._seed_accuracies(weak_predictions)
        self.ceiling_seed_accs = self._seed_accuracies(ceiling_predictions)

    @classmethod
    def from_mask(cls, labels, weak_predictions, ceiling_predictions, mask: Sequence[bool] | None,
                  where: str = "this part") -> PartScorer:
        index = None if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
        return cls(labels, weak_predictions, ceiling_predictions, index, where)

    def _baseline_correct(self, runs, kind: str) -> np.ndarray:
        """Per example of the part: the share of the baseline's seeds that got it right."""
        if runs is None or len(runs) == 0:
            raise UserError(f"{self.where}: no {kind!r} baseline predictions")
        runs = [np.asarray(run, dtype=np.int64) for run in runs]
        for run in runs:
            if run.shape != (self.n_test,):
                raise UserError(f"{self.where}: a {kind} baseline has {len(run)} predictions for "
                                f"{self.n_test} test inputs")
        return np.mean([run[self.index] == self.labels for run in runs], axis=0)

    def _seed_accuracies(self, runs) -> np.ndarray:
        return np.array([float(np.mean(np.asarray(run, dtype=np.int64)[self.index] == self.labels)) for run in runs])

    def baseline_seeds(self, reference: BaselineSeeds | None = None) -> BaselineSeeds:
        """This part's gap and the spread of its baselines' per-seed accuracies; a baseline with a single seed
        here takes its spread from ``reference`` (e.g. the held-out ceiling's from the main split's seeds)."""
        def spread(accs: np.ndarray, fallback: float) -> float:
            return float(accs.std(ddof=1)) if len(accs) > 1 else fallback

        return BaselineSeeds(
            gap=self.gap, weak_acc_sd=spread(self.weak_seed_accs, reference.weak_acc_sd if reference else 0.0),
            weak_seeds=len(self.weak_seed_accs),
            ceiling_acc_sd=spread(self.ceiling_seed_accs, reference.ceiling_acc_sd if reference else 0.0),
            ceiling_seeds=len(self.ceiling_seed_accs))

    @property
    def n(self) -> int:
        return len(self.index)

    @property
    def gap(self) -> float:
        return self.ceiling_acc - self.weak_acc

    def correct(self, predictions) -> np.ndarray:
        """Per example of the part: 1.0 where right; for ``[seeds, n_test]`` the share of seeds right."""
        predictions = np.asarray(predictions)
        if predictions.ndim == 1:
            predictions = predictions[None, :]
        if predictions.ndim != 2 or predictions.shape[1] != self.n_test:
            raise UserError(f"{predictions.shape[-1]} predictions for {self.n_test} test inputs")
        return (predictions[:, self.index] == self.labels).mean(axis=0)

    def _columns(self, *transfer: np.ndarray) -> np.ndarray:
        return np.column_stack([*transfer, self.weak_correct, self.ceiling_correct])

    def score(self, predictions, test_se: bool = True) -> Score:
        """Transfer accuracy and PGR of one run (``test_se=False`` skips the bootstrap)."""
        transfer = float(self.correct(predictions).mean())
        value = pgr(transfer, self.weak_acc, self.ceiling_acc) if self.ceiling_acc > self.weak_acc else self._undefined()
        se = self.test_se(predictions) if test_se else 0.0
        return Score(transfer_acc=transfer, weak_acc=self.weak_acc, ceiling_acc=self.ceiling_acc, pgr=value,
                     n_examples=self.n, pgr_test_se=se)

    def _undefined(self) -> float:
        raise UserError(f"{self.where}: PGR is undefined: the strong ceiling ({self.ceiling_acc:.3f}) does not "
                        f"beat the weak teacher ({self.weak_acc:.3f})")

    def test_se(self, predictions, n_boot: int = N_BOOTSTRAP) -> float:
        """Paired bootstrap SE of the PGR of ``predictions`` (one run, or the mean of ``[seeds, n_test]``)."""
        return _pgr_se(bootstrap_means(self._columns(self.correct(predictions)), n_boot))

    def score_seeds(self, predictions_per_seed, baselines: BaselineSeeds | None = None) -> SeedStats:
        """One method over seeds: mean PGR, its seed SE, and the test SE of the mean (PGR is linear in the
        transfer accuracy, so the mean over seeds is the PGR of the per-example mean correctness).

        ``baselines`` overrides this part's own ``baseline_seeds()`` (give it the spread of a baseline that has
        a single seed here)."""
        runs = np.asarray(predictions_per_seed)
        if runs.ndim != 2 or len(runs) == 0:
            raise UserError("score_seeds needs one list of predictions per seed")
        stats = aggregate([self.score(run, test_se=False) for run in runs])
        return stats.model_copy(update={"pgr_test_se": self.test_se(runs), "n_examples": self.n,
                                        "baselines": baselines or self.baseline_seeds()})

    def compare(self, a, b) -> Comparison:
        """PGR of ``a`` minus PGR of ``b``, both on this part (one run each, or ``[seeds, n_test]`` each).

        The test SE is a paired bootstrap of the difference; the seed SE (when there are seeds) treats the
        two methods' seeds as independent runs.
        """
        runs_a, runs_b = np.atleast_2d(np.asarray(a)), np.atleast_2d(np.asarray(b))
        difference = (self.correct(runs_a).mean() - self.correct(runs_b).mean()) / self.gap if self.gap > 0 \
            else self._undefined()
        test = _pgr_se(bootstrap_means(self._columns(self.correct(runs_a), self.correct(runs_b))))
        seed = 0.0
        for runs in (runs_a, runs_b):
            if len(runs) > 1:
                seed += self.score_seeds(runs).pgr_se ** 2
        return Comparison(difference=float(difference), test_se=test, seed_se=math.sqrt(seed),
                          total_se=total_se(math.sqrt(seed), test), paired=True)

    def gap_se(self, n_boot: int = N_BOOTSTRAP) -> float:
        """Paired bootstrap SE of the gap (ceiling − weak accuracy) on this part."""
        replicates = bootstrap_means(self._columns(), n_boot)
        return float((replicates[:, 1] - replicates[:, 0]).std(ddof=1))


def compare_independent(a: SeedStats, b: SeedStats, paired_seeds: Sequence[float] | None = None,
                        training_sample_sd: float = TRAINING_SAMPLE_PGR_SD) -> Comparison:
    """``a.pgr − b.pgr`` measured on disjoint test sets (e.g. public vs private, main vs held-out).

    Test noise adds (independent examples). Seed noise adds too, unless ``paired_seeds`` gives the per-seed
    differences of the *same* trained models scored on both sets (public vs private), whose spread is then
    the seed SE of the difference (the models' own seed effect cancels).

    Without ``paired_seeds`` the two sets belong to different splits (main vs held-out), and two more terms
    add: the baselines' seed noise (``baseline_seed_se``, when both carry ``baselines``), and the training
    sample (``√2 · training_sample_sd``: each split's methods and ceiling train on their own examples). Public
    and private share the baselines and the training sample, so neither enters there.
    """
    test = total_se(a.pgr_test_se, b.pgr_test_se)
    baseline = training = 0.0
    if paired_seeds is not None and len(paired_seeds) > 0:
        seed = mean_se(list(paired_seeds))[1]
    else:
        seed = total_se(a.pgr_se, b.pgr_se)
        if a.baselines is not None and b.baselines is not None:
            baseline = baseline_seed_se(a.pgr, a.baselines, b.pgr, b.baselines)
        training = math.sqrt(2.0) * training_sample_sd
    combined = math.sqrt(seed**2 + test**2 + baseline**2 + training**2)
    return Comparison(difference=a.pgr - b.pgr, test_se=test, seed_se=seed, total_se=combined, paired=False,
                      baseline_se=baseline, training_se=training)


def training_sample_sd(task_info) -> float:
    """The training-sample PGR SD of a task: its own measurement (``extra.training_sample_pgr_sd`` in
    task.json) when it has one, else ``TRAINING_SAMPLE_PGR_SD``."""
    value = (getattr(task_info, "extra", None) or {}).get("training_sample_pgr_sd")
    try:
        return float(value) if value is not None else TRAINING_SAMPLE_PGR_SD
    except (TypeError, ValueError):
        return TRAINING_SAMPLE_PGR_SD


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
    if not len(labels) or (mask is not None and not any(mask)):
        raise UserError("cannot score an empty set of predictions")
    return PartScorer.from_mask(labels, weak_predictions, ceiling_predictions, mask).score(predictions)


def aggregate(scores: Sequence[Score]) -> SeedStats:
    """Combine one Score per seed into mean ± seed SE.

    The test SE of the mean is not the mean of the per-seed test SEs in general (the seeds share their test
    examples); the mean of them is its upper bound (perfectly correlated runs), used here. The exact value
    comes from ``PartScorer.score_seeds``, which bootstraps the seeds' predictions together.
    """
    if not scores:
        raise UserError("no scores to aggregate")
    acc, acc_se = mean_se([s.transfer_acc for s in scores])
    p, p_se = mean_se([s.pgr for s in scores])
    test = sum(s.pgr_test_se for s in scores) / len(scores)
    return SeedStats(transfer_acc=acc, transfer_acc_se=acc_se, pgr=p, pgr_se=p_se, n_seeds=len(scores),
                     pgr_test_se=test, n_examples=scores[0].n_examples)


def part_scorer(task_dir, part: str = "all", heldout: bool = False) -> PartScorer:
    """The scorer of one part of a prepared task's test split (``all``, ``public`` or ``private``), or of its
    held-out test (``heldout=True``; that split has one part, scored whole)."""
    from aarlab.w2s.taskdir import TaskDir

    if part not in ("all", "public", "private"):
        raise UserError(f"unknown part {part!r} (all, public or private)")
    task = TaskDir(task_dir, heldout=heldout).check()
    rows = task.test_labels()
    baselines = task.baseline_predictions()
    labels = [int(row["label"]) for row in rows]
    mask = None if part == "all" or heldout else [row.get("part") == part for row in rows]
    where = f"{'held-out' if heldout else part} test of {task.root}"
    return PartScorer.from_mask(labels, baselines["weak"], baselines["ceiling"], mask, where)


def score_task(task_dir, predictions: Sequence[int], part: str = "all", heldout: bool = False) -> Score:
    """Score predictions for a prepared task on its (hidden) labels, as the lab server does.

    ``part`` is ``all``, ``public`` or ``private`` (the test set's parts); ``heldout`` scores against the
    held-out split instead. Predictions are validated first (length, type, label range).
    """
    from aarlab.w2s.taskdir import TaskDir, validate_predictions

    if part not in ("all", "public", "private"):
        raise UserError(f"unknown part {part!r} (all, public or private)")
    task = TaskDir(task_dir, heldout=heldout).check()
    n_labels = len(task.info().label_space)
    scorer = part_scorer(task_dir, part, heldout)
    predictions = validate_predictions(list(predictions), scorer.n_test, n_labels)
    return scorer.score(predictions)
