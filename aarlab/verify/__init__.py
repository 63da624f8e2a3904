"""Verification and generalization: believe only what re-runs.

    from aarlab.verify import VerificationWorker
    worker = VerificationWorker(run_dir, lab_url, admin_token, config.verification)
    worker.start()            # beside the agents; worker.run_once() verifies what is queued now
    ...
    worker.stop()

Every ``result`` post names a snapshot and an entry point (the method contract). The verifier unpacks the
snapshot into a fresh sandbox that holds only the held-out split's public files, runs it for K seeds under
a time and compute limit, scores it on the hidden held-out labels, records verified PGR ± SE next to the
claim, and flags a claim above its own submission's reply or a gap beyond noise between that submission's
exact public PGR and the re-run (detector ``verification_gap``; the rule is in ``_gap``, its power is
measured by ``_power``'s simulation and ``benchmarks/verify_teeth.py``). Failures
(crash, timeout, malformed predictions) are recorded with their reason.

``generalize`` runs a method on other prepared tasks (and optionally a bigger strong model) and tabulates
weak, ceiling, transfer and PGR ± SE per dataset.
"""

from aarlab.verify._gap import (
                                CLAIM_TOLERANCE,
                                GAP_FLOOR,
                                GAP_Z,
                                ClaimCheck,
                                GapTest,
                                claim_check,
                                gap_test,
                                rounding_se,
                                split_se,
)
from aarlab.verify._generalize import GeneralizationRow, generalize, plot_generalization, render_table
from aarlab.verify._runner import ComputeLimits, MethodFailure, MethodSandbox, SeedRun, run_method
from aarlab.verify._scoring import ServerHeldoutScorer, TaskDirScorer
from aarlab.verify._verifier import GAP_DETECTOR, Outcome, VerificationWorker, Verifier, VerifierSettings

__all__ = [
    "CLAIM_TOLERANCE",
    "GAP_DETECTOR",
    "GAP_FLOOR",
    "GAP_Z",
    "ClaimCheck",
    "ComputeLimits",
    "GapTest",
    "GeneralizationRow",
    "MethodFailure",
    "MethodSandbox",
    "Outcome",
    "SeedRun",
    "ServerHeldoutScorer",
    "TaskDirScorer",
    "VerificationWorker",
    "Verifier",
    "VerifierSettings",
    "claim_check",
    "gap_test",
    "generalize",
    "plot_generalization",
    "render_table",
    "rounding_se",
    "run_method",
    "split_se",
]
