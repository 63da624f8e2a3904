"""Generalization: run one method on other prepared tasks and say how much of the gap it recovers on each.

Each (method, task) pair runs like a verification: a fresh sandbox per seed with only the task's public files
at ``/task``; predictions are scored on the task's hidden test labels (both parts). The weak and ceiling
accuracies are the task's fixed baselines on exactly those examples, so PGR ± SE is comparable across rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from aarlab.verify._runner import ComputeLimits, MethodFailure, MethodSandbox
from aarlab.verify._scoring import TaskDirScorer


class GeneralizationRow(BaseModel):
    """One method on one task: baselines, transfer accuracy and PGR (mean ± SE over seeds), or why it failed."""

    method: str
    dataset: str
    task_dir: str
    strong_model: str = ""
    n_test: int = 0
    weak_acc: float | None = None
    ceiling_acc: float | None = None
    transfer_acc: float | None = None
    transfer_acc_se: float | None = None
    pgr: float | None = None
    pgr_se: float | None = None
    seeds: int = 0
    per_seed_pgr: list[float] = []
    error: str | None = None


def known_method_entry_point(name: str) -> str:
    """``vanilla`` → ``aarlab.w2s.methods.vanilla``; a dotted name is taken as the module itself."""
    return name if "." in name else f"aarlab.w2s.methods.{name}"


def generalize(
    entry_point: str,
    task_dirs: Sequence[Path | str],
    seeds: int = 3,
    limits: ComputeLimits | None = None,
    code_tar: bytes | None = None,
    method_label: str | None = None,
    work_root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[GeneralizationRow]:
    """Run ``entry_point`` (with ``code_tar`` as its code root, if given) for ``seeds`` seeds on each task dir."""
    from aarlab.w2s.scoring import aggregate
    from aarlab.w2s.taskdir import TaskDir

    limits = limits or ComputeLimits()
    label = method_label or entry_point
    rows = []
    for task_dir in task_dirs:
        task = TaskDir(task_dir).check()
        info = task.info()
        scorer = TaskDirScorer(task_dir, heldout=False)
        row = GeneralizationRow(method=label, dataset=info.dataset, task_dir=str(task_dir),
                                strong_model=info.strong_model, n_test=len(scorer.labels))
        scores = []
        try:
            with MethodSandbox(task.public, limits, work_root) as box:
                for seed in range(seeds):
                    if progress:
                        progress(f"{label} on {info.dataset}: seed {seed}")
                    scores.append(scorer.score(box.run(entry_point, seed, code_tar).predictions))
        except MethodFailure as exc:
            row.error = f"{exc.kind}: {exc.reason}"
        if scores and row.error is None:
            stats = aggregate(scores)
            row.weak_acc, row.ceiling_acc = scores[0].weak_acc, scores[0].ceiling_acc
            row.transfer_acc, row.transfer_acc_se = stats.transfer_acc, stats.transfer_acc_se
            row.pgr, row.pgr_se, row.seeds = stats.pgr, stats.pgr_se, stats.n_seeds
            row.per_seed_pgr = [s.pgr for s in scores]
        rows.append(row)
    return rows


def _fmt(value: float | None, se: float | None = None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}" if se is None else f"{value:.{digits}f} ± {se:.{digits}f}"


def render_table(rows: Sequence[GeneralizationRow]) -> str:
    """A Markdown table: method, dataset, n, weak, ceiling, transfer ± SE, PGR ± SE (seeds)."""
    lines = ["| method | dataset | strong model | n test | weak | ceiling | transfer | PGR ± SE (seeds) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        pgr = f"{_fmt(r.pgr, r.pgr_se, 2)} ({r.seeds})" if r.error is None else f"failed: {r.error[:80]}"
        lines.append(f"| {r.method} | {r.dataset} | {r.strong_model} | {r.n_test} | {_fmt(r.weak_acc)} | "
                     f"{_fmt(r.ceiling_acc)} | {_fmt(r.transfer_acc, r.transfer_acc_se)} | {pgr} |")
    return "\n".join(lines)


def plot_generalization(rows: Sequence[GeneralizationRow], path: Path | str, title: str = "Generalization") -> Path:
    """Grouped bars of PGR ± SE: one group per dataset, one bar per method. Writes a PNG and returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(datasets) * max(1, len(methods)) ** 0.5), 3.6))
    for m_index, method in enumerate(methods):
        xs, ys, errs = [], [], []
        for d_index, dataset in enumerate(datasets):
            match = [r for r in rows if r.method == method and r.dataset == dataset and r.pgr is not None]
            if match:
                xs.append(d_index + (m_index - (len(methods) - 1) / 2) * width)
                ys.append(match[0].pgr)
                errs.append(match[0].pgr_se or 0.0)
        ax.bar(xs, ys, width=width, yerr=errs, capsize=3, label=method)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("PGR (mean ± SE over seeds)")
    ax.set_title(title)
    if len(methods) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
