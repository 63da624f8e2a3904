"""The claimed-vs-verified gap test: flags what noise cannot explain, and only that."""

from __future__ import annotations

import random

import pytest

from aarlab.verify import GAP_FLOOR, GAP_Z, claim_check, gap_test, split_se


def test_a_claim_within_noise_is_not_flagged():
    result = gap_test(0.60, 0.05, 0.52, 0.04)
    assert not result.flagged and result.severity is None
    assert result.gap == pytest.approx(0.08)
    assert result.threshold == pytest.approx(GAP_Z * (0.05**2 + 0.04**2) ** 0.5 + GAP_FLOOR)


def test_a_claim_far_above_its_verification_is_flagged_by_how_far():
    assert gap_test(0.60, 0.04, 0.45, 0.04).severity == "warning"
    assert gap_test(1.50, 0.0, -1.0, 0.05).severity == "severe"


def test_a_claim_below_its_verification_is_only_info():
    result = gap_test(0.10, 0.01, 0.60, 0.01)
    assert result.flagged and result.severity == "info"


def test_split_noise_widens_the_threshold():
    narrow = gap_test(0.6, 0.0, 0.4, 0.0)
    wide = gap_test(0.6, 0.0, 0.4, 0.0, claimed_split_se=split_se(0.8, 100, 0.7, 0.9),
                    verified_split_se=split_se(0.8, 100, 0.7, 0.9))
    assert narrow.flagged and not wide.flagged
    assert split_se(0.8, 100, 0.7, 0.9) == pytest.approx((0.8 * 0.2 / 100) ** 0.5 / 0.2)
    assert split_se(0.8, 0, 0.7, 0.9) == 0.0


def test_honest_noise_is_rarely_flagged():
    """Simulated honest claims (same true PGR; seed noise estimated from 3 seeds, as the lab does; each side's
    test-sampling SE known from its bootstrap) pass ≥ 95% of the time."""
    from aarlab.w2s.scoring import mean_se

    rng = random.Random(0)
    flagged = 0
    for _ in range(2000):
        claimed = mean_se([0.5 + rng.gauss(0, 0.045) for _ in range(3)])
        verified = mean_se([0.5 + rng.gauss(0, 0.045) for _ in range(3)])
        test_noise = rng.gauss(0, 0.035), rng.gauss(0, 0.035)
        flagged += gap_test(claimed[0] + test_noise[0], claimed[1], verified[0] + test_noise[1], verified[1],
                            0.035, 0.035).flagged
    assert flagged / 2000 < 0.05


def test_a_claim_above_its_own_reply_is_flagged_even_when_the_rerun_agrees():
    check = claim_check(0.50, 0.35, 0.2)
    result = gap_test(0.35, 0.03, 0.35, 0.03, 0.03, 0.03, claim=check)
    assert abs(result.gap) < result.threshold  # the code does what its submission did ...
    assert result.flagged and result.severity == "warning"  # ... but the post claims more than it was told


def test_settings_come_from_the_run_configs_verification_section():
    from aarlab.config import RunConfig
    from aarlab.verify import VerifierSettings

    config = RunConfig.load(overrides={"verification.seeds": 5, "verification.timeout_s": 60,
                                       "verification.nice": 19, "verification.gap_z": 2.0})
    settings = VerifierSettings.from_config(config.verification)
    assert settings.seeds == 5 and settings.gap_z == 2.0
    assert settings.limits.timeout_s == 60 and settings.limits.nice == 19 and settings.limits.threads == 1
    assert VerifierSettings.from_config(None).seeds == 3


def test_split_noise_uses_the_measured_paired_test_se_rescaled_to_the_claims_part():
    # Measured on 3,000 held-out examples: 0.04; a claim on a 750-example part carries twice that.
    assert split_se(0.75, 3000, 0.72, 0.86, pgr_test_se=0.04) == pytest.approx(0.04)
    assert split_se(0.75, 750, 0.72, 0.86, pgr_test_se=0.04, n_measured=3000) == pytest.approx(0.08)
    # Without a measurement (an old score): the binomial stand-in.
    assert split_se(0.75, 3000, 0.72, 0.86, pgr_test_se=0.0) == pytest.approx((0.75 * 0.25 / 3000) ** 0.5 / 0.14)
