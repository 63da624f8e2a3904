"""The claimed-vs-verified gap test: flags what noise cannot explain, and only that."""

from __future__ import annotations

import random

import pytest

from aarlab.verify import gap_test, split_se


def test_a_claim_within_noise_is_not_flagged():
    result = gap_test(0.60, 0.05, 0.52, 0.04)
    assert not result.flagged and result.severity is None
    assert result.gap == pytest.approx(0.08)
    assert result.threshold == pytest.approx(3 * (0.05**2 + 0.04**2) ** 0.5 + 0.05)


def test_a_claim_far_above_its_verification_is_flagged_by_how_far():
    assert gap_test(0.60, 0.02, 0.40, 0.02).severity == "warning"
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
    """Simulated honest claims (same true PGR, independent seed and split noise) pass ≥ 97% of the time (3-seed SEs are themselves noisy)."""
    from aarlab.w2s.scoring import mean_se

    rng = random.Random(0)
    flagged = 0
    for _ in range(2000):
        claimed = mean_se([0.5 + rng.gauss(0, 0.08) + rng.gauss(0, 0.1) for _ in range(3)])
        verified = mean_se([0.5 + rng.gauss(0, 0.08) + rng.gauss(0, 0.1) for _ in range(3)])
        flagged += gap_test(*claimed, *verified).flagged
    assert flagged / 2000 < 0.03


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
