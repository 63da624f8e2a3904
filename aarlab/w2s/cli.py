"""``aarlab w2s``: prepare tasks, run and score methods, baselines tables, list datasets and models.

Imports stay light here; torch and friends load inside the commands that train.
"""

from __future__ import annotations

import functools
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
    size: int = typer.Option(3750, help="examples drawn in all (15% weak-train, 40% weak-labelled, 20% test, 25% held out)"),
    seeds: int = typer.Option(3, help="seeds for the fixed weak and ceiling baselines"),
    weak: str = typer.Option("glove-50d", help="weak teacher model"),
    strong: str = typer.Option("minilm-l6", help="strong student model"),
    seed: int = typer.Option(0, help="seed of the split and the teacher"),
    force: bool = typer.Option(False, help="replace a non-empty --out"),
    quiet: bool = typer.Option(False, help="no progress bars"),
):
    """Split a dataset, train the weak teacher and the strong ceiling, write a task directory."""
    from aarlab.w2s.prepare import prepare as run_prepare

    console = _console()
    path = run_prepare(dataset=dataset, out=out, size=size, seeds=seeds, weak=weak, strong=strong, seed=seed,
                       force=force, progress=not quiet, log=None if quiet else console.print)
    from aarlab.w2s.taskdir import TaskDir

    fixed = TaskDir(path).info().fixed
    typer.echo(f"wrote {path}: weak {fixed.weak_acc.mean:.3f} ± {fixed.weak_acc.se:.3f}, "
               f"ceiling {fixed.ceiling_acc.mean:.3f} ± {fixed.ceiling_acc.se:.3f} (n={fixed.weak_acc.n} seeds)")


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
        typer.echo(f"seed {seed}: transfer acc {score.transfer_acc:.3f}, PGR {score.pgr:.3f} ({seconds:.0f} s)")

    result = run(method, task, seeds, part=part, heldout=heldout, timeout=timeout, on_run=on_run)
    s = result.stats
    typer.echo(f"{method}: transfer acc {s.transfer_acc:.3f} ± {s.transfer_acc_se:.3f}, "
               f"PGR {s.pgr:.3f} ± {s.pgr_se:.3f} (n={s.n_seeds} seeds, part={part})")


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

    from aarlab.w2s.baselines import plot_pgr, resolve_method, run_method, write_results
    from aarlab.w2s.taskdir import TaskDir

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise UserError("--methods names no method")
    for name in names:
        resolve_method(name)
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
    for column in ("method", "transfer acc ± SE", "PGR ± SE", "minutes/run"):
        table.add_column(column, justify="left" if column == "method" else "right")
    table.add_row("weak teacher", f"{fixed.weak_acc.mean:.3f} ± {fixed.weak_acc.se:.3f}", "0", "")
    table.add_row("strong ceiling", f"{fixed.ceiling_acc.mean:.3f} ± {fixed.ceiling_acc.se:.3f}", "1", "")
    for r in results:
        s = r.stats
        table.add_row(r.method, f"{s.transfer_acc:.3f} ± {s.transfer_acc_se:.3f}", f"{s.pgr:.3f} ± {s.pgr_se:.3f}",
                      f"{sum(r.seconds) / len(r.seconds) / 60:.2f}")
    from rich.console import Console

    Console().print(table)
    plot = plot or task / "baselines" / "pgr.png"
    json_out = json_out or task / "baselines" / "results.json"
    plot_pgr(results, plot, f"{info.name}: {info.weak_model} → {info.strong_model} ({seeds} seeds)")
    write_results(results, json_out, task, seeds)
    typer.echo(f"wrote {plot} and {json_out}")


def _default_task() -> Path:
    """The embedded default task, prepared into the user cache on first use."""
    from aarlab.paths import cache_dir
    from aarlab.w2s.prepare import DEFAULT_SIZE, PREPARE_VERSION, prepare
    from aarlab.w2s.taskdir import TaskDir

    target = cache_dir() / "w2s" / f"default-{DEFAULT_SIZE}-v{PREPARE_VERSION}"
    if not (target / "private" / "heldout" / "test_labels.jsonl").is_file():
        typer.echo(f"preparing the embedded default task once into {target}", err=True)
        prepare(out=target, force=True, progress=True, log=_console().print)
    return TaskDir(target).check().root


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
