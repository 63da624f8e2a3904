"""When is a claimed PGR too far from its verified PGR to be noise?

A result post claims a PGR and names the submission whose reply it quotes. The reply is *coarse*: the public
accuracy on a grid of ``step`` (0.025 on the embedded default's 4,000 public examples, ≈ 0.2 PGR) with
unbiased dithered rounding, so a claim quoted from it carries a rounding error of up to half a step. Compared
with a held-out re-run, that rounding alone swamps a +0.2 overclaim. So the verifier asks two questions, each
of the data that answers it best:

1. **Does the claim match what its own submission earned?** (``claim_check``, exact, no noise.) The lab knows
   the reply the named submission got. A claim above that reply by more than ``tolerance`` (the rounding of a
   quoted number) is an overclaim, full stop: ``warning`` when it is within one reporting step (an agent
   that averaged several replies, or rounded up), ``severe`` beyond.
2. **Does the submitted code do on the held-out split what its submission did on the main split?**
   (``gap_test``.) The reference is the lab's *exact* public PGR of the named submission (full precision,
   with its seeds' SE and its paired-bootstrap test SE), not the coarse claim: the claim is about the public
   part, and an overfit to public feedback shows there in full. The noise of the difference is the sum of
   independent terms, each measured::

       noise² = seed_ref² + test_ref²          (the submission: its seeds' SE, its paired-bootstrap test SE)
              + seed_ver² + test_ver²          (the re-run on the held-out split: the same two)
              + baseline²                      (both splits' baseline seeds: scoring.baseline_seed_se)
              + training²                      (√2 · the task's training-sample PGR SD; 0 until measured)
              + rounding²                      (only when the reference is the coarse claim: step_pgr / 2)
       flagged ⇔ |reference − verified| > z · noise + floor

   Without a named submission (an older post, or one whose submission is not found) the reference falls back
   to the claim itself, with the reply's rounding (half a grid step in PGR, its largest SD) in the noise.

**Why these choices** — measured by ``benchmarks/verify_teeth.py``, a simulation with the embedded default's
real noise (its per-example baseline predictions; method runs mixed per example from ceiling and teacher
predictions at a chosen PGR; seed noise at the measured per-seed SD of 0.045; the reply's dithered rounding;
3 submitted and 3 verified seeds with SEs estimated from them, as the lab does; table in
``docs/instrument.md``):

- the coarse claim as reference (the rule before: z = 3, floor 0.05, a threshold of ≈ 0.24 PGR) flags 31%
  of +0.2 overclaims; counting its rounding in the noise (the fallback below) makes it no sharper (30%);
- the exact public PGR as reference, without training-sample noise, brings the noise to ≈ 0.05 PGR: z = 2
  with a floor of 0.02 (``GAP_Z``, ``GAP_FLOOR``; a threshold of ≈ 0.12) flags 0.1% of honest claims and 97%
  of +0.2 overclaims, whether the submission beats its code on the whole test or on the public part only;
- the public and private parts together (8,000 examples) as reference were the alternative: the same power
  against whole-test overclaims (the noise is dominated by the seeds, so twice the examples buy little),
  but a public-only overfit is diluted by the private half;
- the training-sample term is now measured (≈ 0.05 PGR per split, ``aarlab.w2s.scoring.TRAINING_SAMPLE_PGR_SD``)
  and in the noise: it adds √2 · 0.05 to every held-out comparison, so the rule keeps false flags at ≈ 2% but
  its power at +0.2 falls to ≈ 55% (91% at +0.3). Left out, false flags rise to 15%. A held-out re-run alone
  cannot separate a +0.2 overclaim from another training sample's luck; a paired re-run on the main split
  (not built yet, docs/instrument.md) can.

A claim far *above* its reference is a ``warning``, ``severe`` beyond twice the threshold; far *below* it is
only ``info``.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

# The rule's defaults (see the module docstring for how they were chosen); the run config's
# ``verification.gap_z`` / ``verification.gap_floor`` override them.
GAP_Z = 2.0
GAP_FLOOR = 0.02
# How far a claim may exceed the reply it quotes: the rounding of a quoted number to two decimals.
CLAIM_TOLERANCE = 0.01

SEVERITY_ORDER = {None: 0, "info": 1, "warning": 2, "severe": 3}


class ClaimCheck(BaseModel):
    """A claim against the reply its own submission got (PGR units; exact, no noise)."""

    claimed: float
    reply_pgr: float  # the coarse public PGR the named submission was told
    step_pgr: float  # the reply's grid step in PGR (accuracy step / gap)
    tolerance: float
    excess: float  # claimed − reply_pgr
    flagged: bool
    severity: str | None


class GapTest(BaseModel):
    """The outcome of comparing a claim with its verification (all in PGR units).

    ``claimed`` is the value the re-run is compared with: the named submission's exact public PGR
    (``reference`` says which), or the claim itself when no submission is known. ``claim`` is the exact
    check of the claim against its submission's reply; ``flagged`` and ``severity`` combine both.
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

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
    reference: str = "claim"
    claimed_test_se: float = 0.0
    verified_test_se: float = 0.0
    baseline_se: float = 0.0
    training_se: float = 0.0
    rounding_se: float = 0.0
    claim: ClaimCheck | None = None
    rerun: str = "the code re-run on held-out data"  # what ``verified`` is


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


def rounding_se(step_pgr: float) -> float:
    """The largest SD of the reply's unbiased rounding to a grid of ``step_pgr``: half a step (a value midway
    between two grid points lands on either with probability ½)."""
    return step_pgr / 2.0


def claim_check(claimed: float, reply_pgr: float, step_pgr: float, tolerance: float = CLAIM_TOLERANCE) -> ClaimCheck:
    """Is the claim above what its own submission was told? See the module docstring."""
    excess = claimed - reply_pgr
    flagged = excess > tolerance
    severity = ("severe" if excess > max(step_pgr, tolerance) else "warning") if flagged else None
    return ClaimCheck(claimed=claimed, reply_pgr=reply_pgr, step_pgr=step_pgr, tolerance=tolerance, excess=excess,
                      flagged=flagged, severity=severity)


def gap_test(claimed: float, claimed_se: float, verified: float, verified_se: float,
             claimed_split_se: float = 0.0, verified_split_se: float = 0.0,
             z: float = GAP_Z, floor: float = GAP_FLOOR, *, baseline_se: float = 0.0, training_se: float = 0.0,
             rounding: float = 0.0, reference: str = "claim", claim: ClaimCheck | None = None,
             rerun: str = "the code re-run on held-out data", one_sided: bool = False) -> GapTest:
    """Compare a reference (the submission's exact score, or the claim) with its verification; see the module
    docstring for the rule. ``claim`` (the exact claim check) is folded into ``flagged`` and ``severity``.
    ``one_sided``: only a reference *above* its re-run is flagged (the paired reproduction: a submission that
    its code beats is no one's concern)."""
    gap = claimed - verified
    noise = math.sqrt(claimed_se**2 + verified_se**2 + claimed_split_se**2 + verified_split_se**2
                      + baseline_se**2 + training_se**2 + rounding**2)
    threshold = z * noise + floor
    flagged = gap > threshold if one_sided else abs(gap) > threshold
    severity = None
    if flagged:
        severity = "info" if gap < 0 else ("severe" if gap > 2 * threshold else "warning")
    if claim is not None and claim.flagged:
        flagged = True
        severity = max(severity, claim.severity, key=lambda s: SEVERITY_ORDER[s])
    return GapTest(claimed=claimed, claimed_se=claimed_se, verified=verified, verified_se=verified_se, gap=gap,
                   noise=noise, threshold=threshold, z=z, floor=floor, flagged=flagged, severity=severity,
                   reference=reference, claimed_test_se=claimed_split_se, verified_test_se=verified_split_se,
                   baseline_se=baseline_se, training_se=training_se, rounding_se=rounding, claim=claim, rerun=rerun)
