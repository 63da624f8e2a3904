"""How much of a method's PGR depends on *which* examples it trains on (the training-sample noise)?

The held-out split trains a method on other weak-labelled examples than the main split, so its verified PGR
differs from the claim by more than seeds and test sampling: by the spread of the expected PGR across training
samples. This measures it for one method on a prepared task, scored on the main test set (all parts):

- ``subsets``: K runs, each on its own random half of the pool of weak-labelled examples (main + held-out:
  two equal sets, so each subset has the main split's size), each with its own seed;
- ``seeds``: K runs on the main split's own examples with other seeds.

The subsets' variance holds seed + training-sample noise, the seeds' only seed noise. Two subsets of half a
pool share half their examples on average, so the excess is half the variance between independent samples
(finite-population correction 1 − n/N = 1/2)::

    training_sample_sd ≈ sqrt(2 · (var(subsets) − var(seeds)))

Runs go two at a time with one torch thread each. ``.venv/bin/python benchmarks/training_sample.py
[--task DIR] [--k 6] [--method vanilla]``; ≈ 12 min on 2 cores for the defaults.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _data_dir(task: Path, kind: str, k: int, scratch: Path) -> Path:
    public = task / "public"
    d = scratch / f"{kind}-{k}"
    d.mkdir()
    for name in ("task.json", "test.jsonl"):
        shutil.copy(public / name, d / name)
    if kind == "subsets":
        pool = (public / "train_unlabel.jsonl").read_text().splitlines() + \
               (task / "private" / "heldout" / "public" / "train_unlabel.jsonl").read_text().splitlines()
        n = len((public / "train_unlabel.jsonl").read_text().splitlines())
        (d / "train_unlabel.jsonl").write_text("\n".join(random.Random(f"subset:{k}").sample(pool, n)) + "\n")
    else:
        shutil.copy(public / "train_unlabel.jsonl", d / "train_unlabel.jsonl")
    return d


def measure(task: Path, kind: str, k: int, module: str, extra: tuple[str, ...], log) -> list[float]:
    from aarlab.w2s.scoring import part_scorer
    from aarlab.w2s.taskdir import TaskDir, load_predictions

    scorer = part_scorer(task, "all")
    info = TaskDir(task).info()
    n_test = len((task / "public" / "test.jsonl").read_text().splitlines())
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    pgrs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="aarlab-training-sample-") as tmp:
        scratch = Path(tmp)
        for start in range(0, k, 2):
            running = []
            for i in range(start, min(k, start + 2)):
                d = _data_dir(task, kind, i, scratch)
                cmd = [sys.executable, "-m", module, "--data-dir", str(d), "--out", str(d / "predictions.json"),
                       "--seed", str(100 + i), *extra]
                running.append((subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.PIPE, text=True), d))
            for proc, d in running:
                _, err = proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"{module} failed on {d.name}: {err.strip().splitlines()[-1:]}")
                predictions = load_predictions(d / "predictions.json", n_test, len(info.label_space))
                pgrs.append(scorer.score(predictions, test_se=False).pgr)
                log(f"{kind} {len(pgrs)}/{k}: PGR {pgrs[-1]:.3f}")
    return pgrs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", type=Path, help="a prepared task dir (default: the embedded default)")
    parser.add_argument("--k", type=int, default=6, help="runs per arm (subsets; the seeds arm gets k − 2, min 3)")
    parser.add_argument("--method", default="vanilla")
    args = parser.parse_args()
    from aarlab.w2s.baselines import resolve_method

    task = args.task
    if task is None:
        from aarlab.config import RunConfig
        from aarlab.paths import cache_dir
        from aarlab.team._rundir import task_cache_key

        task = cache_dir() / "prepared" / task_cache_key(RunConfig())
    if not (task / "private" / "heldout" / "public" / "train_unlabel.jsonl").is_file():
        raise SystemExit(f"no prepared task with a held-out split at {task}: run `aarlab run` once, or pass --task")
    module, extra = resolve_method(args.method)
    started = time.time()
    subsets = measure(task, "subsets", args.k, module, extra, print)
    seeds = measure(task, "seeds", max(3, args.k - 2), module, extra, print)
    sd_sub, sd_seed = float(np.std(subsets, ddof=1)), float(np.std(seeds, ddof=1))
    excess = sd_sub**2 - sd_seed**2
    estimate = math.sqrt(2 * excess) if excess > 0 else 0.0
    print(f"\n{args.method} on {task}, scored on the main test set (all parts); {time.time() - started:.0f} s\n")
    print("| arm | runs | PGR mean | PGR SD |")
    print("|---|---|---|---|")
    print(f"| random halves of the pool (seed + training sample) | {len(subsets)} | {np.mean(subsets):.3f} | {sd_sub:.3f} |")
    print(f"| the main split's examples (seed only) | {len(seeds)} | {np.mean(seeds):.3f} | {sd_seed:.3f} |")
    print(f"\ntraining-sample PGR SD ≈ sqrt(2 · ({sd_sub:.3f}² − {sd_seed:.3f}²)) = {estimate:.3f} "
          "(few runs: the estimate is rough; an SD from k runs is uncertain by about 1/sqrt(2(k−1)) of itself)")


if __name__ == "__main__":
    main()
