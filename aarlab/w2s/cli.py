"""Commands of aarlab.w2s (placeholder until the package lands)."""
import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def info():
    """Placeholder."""
    typer.echo("not built yet")
