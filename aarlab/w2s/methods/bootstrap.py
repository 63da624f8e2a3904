"""Bootstrapping: weak → an intermediate-size model → the strong model (Burns et al. 2023).

The intermediate model is trained on the weak labels of one half of train_unlabel and relabels the other
half (and the other way round), so no example is labelled by a model that saw its weak label; the strong
model then trains on the intermediate's soft labels for all of train_unlabel.
"""

import numpy as np

from aarlab.w2s.methods._common import run_method


def bootstrap(data, args):
    n = len(data.unlabel_texts)
    order = np.random.default_rng(args.seed).permutation(n)
    halves = [order[: n // 2], order[n // 2:]]
    relabelled = np.zeros_like(data.weak_soft_labels)
    name = data.intermediate_name()
    for k, (train_rows, label_rows) in enumerate([(halves[0], halves[1]), (halves[1], halves[0])]):
        middle = data.strong(name)
        middle.fit([data.unlabel_texts[i] for i in train_rows], data.weak_soft_labels[train_rows], loss="xent",
                   seed=args.seed * 2 + k)
        relabelled[label_rows] = middle.predict_proba([data.unlabel_texts[i] for i in label_rows])
    strong = data.strong()
    strong.fit(data.unlabel_texts, relabelled, loss="xent", seed=args.seed)
    return strong.predict_proba(data.test_texts)


def main(argv=None):
    run_method(__doc__.splitlines()[0], bootstrap, None, argv)


if __name__ == "__main__":
    main()
