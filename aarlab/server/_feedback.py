"""What an agent is told about a submission: coarse public scores of its own seeds, and nothing finer.

A submission carries one to ``schemas.MAX_SEEDS`` (10) runs of a method (one list of predictions per seed). The reply gives
the mean public accuracy and PGR over the seeds, the seed SE, the public part's test-sampling SE and the
number of seeds — each on a coarse grid, so the public labels cannot be read back from many replies:

- **Step from the part's size.** Accuracies (and accuracy SEs) are shown on a grid of step ``public_step(n)``:
  at least ``10**-decimals``, and at least ``1.5/sqrt(n)`` — three times the spread of a random guess's
  accuracy — so no example is a step and random vectors mostly fall in one cell. PGR and its seed SE
  are derived from the coarse accuracies (``(acc − weak) / gap``), never rounded from the exact ones, so their
  finer scale says nothing more.
- **Dithered, keyed rounding.** Rounding to the grid is stochastic (unbiased, so honest means stay honest)
  with a dither drawn from HMAC(server secret, the *public-part* predictions). Predictions on the private
  part never enter the key: changing them cannot re-roll what is said about the public part. The key is
  canonical, so that other spellings of the same numbers get the same dither: the mean's key is the
  per-example share of seeds on each label (seed order and duplicated seeds do not matter), and on a binary
  task a set of seeds and its complement (every label flipped, accuracy ``1 − a``) share one dither, mirrored.
- **Nothing per example**, and no value that is not this submission's own: ``improved`` is derived from the
  shown accuracy and the agent's own earlier shown accuracies (it adds no information).

What remains is measured by ``tests/server/test_leakage.py``: the strongest attack built there (three
colluding agents pooling the team's whole budget, boosting with random vectors and multi-seed submissions,
hill-climbing on every reply field) against the embedded default's public part size.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

import numpy as np

from aarlab.w2s.scoring import PartScorer, mean_se, pgr

# The step is at least STEP_SCALE / sqrt(n): a random guess's accuracy spreads by 0.5 / sqrt(n), so random
# vectors mostly share one grid cell and the boosting attack learns little from them. 1.5 keeps the attack of
# tests/server/test_leakage.py (the team's whole budget, 4,000 public examples) at ≈ 53% of the public labels
# (1.0 let it reach 54–56%); the price is a rounding noise of about step / sqrt(6) on each honest reply
# (0.010 accuracy, ≈ 0.07 PGR on the embedded default), next to its test-sampling SE of ≈ 0.05 PGR.
STEP_SCALE = 1.5
# Grid steps whose multiples include 1.0, so that a binary task's complement (accuracy 1 − a) lies on the grid.
_STEPS = (0.01, 0.02, 0.025, 0.04, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0)


def public_step(n_public: int, decimals: int = 2) -> float:
    """The reporting step of public accuracies on a part of ``n_public`` examples.

    The smallest of 0.01, 0.02, 0.025, 0.04, 0.05, 0.1, … (never finer than 0.01) that is at least
    ``STEP_SCALE/sqrt(n_public)`` (0.025 for 4,000 examples, 0.1 for 375, 0.2 for 100): one example is never a
    step, and random guesses rarely straddle one.
    """
    floor = max(10.0 ** -decimals, STEP_SCALE / math.sqrt(max(1, n_public)))
    return next((s for s in _STEPS if s >= floor - 1e-12), 1.0)


def below_grid(se: float | None, step: float | None, digits: int = 2) -> bool:
    """Whether a seed SE read from a coarse reply is one the grid rounded to 0: shown as ``< step``, not 0.

    ``step`` is the reply's PGR grid (``public_pgr_step``, a claim's ``pgr_step``); ``digits`` the places the
    caller shows. Every view of a claim (terminal, dashboard, agents' tool, post titles) asks this one question.
    """
    return (se is not None and step is not None and math.isfinite(step) and step > 0
            and round(se, digits) == 0)


def dither(key: bytes, field: str, digest: str) -> float:
    """A number in [0, 1) fixed by the server key, the reply field and the canonical digest."""
    mac = hmac.new(key, f"{field}\0{digest}".encode(), "sha256").digest()
    return int.from_bytes(mac[:8], "big") / 2.0**64


def coarse(value: float, step: float, u: float, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` rounded to the grid of ``step`` with dither ``u`` (unbiased over ``u``), kept in [low, high]."""
    shown = math.floor(value / step + u) * step
    return min(high, max(low, shown))


@dataclass(frozen=True)
class PublicDigests:
    """Canonical digests of a submission's public-part predictions (see the module docstring)."""

    mean: str  # of the per-example label shares over seeds
    spread: str  # of the multiset of seeds
    mirrored: bool  # the canonical form is the complement (binary tasks): the mean's dither is 1 − u


def public_digests(runs: np.ndarray, n_labels: int) -> PublicDigests:
    """Digests of ``runs`` (``[seeds, n_public]``, the public part of each seed's predictions)."""
    runs = np.asarray(runs, dtype=np.int64)
    counts = np.stack([(runs == label).sum(axis=0) for label in range(n_labels)], axis=1)
    g = int(np.gcd.reduce(np.append(counts.ravel(), len(runs))))
    shares = (counts // g).astype(np.int32)
    mirrored = False
    mean_bytes = shares.tobytes()
    spread_rows = sorted(r.tobytes() for r in runs)
    if n_labels == 2:
        mirror_bytes = shares[:, ::-1].copy().tobytes()
        mirror_rows = sorted(r.tobytes() for r in 1 - runs)
        if mirror_bytes < mean_bytes:
            mean_bytes, mirrored = mirror_bytes, True
        spread_rows = min(spread_rows, mirror_rows)
    denominator = len(runs) // g
    mean = hashlib.sha256(f"{denominator}:".encode() + mean_bytes).hexdigest()
    spread = hashlib.sha256(b"".join(spread_rows)).hexdigest()
    return PublicDigests(mean=mean, spread=spread, mirrored=mirrored)


@dataclass(frozen=True)
class PublicFeedback:
    """The coarse public numbers of one submission, as the agent is told them."""

    accuracy: float
    pgr: float
    accuracy_seed_se: float
    pgr_seed_se: float
    pgr_test_se: float
    n_seeds: int
    step: float
    pgr_step: float  # the PGR grid: ``step / gap``. A seed SE below one step can be shown as 0.


def public_feedback(scorer: PartScorer, runs: np.ndarray, n_labels: int, key: bytes, decimals: int
                    ) -> PublicFeedback:
    """Score ``runs`` (``[seeds, n_test]``) on the public part and coarsen the result for the agent."""
    runs = np.atleast_2d(np.asarray(runs, dtype=np.int64))
    public_runs = runs[:, scorer.index]
    digests = public_digests(public_runs, n_labels)
    step = public_step(scorer.n, decimals)
    per_seed = (public_runs == scorer.labels).mean(axis=1)
    mean_acc = float(per_seed.mean())
    u = dither(key, "mean", digests.mean)
    accuracy = coarse(mean_acc, step, 1.0 - u if digests.mirrored else u)
    _, acc_se = mean_se(per_seed.tolist())
    acc_seed_se = coarse(acc_se, step, dither(key, "spread", digests.spread))
    unit = 10.0 ** -decimals
    test_se = scorer.test_se(runs)
    shown_test_se = coarse(test_se, unit, dither(key, "test", digests.mean), high=math.inf) \
        if math.isfinite(test_se) else math.inf
    gap = scorer.gap
    places = decimals + 1
    return PublicFeedback(
        accuracy=round(accuracy, 4), pgr=round(pgr(accuracy, scorer.weak_acc, scorer.ceiling_acc), places),
        accuracy_seed_se=round(acc_seed_se, 4), pgr_seed_se=round(acc_seed_se / gap, places),
        pgr_test_se=round(shown_test_se, decimals), n_seeds=len(runs), step=step,
        pgr_step=round(step / gap, places + 1) if gap > 0 else math.inf)


__all__ = ["PublicDigests", "PublicFeedback", "below_grid", "coarse", "dither", "public_digests", "public_feedback",
           "public_step"]
