"""``python -m aarlab.server --run-dir DIR ...``: the same as ``aarlab serve``."""

import sys

import typer

from aarlab.errors import UserError
from aarlab.server.cli import serve

if __name__ == "__main__":
    try:
        typer.run(serve)
    except UserError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
