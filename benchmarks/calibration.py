"""Calibration of the instrument on the embedded default: do public, private and held-out PGR agree?

Prepares (or reuses) the embedded default task exactly as ``aarlab run`` does (the user cache,
``aarlab.team.prepared_task``), runs the known methods on its main and held-out splits over seeds, and
prints a markdown table: per method the public, private and held-out PGR as mean ± seed SE ± test SE, the
largest pairwise difference in combined SEs, and whether all pairs agree within 2 combined SEs.

    .venv/bin/python benchmarks/calibration.py [--methods vanilla,logconf] [--seeds 3] [--json results.json]

Cost on 2 CPU cores: prepare once (cached), then 2 runs (main + held-out) per method and seed.
``--rescore results.json`` prints the table again from a saved ``--json`` with today's noise model (no runs:
the predictions are deterministic, so only the comparisons' SEs can change).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="vanilla,logconf")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--task", type=Path, default=None, help="a prepared task dir instead of the default")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--rescore", type=Path, default=None,
                        help="no runs: recompute the comparisons of a saved --json with today's noise model")
    args = parser.parse_args(argv)
    if args.rescore:
        rescore(args.rescore)
        return

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aarlab.config import RunConfig
    from aarlab.team import prepared_task
    from aarlab.w2s.baselines import calibrate_method
    from aarlab.w2s.cli import calibration_markdown
    from aarlab.w2s.taskdir import TaskDir

    console = Console(stderr=True)
    started = time.time()
    task = args.task or prepared_task(RunConfig(), log=console.print)
    prepared_s = time.time() - started
    info = TaskDir(task).check().info()
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        bar = progress.add_task("calibrate", total=len(names) * args.seeds * 2)
        for name in names:
            progress.update(bar, description=name)
            results.append(calibrate_method(name, task, args.seeds, on_run=lambda *_: progress.advance(bar)))
            if args.json:
                args.json.write_text(json.dumps({"task": str(task), "sizes": info.sizes, "seeds": args.seeds,
                                                 "methods": [r.to_dict() for r in results]}, indent=2))
    print(calibration_markdown(results, info, args.seeds))
    signal = info.extra.get("signal", {})
    print(f"\nTask {task}: sizes {info.sizes}; public part gap {signal.get('gap', float('nan')):.3f} ± "
          f"{signal.get('noise', float('nan')):.3f}; prepare {info.extra.get('prepare_seconds')} s "
          f"(this call waited {prepared_s:.0f} s for it); calibration {time.time() - started - prepared_s:.0f} s")


def rescore(path: Path) -> None:
    """The table of a saved run, its cross-split comparisons recomputed (``compare_independent``)."""
    from aarlab.w2s.baselines import Calibration
    from aarlab.w2s.cli import calibration_markdown
    from aarlab.w2s.scoring import Comparison, SeedStats, compare_independent, training_sample_sd
    from aarlab.w2s.taskdir import TaskDir

    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read a saved calibration from {path}: {exc}") from None
    info = TaskDir(saved["task"]).check().info()
    training = training_sample_sd(TaskDir(saved["task"], heldout=True).info())
    results = []
    for method in saved["methods"]:
        parts = {name: SeedStats.model_validate({k: v for k, v in stats.items() if k != "pgr_total_se"})
                 for name, stats in method["parts"].items()}
        stored = method["comparisons"]["public-private"]
        comparisons = {
            # public vs private: the same models on both parts (per-seed differences); nothing new enters
            "public-private": Comparison.model_validate({k: v for k, v in stored.items() if k != "agrees"}),
            "public-heldout": compare_independent(parts["public"], parts["heldout"], training_sample_sd=training),
            "private-heldout": compare_independent(parts["private"], parts["heldout"], training_sample_sd=training),
        }
        results.append(Calibration(method=method["method"], parts=parts, comparisons=comparisons,
                                   seconds=[60 * method.get("minutes_per_run", 0.0)], z=method.get("z", 2.0)))
    print(calibration_markdown(results, info, saved["seeds"]))
    print(f"\nRescored {path} with training-sample SD {training:g} per split (task {saved['task']})")


if __name__ == "__main__":
    main()
