"""`aarlab report RUN_DIR` and `aarlab export RUN_DIR --format inspect` (mounted by aarlab/cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from aarlab.errors import UserError


def report(
    run_dir: Path = typer.Argument(..., help="The run directory (runs/<id>)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write (default: RUN_DIR/report)."),
):
    """Write a self-contained HTML report and a markdown summary of a run (finished, stopped or crashed)."""
    from aarlab.dashboard._report import build_report

    files = build_report(run_dir, out)
    typer.echo(f"wrote {files.html}, {files.markdown} and {len(files.plots)} plots in {files.html.parent / 'plots'}")


def export(
    run_dir: Path = typer.Argument(..., help="The run directory (runs/<id>)."),
    format: str = typer.Option("inspect", "--format", help="Export format (only 'inspect': Inspect eval logs)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write (default: RUN_DIR/inspect)."),
    agent: list[str] | None = typer.Option(None, "--agent", help="Only these agents (repeatable)."),
):
    """Export each agent's transcript as an Inspect eval log, for `inspect view --log-dir OUT`."""
    if format != "inspect":
        raise UserError(f"unknown export format {format!r} (supported: inspect)")
    from aarlab.dashboard._inspect import export_inspect

    written = export_inspect(run_dir, out, agents=agent or None)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"open them with: inspect view --log-dir {written[0].parent}")
