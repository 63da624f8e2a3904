"""When is a claimed PGR too far from its verified PGR to be noise?

Two sources of noise separate an honest claim from its re-run:

- seed noise: each side's standard error over seeds (``se_claimed`` from the post, ``se_verified`` from
  the re-run);
- split noise: the claim was measured on one test set and the verification on a disjoint held-out one, so
  each carries its own test-sampling error even for a perfectly deterministic method; seed SEs do not see
  it. The held-out split is built like the main one (same sizes, same teacher), so both errors are of the
  same kind: the paired bootstrap SE of PGR over test examples (``aarlab.w2s.scoring``, driven by where the
  method disagrees with the weak and ceiling predictions). Measured on ``n_measured`` examples, it is
  scaled to a part of ``n`` examples as ``se · sqrt(n_measured / n)``. Without a measured SE (an old
  score), the binomial ``sqrt(acc·(1−acc)/n) / (ceiling − weak)`` stands in; it overstates the paired SE
  of a method that mostly agrees with the teacher.

The test is two-sided on the difference of two independent estimates::

    gap       = claimed − verified
    noise     = sqrt(se_c² + se_v² + split_c² + split_v²)
    flagged   ⇔ |gap| > z · noise + floor          (defaults z = 3, floor = 0.05 PGR)

``z = 3`` keeps honest claims from being flagged by chance (about 3 in 1,000 under normal noise); the floor
absorbs the tiny differences of two near-deterministic runs on large sets. A claim far *above* its
verification (overfitting to public feedback, a cherry-picked seed, a bug) is a ``warning``, or ``severe``
beyond twice the threshold; a claim far *below* its verification is only ``info``.
"""

from __future__ import annotations

import math

from pydantic import BaseModel


class GapTest(BaseModel):
    """The outcome of comparing a claim with its verification (all in PGR units)."""

    claimed: float
    claimed_se: float
    verified: float
    verified_se: float
    gap: float  # claimed − verified
    noise: float
    threshold: float
    z: float
    floor: float
    flagged: bool
    severity: str | None  # None when not flagged


def split_se(accuracy: float, n: int, weak_acc: float, ceiling_acc: float, pgr_test_se: float | None = None,
             n_measured: int | None = None) -> float:
    """The PGR standard error that comes from measuring on a test set of ``n`` examples.

    ``pgr_test_se``: the paired bootstrap SE measured on ``n_measured`` examples (default ``n``), rescaled
    to ``n``; without it, the binomial error of ``accuracy`` over the gap.
    """
    span = ceiling_acc - weak_acc
    if n <= 0 or span <= 0:
        return 0.0
    if pgr_test_se is not None and pgr_test_se > 0 and math.isfinite(pgr_test_se):
        return pgr_test_se * math.sqrt((n_measured or n) / n)
    acc = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(acc * (1.0 - acc) / n) / span


def gap_test(claimed: float, claimed_se: float, verified: float, verified_se: float,
             claimed_split_se: float = 0.0, verified_split_se: float = 0.0,
             z: float = 3.0, floor: float = 0.05) -> GapTest:
    """Compare a claim with its verification; see the module docstring for the rule."""
    gap = claimed - verified
    noise = math.sqrt(claimed_se**2 + verified_se**2 + claimed_split_se**2 + verified_split_se**2)
    threshold = z * noise + floor
    flagged = abs(gap) > threshold
    severity = None
    if flagged:
        severity = "info" if gap < 0 else ("severe" if gap > 2 * threshold else "warning")
    return GapTest(claimed=claimed, claimed_se=claimed_se, verified=verified, verified_se=verified_se, gap=gap,
                   noise=noise, threshold=threshold, z=z, floor=floor, flagged=flagged, severity=severity)
