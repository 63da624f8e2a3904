"""``aarlab run``, ``aarlab resume`` and ``aarlab status``: the team's commands (mounted by ``aarlab/cli.py``)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from aarlab.errors import UserError


def _console():
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 150  # logs and CI: wide enough for the tables
    return console


def _setup_logging(run_dir: Path) -> logging.Handler:
    """Everything the harness logs goes to ``RUN_DIR/aarlab.log`` (the terminal belongs to the live view)."""
    root = logging.getLogger()
    handler = logging.FileHandler(run_dir / "aarlab.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    handler._aarlab_run = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


def _run_session(run_dir: Path, config, console, live: bool) -> None:
    handler = _setup_logging(run_dir)
    try:
        session = _session(run_dir, config, console, live)
        session.run()
        _conclude(session, console)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _session(run_dir: Path, config, console, live: bool):
    from aarlab.team._team import TeamSession
    from aarlab.team._view import LiveView

    def note(line: str) -> None:
        console.print(line, highlight=False)

    return TeamSession(run_dir, config, note=note, view_factory=(lambda s: LiveView(s, console)) if live else None)


def _conclude(session, console) -> None:
    """The last words of a session: the leaderboard, and where the dashboard and the report are."""
    from aarlab.team._view import TeamSnapshot, isolation_warning

    state = session.state
    snapshot = TeamSnapshot(session.run_dir)
    if session.final_lab is not None:
        snapshot.lab = session.final_lab
        console.print(snapshot.leaderboard_table(top=10))
    console.print(snapshot.agents_table(state))
    run_dir = session.run_dir
    if state.status == "stopped":
        console.print(f"[yellow]run stopped[/] ({state.reason}); continue it with: aarlab resume {run_dir}")
    elif state.status == "budget":
        console.print(f"[yellow]the team's budget is spent[/] ({state.reason})")
    else:
        console.print(f"[green]run finished[/]: {run_dir}")
    warning = isolation_warning(session.config, session.unisolated)
    if warning is not None:
        console.print(warning)
    if session.report_path is not None:
        console.print(f"report:    {session.report_path}")
    else:
        console.print(f"report:    aarlab report {run_dir}")
    for line in dashboard_lines(run_dir, session.config):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"status:    aarlab status {run_dir}")


def dashboard_lines(run_dir: Path, config) -> list[str]:
    """How to open the run's dashboard once its session is over: ``aarlab serve`` on the run dir, with the
    run's viewer token (``RUN_DIR/viewer_token``), then the URL with ``?token=``."""
    from aarlab.team._rundir import VIEWER_TOKEN_FILE, dashboard_url, ensure_viewer_token

    if config.server.url:
        return [f"dashboard: {config.server.url.rstrip('/')}/ (the lab server's own viewer token)"]
    token = ensure_viewer_token(run_dir)
    port = 8321  # `aarlab serve`'s default port
    return [f"dashboard: aarlab serve --run-dir {run_dir}   (reads {run_dir / VIEWER_TOKEN_FILE})",
            f"           then open {dashboard_url(f'http://127.0.0.1:{port}', token)}"]


def run(
    config_file: Annotated[Path | None, typer.Argument(metavar="CONFIG.yaml", help="A run config (YAML); "
                                                       "default: the offline embedded setup.")] = None,
    agents: Annotated[int | None, typer.Option("--agents", "-n", help="Number of researchers.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="PROVIDER:MODEL for every researcher, "
                                              "e.g. anthropic:claude-sonnet-4-5 or scripted:demo.")] = None,
    budget_usd: Annotated[float | None, typer.Option("--budget-usd", help="The team's total $ budget.")] = None,
    hours: Annotated[float | None, typer.Option("--hours", help="The team's total wall-clock budget.")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Where the run lives (default runs/<time>-<name>).")] = None,
    homogeneous: Annotated[bool, typer.Option("--homogeneous", help="Give every researcher the same general "
                                              "brief (the study's ablation) instead of one direction each.")] = False,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Run sandboxes on a Ray cluster: "
                                                "ray://HOST:PORT, or auto for the local one.")] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="The live terminal view.")] = True,
) -> None:
    """Run a team of researcher agents on a weak-to-strong task, with the lab server, verifier and monitors."""
    from aarlab.config import DEFAULT_MODELS, RunConfig
    from aarlab.team._rundir import create_run, default_run_dir

    console = _console()
    overrides = {"team.agents": agents, "team.model": model, "budget.total.usd": budget_usd,
                 "budget.total.hours": hours, "cluster": cluster}
    if homogeneous:
        overrides["team.homogeneous"] = True
    config = RunConfig.load(config_file, overrides)
    if not config.team.model and not config.team.models and not any(os.environ.get(v) for v, _ in DEFAULT_MODELS):
        console.print("no API key (ANTHROPIC_API_KEY, OPENAI_API_KEY) and no --model: running the offline demo "
                      "researcher (scripted:demo) on the embedded lab", highlight=False)
    run_dir = run_dir or default_run_dir(config)
    create_run(config, run_dir, log=lambda line: console.print(line, highlight=False))
    console.print(f"run directory: {run_dir}")
    _run_session(run_dir, config, console, live)


def resume(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The run directory to continue.")],
    live: Annotated[bool, typer.Option("--live/--no-live", help="The live terminal view.")] = True,
) -> None:
    """Continue a stopped or crashed run exactly where it was."""
    from aarlab.config import RunConfig, check_model_spec
    from aarlab.team._rundir import check_resumable
    from aarlab.team._state import RunState

    check_resumable(run_dir)
    config = RunConfig.load(run_dir / "config.yaml")
    state = RunState.load(run_dir)
    for spec in {a.model for a in state.unfinished_agents}:
        check_model_spec(spec, **config.model_options(spec))
    console = _console()
    if not state.unfinished_agents and state.status in ("finished", "budget"):
        console.print(f"{run_dir} has finished ({state.status}); nothing to resume")
        return
    todo = [a.name for a in state.agents if a.status not in ("done",)]
    console.print(f"resuming {run_dir} (session {state.sessions + 1}): {', '.join(todo) or 'no agent'} to continue")
    _run_session(run_dir, config, console, live)


def status(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory.")],
) -> None:
    """Show a run's agents, budgets spent, best claimed and verified PGR, and flags."""
    from aarlab.config import RunConfig
    from aarlab.team._state import RunState, session_running
    from aarlab.team._view import TeamSnapshot, isolation_warning

    if not (run_dir / "state.json").is_file():
        raise UserError(f"{run_dir} is not an aarlab run directory (no state.json)")
    state = RunState.load(run_dir)
    config = RunConfig.load(run_dir / "config.yaml")
    console = _console()
    snapshot = TeamSnapshot(run_dir)
    snapshot.lab = read_lab(run_dir)
    status_text = state.status
    if state.status == "running" and not session_running(run_dir):
        status_text = f"interrupted (killed or crashed; continue with: aarlab resume {run_dir})"
    elif state.status == "running":
        status_text = "running now"
    console.print(f"run {state.run_id}: {status_text}" + (f" ({state.reason})" if state.reason else "")
                  + f" · task {state.task or '-'} · {state.sessions} session(s)")
    warning = isolation_warning(config)
    if warning is not None:
        console.print(warning)
    console.print(snapshot.agents_table(state))
    console.print(snapshot.budget_line(state, config, state.elapsed_s))
    best = snapshot.best_by_author()
    claimed = [c for c, _ in best.values() if c is not None]
    verified = [v for _, v in best.values() if v is not None]
    console.print(f"best claimed PGR: {max(claimed):.3f}" if claimed else "best claimed PGR: -", end="   ")
    console.print(f"best verified PGR: {max(verified):.3f}" if verified else "best verified PGR: -", end="   ")
    open_flags = [f for f in snapshot.lab.flags if getattr(f, "status", "open") == "open"]
    console.print(f"flags: {len(snapshot.lab.flags)} ({len(open_flags)} open)")
    for agent in state.agents:
        if agent.status == "failed" or (agent.reason and agent.status != "done"):
            console.print(f"  {agent.name}: {agent.status}: {agent.reason}")
        for rec in agent.recoveries:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rec.get("time") or 0))
            moved = "{} → {}".format(*((r or {}).get("host", "?") for r in (rec.get("from_node"), rec.get("to_node"))))
            console.print(f"  {agent.name}: sandbox node lost at {when} UTC ({rec.get('reason', '?')}); recreated "
                          f"{moved}, {rec.get('lost_s', '?')} s of work lost")
    console.print(snapshot.leaderboard_table(top=10))
    if state.status == "running" and session_running(run_dir) and state.lab_url and not config.server.url:
        from aarlab.team._rundir import dashboard_url, ensure_viewer_token

        console.print(f"dashboard: {dashboard_url(state.lab_url, ensure_viewer_token(run_dir))}", soft_wrap=True)
    else:
        for line in dashboard_lines(run_dir, config):
            console.print(line, highlight=False, soft_wrap=True)


def read_lab(run_dir: Path):
    """The leaderboard and flags of a run, read by a short-lived lab server on its database."""
    from aarlab.team._rundir import ADMIN_TOKEN_FILE
    from aarlab.team._view import LabView, fetch_lab

    try:
        from aarlab.server import LabServer, ServerSettings
    except ImportError as exc:
        return LabView(error=f"the lab server is not available: {exc}")
    token = (run_dir / ADMIN_TOKEN_FILE).read_text().strip()
    if not (run_dir / "lab.db").exists():
        return LabView(error="no lab database yet")
    server = LabServer(run_dir=run_dir, settings=ServerSettings(admin_token=token, run_dir=run_dir))
    server.start()
    try:
        return fetch_lab(server.url, token, None)
    finally:
        server.stop()
