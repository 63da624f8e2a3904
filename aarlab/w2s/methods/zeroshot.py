"""Zero-shot: the strong model's prior alone, with no weak labels (e.g. MiniLM: similarity to label descriptions).

The one thing taken from the weak labels is the class balance: for a binary task, the decision threshold
on the test inputs is set so that the predicted share of each class matches the weak labels' (the raw
prior is often lopsided). ``--raw`` turns that off.
"""

import numpy as np

from aarlab.w2s.methods._common import run_method


def calibrate_to_prior(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Binary: shift the log-odds so that the share predicted as class 1 matches ``prior[1]``."""
    if probs.shape[1] != 2:
        return probs
    eps = 1e-9
    log_odds = np.log(probs[:, 1] + eps) - np.log(probs[:, 0] + eps)
    threshold = np.quantile(log_odds, 1 - prior[1])
    shifted = 1 / (1 + np.exp(-(log_odds - threshold)))
    return np.stack([1 - shifted, shifted], axis=1)


def zeroshot(data, args):
    probs = data.strong().zero_shot_proba(data.test_texts)
    return probs if args.raw else calibrate_to_prior(probs, data.weak_soft_labels.mean(axis=0))


def main(argv=None):
    run_method(__doc__.splitlines()[0], zeroshot,
               lambda p: p.add_argument("--raw", action="store_true", help="no class-balance calibration"), argv)


if __name__ == "__main__":
    main()
