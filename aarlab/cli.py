"""The ``aarlab`` command line.

Each package owns its commands in its own ``cli.py`` (imports there stay light; heavy stacks are imported
inside the command functions). This module only mounts them and turns user mistakes into one-line errors.
"""

import sys

import typer

from aarlab.errors import UserError

app = typer.Typer(
    name="aarlab",
    help="An open lab for automated alignment research: a team of LLM researchers on weak-to-strong supervision.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _mount() -> None:
    from aarlab.agent import cli as agent_cli
    from aarlab.dashboard import cli as dashboard_cli
    from aarlab.monitor import cli as monitor_cli
    from aarlab.sandbox import cli as sandbox_cli
    from aarlab.server import cli as server_cli
    from aarlab.team import cli as team_cli
    from aarlab.verify import cli as verify_cli
    from aarlab.w2s import cli as w2s_cli

    app.command("run")(team_cli.run)
    app.command("resume")(team_cli.resume)
    app.command("status")(team_cli.status)
    from aarlab.app import create_lab_app

    app.command("serve")(server_cli.serve_command(create_lab_app))
    app.command("verify")(verify_cli.verify)
    app.command("generalize")(verify_cli.generalize)
    app.command("flags")(monitor_cli.flags)
    app.command("report")(dashboard_cli.report)
    app.command("export")(dashboard_cli.export)
    w2s_cli.set_default_task(_embedded_default_task)
    app.add_typer(w2s_cli.app, name="w2s", help="The weak-to-strong library: prepare tasks, run methods, baselines.")
    app.add_typer(agent_cli.app, name="agent", help="Run or inspect a single researcher agent.")
    app.add_typer(sandbox_cli.app, name="sandbox", help="Check and try the sandbox backends.")


def _embedded_default_task(log):
    """The task ``aarlab run`` uses with no config, prepared once into the user cache."""
    from aarlab.config import RunConfig
    from aarlab.team import prepared_task

    return prepared_task(RunConfig(), log=log)


_mount()


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except UserError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
