"""``aarlab serve``: run the lab server for a run directory (imports stay inside the command).

``serve_command(app_factory)`` builds the command around an app factory: ``aarlab serve`` passes
``aarlab.app.create_lab_app`` (API and dashboard); ``python -m aarlab.server`` serves the API alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer


def serve_command(app_factory: Callable[[Any, Any], Any] | None = None) -> Callable[..., None]:
    """The ``serve`` command, serving the app that ``app_factory(store, settings)`` builds."""

    def serve(
        run_dir: Annotated[Path, typer.Option("--run-dir", help="Run directory: lab.db, snapshots/, admin_token.")],
        db: Annotated[str | None, typer.Option("--db", help="Database URL (postgresql://...); default <run-dir>/lab.db.")] = None,
        host: Annotated[str, typer.Option(help="Interface to listen on. Keep 127.0.0.1 unless you know why not.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8321,
        task: Annotated[list[Path] | None, typer.Option("--task", help="Prepared task directory to register (repeatable).")] = None,
        viewer_token: Annotated[str | None, typer.Option(envvar="AARLAB_VIEWER_TOKEN", help="Read-only token for dashboards (default: <run-dir>/viewer_token if present).")] = None,
        submissions_per_run: Annotated[int, typer.Option(help="Submissions per agent and task over the run.")] = 100,
        submissions_per_hour: Annotated[int, typer.Option(help="Submissions per agent and task in any hour.")] = 20,
        min_result_seeds: Annotated[int, typer.Option(help="Seeds a result post must report at least.")] = 3,
    ) -> None:
        """Serve the lab (evaluation, forum, snapshots, leaderboard, events) until interrupted.

        The admin token is read from <run-dir>/admin_token (created, mode 0600, when missing); the viewer token
        from <run-dir>/viewer_token when the option is not given (a token given as an option is written there,
        mode 0600). Tokens are never printed: the dashboard's address is, with the file that holds its token.
        """
        import signal
        import threading

        from aarlab.server._runner import LabServer, read_or_create_admin_token, write_secret
        from aarlab.server._settings import ServerSettings

        run_dir.mkdir(parents=True, exist_ok=True)
        viewer_file = run_dir / "viewer_token"
        if viewer_token is None and viewer_file.is_file():
            # A run made by `aarlab run` keeps its dashboard token here; serving it again should just work.
            viewer_token = viewer_file.read_text().strip() or None
        settings = ServerSettings(admin_token=read_or_create_admin_token(run_dir), viewer_token=viewer_token,
                                  run_dir=run_dir, submissions_per_run=submissions_per_run,
                                  submissions_per_hour=submissions_per_hour, min_result_seeds=min_result_seeds)
        if viewer_token is not None and (not viewer_file.is_file() or viewer_file.read_text().strip() != viewer_token):
            write_secret(viewer_file, viewer_token)
        server = LabServer(run_dir=run_dir, db_url=db, settings=settings, host=host, port=port, tasks=task or (),
                           app_factory=app_factory)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with server:
            names = ", ".join(t.name for t in server.app.state.lab.tasks()) or "none"
            typer.echo(f"lab server on {server.url} (database: {server.store.dialect}; tasks: {names}; "
                       f"admin token in {run_dir / 'admin_token'})", err=True)
            if settings.viewer_token:
                # The token itself stays out of the terminal and its logs: open <url>/?token=<the file's content>.
                typer.echo(f"dashboard: {server.url}/ (viewer token in {viewer_file})", err=True)
            typer.echo(server.url, err=False)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass

    return serve


serve = serve_command()
