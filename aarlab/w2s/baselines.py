"""Running methods on a prepared task and scoring them on its hidden labels, seed by seed.

Each run is ``python -m <module> --data-dir <task>/public --out <tmp>/predictions.json --seed S`` in a
subprocess, exactly as the verifier runs agents' methods; its predictions are validated, then scored.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aarlab.errors import UserError
from aarlab.w2s.methods import KNOWN_METHODS
from aarlab.w2s.scoring import Score, SeedStats, aggregate, score_task
from aarlab.w2s.taskdir import TaskDir, load_predictions


@dataclass
class MethodResult:
    """A method's scores over seeds, with the wall time of each run."""

    method: str
    scores: list[Score] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def stats(self) -> SeedStats:
        return aggregate(self.scores)

    def to_dict(self) -> dict:
        s = self.stats
        return {"method": self.method, "transfer_acc": s.transfer_acc, "transfer_acc_se": s.transfer_acc_se,
                "pgr": s.pgr, "pgr_se": s.pgr_se, "n_seeds": s.n_seeds,
                "minutes_per_run": sum(self.seconds) / len(self.seconds) / 60,
                "per_seed": [x.model_dump() for x in self.scores]}


def resolve_method(method: str) -> tuple[str, tuple[str, ...]]:
    """A known method's (module, extra args), or an importable module name given as is."""
    if method in KNOWN_METHODS:
        return KNOWN_METHODS[method]
    if "." in method and all(part.isidentifier() for part in method.split(".")):
        return method, ()
    raise UserError(f"unknown method {method!r}; known: {', '.join(KNOWN_METHODS)} (or a module name for python -m)")


def run_once(method: str, task_dir: Path | str, seed: int, heldout: bool = False, timeout: float | None = None,
             cwd: Path | str | None = None) -> tuple[list[int], float]:
    """Run ``method`` once with ``seed``; return its validated predictions and the wall time."""
    module, extra = resolve_method(method)
    task = TaskDir(task_dir, heldout=heldout).check()
    n_test, n_labels = len(task.test_inputs()), len(task.info().label_space)
    with tempfile.TemporaryDirectory(prefix="aarlab-method-") as tmp:
        out = Path(tmp) / "predictions.json"
        cmd = [sys.executable, "-m", module, "--data-dir", str(task.public), "--out", str(out), "--seed", str(seed),
               *extra]
        started = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise UserError(f"{method} (seed {seed}) ran past its {timeout:.0f} s limit") from None
        seconds = time.time() - started
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()] or ["(no output)"]
            raise UserError(f"{method} (seed {seed}) failed with exit code {proc.returncode}: {lines[-1].strip()}")
        if not out.is_file():
            raise UserError(f"{method} (seed {seed}) exited without writing its predictions")
        return load_predictions(out, n_test, n_labels), seconds


def run_method(method: str, task_dir: Path | str, seeds: int = 3, part: str = "all", heldout: bool = False,
               timeout: float | None = None, on_run=None) -> MethodResult:
    """Run ``method`` for seeds ``0..seeds-1`` and score each run; ``on_run(seed, score, seconds)`` after each."""
    if seeds < 1:
        raise UserError("--seeds must be at least 1")
    result = MethodResult(method)
    for seed in range(seeds):
        predictions, seconds = run_once(method, task_dir, seed, heldout=heldout, timeout=timeout)
        result.scores.append(score_task(task_dir, predictions, part=part, heldout=heldout))
        result.seconds.append(seconds)
        if on_run:
            on_run(seed, result.scores[-1], seconds)
    return result


def plot_pgr(results: list[MethodResult], path: Path | str, title: str) -> Path:
    """A bar chart of PGR ± SE per method (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [r.method for r in results]
    means = [r.stats.pgr for r in results]
    errors = [r.stats.pgr_se for r in results]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    ax.bar(names, means, yerr=errors, capsize=4, color="#4878a8")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("PGR (mean ± SE)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_results(results: list[MethodResult], path: Path | str, task_dir: Path | str, seeds: int) -> Path:
    from aarlab.paths import atomic_write_text

    info = TaskDir(task_dir).info()
    atomic_write_text(Path(path), json.dumps({
        "task": info.name, "dataset": info.dataset, "weak_model": info.weak_model, "strong_model": info.strong_model,
        "fixed": info.fixed.model_dump(), "seeds": seeds, "methods": [r.to_dict() for r in results]}, indent=2))
    return Path(path)
