"""``aarlab w2s``: prepare tasks, run and score methods, baselines tables, list datasets and models.

Imports stay light here; torch and friends load inside the commands that train.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import typer

from aarlab.errors import UserError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


def _one_line_errors(command):
    """User mistakes print one line and exit 2, also when the app is driven without ``aarlab.cli.main``."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper


def _console():
    from rich.console import Console

    return Console(stderr=True)


@app.command()
@_one_line_errors
def prepare(
    out: Path = typer.Option(..., "--out", help="task directory to write (must be empty or absent)"),
    dataset: str = typer.Option("bigbench:multiemo/all_sentence_en", help="dataset spec (see `aarlab w2s datasets`)"),
    train_label: int = typer.Option(None, help="examples that train the weak teacher (default 562)"),
    train_unlabel: int = typer.Option(None, help="weak-labelled examples a method learns from; the held-out split "
                                      "gets as many (default 1500)"),
    test: int = typer.Option(None, help="examples per test part: public, private and held-out (default 4000)"),
    size: int = typer.Option(None, help="legacy: scale the three default sizes by SIZE / 15562 (the default total); "
                             "ignored when any of them is given"),
    seeds: int = typer.Option(3, help="seeds for the fixed weak and ceiling baselines"),
    heldout_seeds: int = typer.Option(None, help="seeds for the held-out ceiling (default 1)"),
    weak: str = typer.Option("glove-50d", help="weak teacher model"),
    strong: str = typer.Option("minilm-l6", help="strong student model"),
    seed: int = typer.Option(0, help="seed of the training runs (the split also draws from a fresh secret)"),
    split_secret: str = typer.Option(None, help="reuse a task's split secret (its private/split.json) to "
                                     "reproduce it exactly"),
    allow_weak_gap: bool = typer.Option(False, help="write the task even if the ceiling does not beat the "
                                        "teacher beyond noise"),
    force: bool = typer.Option(False, help="replace a non-empty --out"),
    quiet: bool = typer.Option(False, help="no progress bars"),
):
    """Split a dataset, train the weak teacher and the strong ceiling, check the signal, write a task directory."""
    from aarlab.w2s.prepare import prepare as run_prepare

    console = _console()
    path = run_prepare(dataset=dataset, out=out, size=size, seeds=seeds, weak=weak, strong=strong, seed=seed,
                       force=force, progress=not quiet, log=None if quiet else console.print,
                       train_label=train_label, train_unlabel=train_unlabel, test=test, heldout_seeds=heldout_seeds,
                       allow_weak_gap=allow_weak_gap, split_secret=split_secret)
    from aarlab.w2s.taskdir import TaskDir

    info = TaskDir(path).info()
    fixed, signal = info.fixed, info.extra.get("signal", {})
    typer.echo(f"wrote {path}: weak {fixed.weak_acc.mean:.3f} ± {fixed.weak_acc.se:.3f}, "
               f"ceiling {fixed.ceiling_acc.mean:.3f} ± {fixed.ceiling_acc.se:.3f} (n={fixed.weak_acc.n} seeds); "
               f"public part: gap {signal.get('gap', float('nan')):.3f} ± {signal.get('noise', float('nan')):.3f}, "
               f"resolves PGR differences ≥ {signal.get('resolvable_pgr_difference', float('nan')):.2f}")


def _pgr_text(stats) -> str:
    return f"PGR {stats.pgr:.3f} ± {stats.pgr_se:.3f} (seeds) ± {stats.pgr_test_se:.3f} (test)"


@app.command("run-method")
@_one_line_errors
def run_method(
    method: str = typer.Argument(..., help="a known method (see below) or a module for python -m"),
    task: Path = typer.Option(..., "--task", help="prepared task directory"),
    seeds: int = typer.Option(3, help="seeds 0..K-1"),
    part: str = typer.Option("all", help="test part to score: all, public or private"),
    heldout: bool = typer.Option(False, help="run and score on the held-out split"),
    timeout: float = typer.Option(1800, help="seconds allowed per run"),
):
    """Run a method once per seed (as a subprocess) and score it on the task's hidden labels."""
    from aarlab.w2s.baselines import resolve_method
    from aarlab.w2s.baselines import run_method as run

    resolve_method(method)
    from aarlab.w2s.taskdir import TaskDir

    TaskDir(task, heldout=heldout).check()

    def on_run(seed, score, seconds):
        typer.echo(f"seed {seed}: transfer acc {score.transfer_acc:.3f}, PGR {score.pgr:.3f} ± "
                   f"{score.pgr_test_se:.3f} (test) ({seconds:.0f} s)")

    result = run(method, task, seeds, part=part, heldout=heldout, timeout=timeout, on_run=on_run)
    s = result.stats
    typer.echo(f"{method}: transfer acc {s.transfer_acc:.3f} ± {s.transfer_acc_se:.3f}, {_pgr_text(s)} "
               f"(n={s.n_seeds} seeds, part={part}); {s.n_examples} test examples")


@app.command()
@_one_line_errors
def baselines(
    task: Path = typer.Option(None, "--task", help="prepared task directory (default: the embedded default, "
                              "prepared once into the user cache)"),
    seeds: int = typer.Option(3, help="seeds 0..K-1 per method"),
    methods: str = typer.Option("vanilla,vanilla-hard,confident,logconf,bootstrap,zeroshot",
                                help="comma-separated known methods or module names"),
    plot: Path = typer.Option(None, help="PGR bar plot (PNG); default <task>/baselines/pgr.png"),
    json_out: Path = typer.Option(None, "--json", help="results (JSON); default <task>/baselines/results.json"),
    part: str = typer.Option("all", help="test part to score: all, public or private"),
    timeout: float = typer.Option(1800, help="seconds allowed per run"),
):
    """Run every known method over seeds; print a table (acc ± SE, PGR ± SE, minutes) and plot PGR."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from aarlab.w2s.baselines import plot_pgr, run_method, write_results
    from aarlab.w2s.taskdir import TaskDir

    names = _method_names(methods)
    task = task or _default_task()
    task_dir = TaskDir(task).check()
    info = task_dir.info()
    results = []
    console = _console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        bar = progress.add_task("baselines", total=len(names) * seeds)
        for name in names:
            progress.update(bar, description=f"{name}")
            results.append(run_method(name, task, seeds, part=part, timeout=timeout,
                                      on_run=lambda *_: progress.advance(bar)))
            # Written after each method, so a long run that is stopped keeps what it measured.
            write_results(results, json_out or task / "baselines" / "results.json", task, seeds)
    fixed = info.fixed
    table = Table(title=f"{info.name}: {info.weak_model} → {info.strong_model}, {seeds} seeds, part={part}")
    for column in ("method", "transfer acc ± SE", "PGR ± SE", "test SE", "minutes/run"):
        table.add_column(column, justify="left" if column == "method" else "right")
    table.add_row("weak teacher", f"{fixed.weak_acc.mean:.3f} ± {fixed.weak_acc.se:.3f}", "0", "", "")
    table.add_row("strong ceiling", f"{fixed.ceiling_acc.mean:.3f} ± {fixed.ceiling_acc.se:.3f}", "1", "", "")
    for r in results:
        s = r.stats
        table.add_row(r.method, f"{s.transfer_acc:.3f} ± {s.transfer_acc_se:.3f}", f"{s.pgr:.3f} ± {s.pgr_se:.3f}",
                      f"{s.pgr_test_se:.3f}", f"{sum(r.seconds) / len(r.seconds) / 60:.2f}")
    from rich.console import Console

    Console().print(table)
    plot = plot or task / "baselines" / "pgr.png"
    json_out = json_out or task / "baselines" / "results.json"
    plot_pgr(results, plot, f"{info.name}: {info.weak_model} → {info.strong_model} ({seeds} seeds)")
    write_results(results, json_out, task, seeds)
    typer.echo(f"wrote {plot} and {json_out}")


# The embedded default task is the team's to define (the one ``aarlab run`` prepares into the user cache); the
# top-level CLI hands its resolver over (``set_default_task``), so that the library never imports the team.
_default_task_resolver: Callable[[Callable[[str], None]], Path] | None = None


def set_default_task(resolver: Callable[[Callable[[str], None]], Path] | None) -> None:
    """Where ``baselines`` and ``calibrate`` find their task when none is named: ``resolver(log) -> task dir``."""
    global _default_task_resolver
    _default_task_resolver = resolver


def _method_names(methods: str) -> list[str]:
    """The comma-separated ``--methods``, each checked to be a known method or an importable module."""
    from aarlab.w2s.baselines import resolve_method

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise UserError("--methods names no method")
    for name in names:
        resolve_method(name)
    return names


def _default_task() -> Path:
    """The embedded default task, prepared once into the user cache (through the resolver the CLI was given)."""
    from aarlab.w2s.taskdir import TaskDir

    if _default_task_resolver is None:
        raise UserError("name a prepared task directory (no default task is known to this program)")
    return TaskDir(_default_task_resolver(_console().print)).check().root


@app.command()
@_one_line_errors
def calibrate(
    task: Path = typer.Argument(None, help="prepared task directory (default: the embedded default, prepared once "
                                "into the user cache as `aarlab run` does)"),
    methods: str = typer.Option("vanilla,logconf", help="comma-separated known methods or module names"),
    seeds: int = typer.Option(3, help="seeds 0..K-1 per method and split"),
    z: float = typer.Option(2.0, help="agreement: every pair of PGRs within Z combined SEs"),
    json_out: bool = typer.Option(False, "--json", help="print the results as JSON (stdout) instead of a table"),
    timeout: float = typer.Option(1800, help="seconds allowed per run"),
):
    """Run known methods on the main and held-out splits: public, private and held-out PGR (mean ± seed SE ±
    test SE) per method, and whether they agree."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aarlab.w2s.baselines import calibrate_method
    from aarlab.w2s.taskdir import TaskDir

    names = _method_names(methods)
    task = task or _default_task()
    info = TaskDir(task).check().info()
    TaskDir(task, heldout=True).check()
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console()) as progress:
        bar = progress.add_task("calibrate", total=len(names) * seeds * 2)
        for name in names:
            progress.update(bar, description=name)
            results.append(calibrate_method(name, task, seeds, timeout=timeout, z=z,
                                            on_run=lambda *_: progress.advance(bar)))
    if json_out:
        typer.echo(json.dumps({"task": info.name, "dataset": info.dataset, "weak_model": info.weak_model,
                               "strong_model": info.strong_model, "sizes": info.sizes, "seeds": seeds,
                               "methods": [r.to_dict() for r in results]}, indent=2))
        return
    typer.echo(calibration_markdown(results, info, seeds))


def calibration_markdown(results, info, seeds: int) -> str:
    """The calibration table in markdown: PGR mean ± seed SE ± test SE per part, and the agreement."""
    lines = [f"{info.name}: {info.weak_model} → {info.strong_model}, {seeds} seeds; test parts of "
             f"{info.sizes.get('heldout_test', '?')} examples", "",
             "| method | public PGR | private PGR | held-out PGR | max \\|Δ\\| / combined SE | agree |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = [f"{s.pgr:.3f} ± {s.pgr_se:.3f} ± {s.pgr_test_se:.3f}" for s in
                 (r.parts["public"], r.parts["private"], r.parts["heldout"])]
        worst = max(abs(c.difference) / c.total_se if c.total_se > 0 else float("inf")
                    for c in r.comparisons.values())
        lines.append(f"| {r.method} | {' | '.join(cells)} | {worst:.2f} | {'yes' if r.agree else 'no'} |")
    lines += ["", "PGR as mean ± seed SE ± test-sampling SE; agree: every pair within "
              f"{results[0].z:g} combined SEs" if results else ""]
    if seeds < 2:
        lines.append("With one seed the seed SE is unknown (shown as 0): agreement is judged on test-sampling noise "
                     "alone, which is too strict for the held-out comparisons (other trained models).")
    return "\n".join(lines)


@app.command()
def datasets():
    """List the dataset registry."""
    from rich.console import Console
    from rich.table import Table

    from aarlab.w2s.datasets import list_datasets

    table = Table(title="datasets (spec: name[:argument][?key=value])")
    table.add_column("name")
    table.add_column("example spec")
    table.add_column("what")
    for d in list_datasets():
        table.add_row(d.name, d.example, d.description)
    Console().print(table)


@app.command()
def models():
    """List the model registry."""
    from rich.console import Console
    from rich.table import Table

    from aarlab.w2s.models import list_models

    table = Table(title="models (plus any Hugging Face causal LM as hf:<id>, trained with LoRA)")
    table.add_column("name")
    table.add_column("role")
    table.add_column("what")
    for m in list_models():
        table.add_row(m.name, m.role, m.description)
    Console().print(table)
