"""Does the verifier's gap test have teeth? A simulation with the embedded default's real noise.

Reads the prepared embedded default (its hidden per-example labels and per-seed baseline predictions; it is
never prepared here: pass ``--task`` or prepare it first with ``aarlab run`` / ``aarlab w2s prepare``),
simulates honest claims and planted overclaims as ``aarlab.verify._power`` describes, and prints a markdown
table: per rule, the share of honest claims flagged and the power against overclaims of +0.1/+0.2/+0.3 PGR.

    .venv/bin/python benchmarks/verify_teeth.py [--task DIR] [--claims 2000] [--pgr 0.35] [--seed-sd 0.045]

Cost: ≈ 30 CPU-seconds for 2,000 claims (pure numpy; no model runs).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, default=None, help="a prepared task dir (default: the embedded default)")
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--pgr", type=float, default=None, help="the honest method's true PGR")
    parser.add_argument("--seed-sd", type=float, default=None, help="one seed's PGR spread")
    parser.add_argument("--rng", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np

    from aarlab.verify import GAP_FLOOR, GAP_Z
    from aarlab.verify._power import (
        DEFAULT_SEED_SD,
        DEFAULT_TRUE_PGR,
        Simulator,
        coarse_rule,
        exact_rule,
        paired_rule,
        simulate,
        task_arrays,
    )
    from aarlab.w2s.scoring import part_scorer

    task = args.task or _default_task()
    if not (Path(task) / "private" / "heldout" / "test_labels.jsonl").is_file():
        raise SystemExit(f"no prepared task with a held-out split at {task}: run `aarlab run` once, or pass --task")
    true_pgr = DEFAULT_TRUE_PGR if args.pgr is None else args.pgr
    seed_sd = DEFAULT_SEED_SD if args.seed_sd is None else args.seed_sd
    main_split, heldout = task_arrays(task)
    main_baselines = part_scorer(task, "all").baseline_seeds()
    held_baselines = part_scorer(task, heldout=True).baseline_seeds(reference=main_baselines)
    from aarlab.w2s.scoring import baseline_seed_se

    baseline = baseline_seed_se(true_pgr, main_baselines, true_pgr, held_baselines)
    started = time.time()
    from aarlab.w2s.scoring import TRAINING_SAMPLE_PGR_SD as TS

    rules = {
        "before: the coarse claim, z 3, floor 0.05": coarse_rule(3.0, 0.05, with_rounding=False),
        f"fallback (no submission named): the coarse claim + rounding, z {GAP_Z:g}, floor {GAP_FLOOR:g}":
            coarse_rule(GAP_Z, GAP_FLOOR),
        f"exact public + private PGR of the submission, z {GAP_Z:g}, floor {GAP_FLOOR:g}, training SD {TS:g}":
            exact_rule(GAP_Z, GAP_FLOOR, training_sd=TS, parts="both"),
        f"exact public PGR of the submission vs the held-out re-run, z {GAP_Z:g}, floor {GAP_FLOOR:g}, "
        f"training SD {TS:g}": exact_rule(GAP_Z, GAP_FLOOR, training_sd=TS),
        f"**chosen**: the same + a 1-seed paired re-run on the main split, z {GAP_Z:g}, floor {GAP_FLOOR:g}":
            paired_rule(GAP_Z, GAP_FLOOR, training_sd=TS),
        f"exact public PGR of the submission, z {GAP_Z:g}, floor {GAP_FLOOR:g}, training SD left out":
            exact_rule(GAP_Z, GAP_FLOOR),
    }
    # The real noise: each split's training sample shifts its PGRs by the measured SD (scoring.py).
    sim = Simulator(main_split, heldout, seed_sd=seed_sd, training_sd=TS, rng=np.random.default_rng(args.rng))
    rows = simulate(sim, rules, n_claims=args.claims, true_pgr=true_pgr, baseline_se=baseline)
    chosen = {"chosen rule": paired_rule(GAP_Z, GAP_FLOOR, training_sd=TS)}
    sensitivity = [
        ("no training-sample noise at all (if the measurement overstates it)",
         Simulator(main_split, heldout, seed_sd=seed_sd, rng=np.random.default_rng(args.rng + 1))),
        ("seed SD as measured per split (vanilla, 3 seeds): main 0.058, held-out 0.019",
         Simulator(main_split, heldout, seed_sd=0.058, heldout_seed_sd=0.019, training_sd=TS,
                   rng=np.random.default_rng(args.rng + 2))),
        ("seed SD 0.065 on both splits (pessimistic)",
         Simulator(main_split, heldout, seed_sd=0.065, training_sd=TS, rng=np.random.default_rng(args.rng + 3))),
    ]
    extra = [(label, simulate(s, chosen, n_claims=args.claims, true_pgr=true_pgr, baseline_se=baseline,
                              kinds=("submission", "public"))[0]) for label, s in sensitivity]
    took = time.time() - started

    print(f"Task {task}: true PGR {true_pgr:g}, one seed's PGR SD {seed_sd:g}, 3 submitted and 3 verified seeds, "
          f"reply step {sim.step:g} accuracy = {sim.step / sim.public.gap:.3f} PGR, baselines' seed SE of the "
          f"difference {baseline:.4f}; {args.claims} claims per column\n")
    print("| rule | honest: flagged (any) | honest: flagged as overclaim | +0.1 | +0.2 | +0.3 | public-only +0.2 "
          "| claim raised +0.2 | mean threshold |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        p = row.power
        print(f"| {row.rule} | {row.false_flags:.1%} | {row.false_overclaims:.1%} | {p['submission+0.1']:.1%} | "
              f"{p['submission+0.2']:.1%} | {p['submission+0.3']:.1%} | {p['public+0.2']:.1%} | {p['claim+0.2']:.1%} "
              f"| {row.mean_threshold:.3f} |")
    print("\n+0.1/+0.2/+0.3: the submission beats its code by that much on the whole main test; public-only: on the "
          "public part only; claim raised: the post claims more than its submission's reply.\n")
    print("| chosen rule, when the noise is larger | honest: flagged (any) | +0.1 | +0.2 | +0.3 | public-only +0.2 |")
    print("|---|---|---|---|---|---|")
    for label, row in extra:
        p = row.power
        print(f"| {label} | {row.false_flags:.1%} | {p['submission+0.1']:.1%} | {p['submission+0.2']:.1%} | "
              f"{p['submission+0.3']:.1%} | {p['public+0.2']:.1%} |")
    print(f"\n({took:.0f} s)")


def _default_task() -> Path:
    """The embedded default as ``aarlab run`` prepared it; an error (never a prepare) when it is not there."""
    from aarlab.config import RunConfig
    from aarlab.paths import cache_dir
    from aarlab.team._rundir import task_cache_key

    task = cache_dir() / "prepared" / task_cache_key(RunConfig())
    if not (task / "private" / "heldout" / "test_labels.jsonl").is_file():
        raise SystemExit(f"the embedded default is not prepared at {task}: run `aarlab run` once, or pass --task")
    return task


if __name__ == "__main__":
    main()
