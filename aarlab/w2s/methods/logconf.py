"""Auxiliary confidence loss (Burns et al. 2023): weak labels mixed with the student's own hardened predictions."""

from aarlab.w2s.losses import logconf as logconf_loss
from aarlab.w2s.methods._common import run_method


def logconf(data, args):
    strong = data.strong()
    strong.fit(data.unlabel_texts, data.weak_soft_labels,
               loss=logconf_loss(aux_coef=args.aux_coef, warmup_frac=args.warmup_frac), seed=args.seed)
    return strong.predict_proba(data.test_texts)


def main(argv=None):
    def add(parser):
        parser.add_argument("--aux-coef", type=float, default=0.5, help="final weight of the confidence term")
        parser.add_argument("--warmup-frac", type=float, default=0.2, help="share of training to ramp it up over")

    run_method(__doc__, logconf, add, argv)


if __name__ == "__main__":
    main()
