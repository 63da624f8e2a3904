"""Vanilla weak-to-strong: fine-tune the strong model on the weak teacher's labels (Burns et al. 2023)."""

from aarlab.w2s.methods._common import hard, run_method


def vanilla(data, args):
    targets = hard(data.weak_soft_labels) if args.hard else data.weak_soft_labels
    strong = data.strong()
    strong.fit(data.unlabel_texts, targets, loss="xent", seed=args.seed)
    return strong.predict_proba(data.test_texts)


def main(argv=None):
    run_method(__doc__, vanilla, lambda p: p.add_argument("--hard", action="store_true",
                                                          help="train on the argmax of the weak labels"), argv)


if __name__ == "__main__":
    main()
