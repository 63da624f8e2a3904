"""Running methods on a prepared task and scoring them on its hidden labels, seed by seed.

Each run is ``python -m <module> --data-dir <task>/public --out <tmp>/predictions.json --seed S`` in a
subprocess, exactly as the verifier runs agents' methods; its predictions are validated, then scored.
``calibrate`` runs known methods on both splits and checks that the public, private and held-out PGRs agree
within their combined standard errors: the instrument's own consistency check.
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
from aarlab.w2s.scoring import (
    Comparison,
    Score,
    SeedStats,
    aggregate,
    compare_independent,
    part_scorer,
    training_sample_sd,
)
from aarlab.w2s.taskdir import TaskDir, load_predictions


@dataclass
class MethodResult:
    """A method's scores over seeds, with the wall time of each run."""

    method: str
    scores: list[Score] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    # The test SE of the mean over seeds, bootstrapped over the seeds' predictions together (exact, where
    # ``aggregate`` of per-seed scores can only bound it); None until the runs are done.
    pgr_test_se: float | None = None

    @property
    def stats(self) -> SeedStats:
        stats = aggregate(self.scores)
        if self.pgr_test_se is not None:
            stats = stats.model_copy(update={"pgr_test_se": self.pgr_test_se})
        return stats

    def to_dict(self) -> dict:
        s = self.stats
        return {"method": self.method, "transfer_acc": s.transfer_acc, "transfer_acc_se": s.transfer_acc_se,
                "pgr": s.pgr, "pgr_se": s.pgr_se, "pgr_test_se": s.pgr_test_se, "pgr_total_se": s.pgr_total_se,
                "n_examples": s.n_examples, "n_seeds": s.n_seeds,
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
    scorer = part_scorer(task_dir, part, heldout)
    result = MethodResult(method)
    runs = []
    for seed in range(seeds):
        predictions, seconds = run_once(method, task_dir, seed, heldout=heldout, timeout=timeout)
        runs.append(predictions)
        result.scores.append(scorer.score(predictions))
        result.seconds.append(seconds)
        if on_run:
            on_run(seed, result.scores[-1], seconds)
    result.pgr_test_se = scorer.score_seeds(runs).pgr_test_se
    return result


CALIBRATION_PARTS = ("public", "private", "heldout")


@dataclass
class Calibration:
    """One method over seeds on the public part, the private part and the held-out test, and whether the
    three PGRs agree (each pair within ``z`` combined SEs)."""

    method: str
    parts: dict[str, SeedStats]
    comparisons: dict[str, Comparison]
    seconds: list[float]
    z: float = 2.0

    @property
    def agree(self) -> bool:
        return all(c.agrees(self.z) for c in self.comparisons.values())

    def to_dict(self) -> dict:
        return {"method": self.method, "agree": self.agree, "z": self.z,
                "parts": {name: {**s.model_dump(), "pgr_total_se": s.pgr_total_se} for name, s in self.parts.items()},
                "comparisons": {name: {**c.model_dump(), "agrees": c.agrees(self.z)}
                                for name, c in self.comparisons.items()},
                "minutes_per_run": sum(self.seconds) / max(1, len(self.seconds)) / 60}


def calibrate_method(method: str, task_dir: Path | str, seeds: int = 3, timeout: float | None = None,
                     z: float = 2.0, on_run=None) -> Calibration:
    """Run ``method`` on the main split and on the held-out split for seeds ``0..seeds-1``; score the public
    part, the private part and the held-out test; compare them pairwise.

    Public vs private: the same trained models on disjoint examples, so their test noise adds and the seed
    noise is that of the per-seed differences. Either vs held-out: other models (trained on the held-out
    examples) on other examples, so everything adds, and so do the two splits' baseline seed noise (the
    held-out ceiling's single seed takes the main ceiling seeds' spread) and the training-sample term
    (``scoring.training_sample_sd`` of the task). ``on_run(split, seed, seconds)`` after each run.
    """
    if seeds < 1:
        raise UserError("--seeds must be at least 1")
    scorers = {"public": part_scorer(task_dir, "public"), "private": part_scorer(task_dir, "private"),
               "heldout": part_scorer(task_dir, heldout=True)}
    main, heldout, seconds = [], [], []
    for seed in range(seeds):
        for split, runs in (("main", main), ("heldout", heldout)):
            predictions, took = run_once(method, task_dir, seed, heldout=split == "heldout", timeout=timeout)
            runs.append(predictions)
            seconds.append(took)
            if on_run:
                on_run(split, seed, took)
    main_baselines = part_scorer(task_dir, "all").baseline_seeds()
    parts = {"public": scorers["public"].score_seeds(main), "private": scorers["private"].score_seeds(main),
             "heldout": scorers["heldout"].score_seeds(
                 heldout, baselines=scorers["heldout"].baseline_seeds(reference=main_baselines))}
    training = training_sample_sd(TaskDir(task_dir).info())
    per_seed = [scorers["public"].score(run, test_se=False).pgr - scorers["private"].score(run, test_se=False).pgr
                for run in main]
    comparisons = {
        "public-private": compare_independent(parts["public"], parts["private"], paired_seeds=per_seed),
        "public-heldout": compare_independent(parts["public"], parts["heldout"], training_sample_sd=training),
        "private-heldout": compare_independent(parts["private"], parts["heldout"], training_sample_sd=training),
    }
    return Calibration(method=method, parts=parts, comparisons=comparisons, seconds=seconds, z=z)


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
