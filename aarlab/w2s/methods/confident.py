"""Confident labels only: train the strong model on the weak labels the teacher is most sure of, as hard labels.

Per predicted class, the ``--keep`` share with the highest weak confidence is kept (so the class balance of
the weak labels survives the filter), or every label with confidence ≥ ``--threshold`` when given.
"""

import numpy as np

from aarlab.errors import UserError
from aarlab.w2s.methods._common import hard, run_method


def confident_mask(soft: np.ndarray, keep: float, threshold: float | None) -> np.ndarray:
    confidence, predicted = soft.max(axis=1), soft.argmax(axis=1)
    if threshold is not None:
        return confidence >= threshold
    mask = np.zeros(len(soft), dtype=bool)
    for label in np.unique(predicted):
        rows = np.flatnonzero(predicted == label)
        n_keep = max(1, int(round(keep * len(rows))))
        # A stable sort so that ties break the same way on every run.
        mask[rows[np.argsort(-confidence[rows], kind="stable")[:n_keep]]] = True
    return mask


def confident(data, args):
    mask = confident_mask(data.weak_soft_labels, args.keep, args.threshold)
    if mask.sum() < 2:
        raise UserError("fewer than 2 weak labels pass the confidence filter; lower --threshold")
    strong = data.strong()
    strong.fit([t for t, m in zip(data.unlabel_texts, mask, strict=True) if m], hard(data.weak_soft_labels[mask]),
               loss="xent", seed=args.seed)
    return strong.predict_proba(data.test_texts)


def main(argv=None):
    def add(parser):
        parser.add_argument("--keep", type=float, default=0.5, help="share of each class's weak labels to keep")
        parser.add_argument("--threshold", type=float, default=None, help="keep labels with confidence ≥ this")

    run_method(__doc__.splitlines()[0], confident, add, argv)


if __name__ == "__main__":
    main()
