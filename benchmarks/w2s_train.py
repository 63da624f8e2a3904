"""Benchmark of aarlab.w2s training: our loop vs a bare torch loop, and the default task's wall time.

    .venv/bin/python benchmarks/w2s_train.py [--model minilm-l6] [--n 256] [--end-to-end]

1. examples/s of ``aarlab.w2s.train.train`` against a bare torch loop (forward, cross entropy, backward,
   AdamW step) on the same model, the same pre-tokenized batches in the same order, the same number of steps;
   target ratio ≥ 0.9. Each loop runs twice, alternating, and the faster run of each counts (the CPU is
   shared, so single timings are noisy).
2. ``--end-to-end``: wall and CPU seconds of ``aarlab w2s prepare`` at the default size and of one
   ``vanilla`` run on the task it writes (the targets: prepare ≤ 5 min, one method run ≤ 90 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def loop_speed(model_name: str, n: int, seeds: int = 2) -> list[tuple[str, float]]:
    import numpy as np
    import torch

    from aarlab.w2s.datasets import load_dataset
    from aarlab.w2s.losses import xent
    from aarlab.w2s.models import get_model
    from aarlab.w2s.train import batch_order, train

    spec = "synthetic:2000" if model_name.startswith("hashbow") else "bigbench:multiemo/all_sentence_en"
    examples = load_dataset(spec)[:n]
    texts = [ex.text for ex in examples]
    targets = torch.as_tensor(np.eye(2, dtype=np.float32)[[ex.label for ex in examples]])
    clf = get_model(model_name, ["negative", "positive"])
    collate = clf.collate(texts)
    config = clf.config
    batches = batch_order(n, config, 0, getattr(collate, "lengths", None))
    prepared = [(collate(idx), idx) for idx in batches]  # both loops get identical, pre-collated batches

    cached = {tuple(idx.tolist()): batch for batch, idx in prepared}

    def cached_collate(idx):
        return cached[tuple(idx.tolist())]

    # Same lengths → train() draws exactly the batches of ``prepared``, in the same order.
    cached_collate.lengths = getattr(collate, "lengths", None)

    def ours():
        module = clf.build(0)
        train(module, cached_collate, targets, xent, config, seed=0)

    def bare():
        module = clf.build(0)
        module.train()
        optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=config.lr)
        for batch, idx in prepared:
            loss = torch.nn.functional.cross_entropy(module(batch), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    examples_seen = sum(len(idx) for _, idx in prepared)
    best = {"ours": float("inf"), "bare": float("inf")}
    for _ in range(seeds):
        for name, fn in (("bare", bare), ("ours", ours)):
            torch.manual_seed(0)
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return [("bare torch loop", examples_seen / best["bare"]), ("aarlab.w2s.train", examples_seen / best["ours"])]


def end_to_end(size: int | None) -> list[tuple[str, float, float]]:
    rows = []
    aarlab = [sys.executable, "-m", "aarlab.cli", "w2s"]
    with tempfile.TemporaryDirectory(prefix="w2s-bench-") as tmp:
        task = Path(tmp) / "task"
        cmd = [*aarlab, "prepare", "--out", str(task), "--quiet"] + (["--size", str(size)] if size else [])
        for label, command in (("prepare (default task)", cmd),
                               ("vanilla, one seed", [*aarlab, "run-method", "vanilla", "--task", str(task), "--seeds", "1"])):
            cpu0, started = _cpu_children(), time.time()
            subprocess.run(command, check=True, env=os.environ.copy())
            rows.append((label, time.time() - started, _cpu_children() - cpu0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--n", type=int, default=256, help="training examples for the loop comparison")
    parser.add_argument("--end-to-end", action="store_true", help="also time prepare + one method run")
    parser.add_argument("--size", type=int, default=None, help="prepare --size for --end-to-end (default: the default)")
    args = parser.parse_args()
    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console()
    speeds = loop_speed(args.model, args.n)
    table = Table(title=f"training loop, {args.model}, {args.n} examples, {torch.get_num_threads()} torch threads")
    table.add_column("loop")
    table.add_column("examples/s", justify="right")
    table.add_column("ratio to bare", justify="right")
    for name, speed in speeds:
        table.add_row(name, f"{speed:.1f}", f"{speed / speeds[0][1]:.3f}")
    console.print(table)
    if args.end_to_end:
        table = Table(title="default task, wall and CPU time (CPU shared with other jobs: wall is inflated)")
        for column in ("step", "wall s", "CPU s"):
            table.add_column(column, justify="left" if column == "step" else "right")
        for name, wall, cpu in end_to_end(args.size):
            table.add_row(name, f"{wall:.0f}", f"{cpu:.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
