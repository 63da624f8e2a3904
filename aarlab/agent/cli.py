"""``aarlab agent …``: run one researcher against a lab server and a sandbox (for debugging one agent)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

from aarlab.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Run or inspect a single researcher agent.")


def _direction(value: str) -> str:
    path = Path(value)
    if value and len(value) < 4096 and path.is_file():
        return path.read_text(encoding="utf-8")
    return value


@app.command()
def run(
    lab: str = typer.Option(..., "--lab", help="The lab server's URL, e.g. http://127.0.0.1:8765"),
    token: str = typer.Option(..., "--token", envvar="AARLAB_AGENT_TOKEN", help="The agent's own bearer token"),
    workspace: Path = typer.Option(..., "--workspace", help="The agent's workspace directory (created if missing)"),
    model: str = typer.Option(..., "--model", help="provider:model, e.g. anthropic:claude-sonnet-4-5, scripted:demo"),
    sandbox: str = typer.Option("bwrap", "--sandbox", help="Sandbox backend: bwrap (isolated) or process (none)"),
    task: str | None = typer.Option(None, "--task", help="The lab's task name (default: its only task)"),
    task_dir: Path | None = typer.Option(
        None, "--task-dir", help="The task's public files, mounted read-only at /task (a prepared task dir or its public/)"
    ),
    name: str = typer.Option("agent", "--name", help="The agent's name (transcript file name)"),
    direction: str = typer.Option("", "--direction", help="Research direction: text, or a file holding it"),
    transcript: Path | None = typer.Option(
        None, "--transcript", help="Transcript JSONL (default: <workspace>/../<name>.jsonl); an existing one is resumed"
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", min=0),
    max_usd: float | None = typer.Option(None, "--max-usd", min=0),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=0),
    max_wall_s: float | None = typer.Option(None, "--max-wall-s", min=0),
    consult_model: str | None = typer.Option(None, "--consult-model", help="Model spec for the consult tool"),
    thinking: int | None = typer.Option(None, "--thinking", help="Extended-thinking token budget (Anthropic)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run one agent until it finishes, a budget runs out, or Ctrl-C (then resume with the same command)."""
    from aarlab.agent import Agent, AgentConfig
    from aarlab.llm import GenerateConfig, check_model
    from aarlab.sandbox import Mount, SandboxSpec, check_backend, create
    from aarlab.server.client import LabClient

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    check_model(model)
    if consult_model:
        check_model(consult_model)
    ok, why = check_backend(sandbox)
    if not ok:
        raise UserError(f"sandbox backend {sandbox!r} does not work here: {why}")
    if sandbox == "process":
        typer.secho("warning: the process sandbox does not isolate the agent's commands from this machine",
                    fg=typer.colors.YELLOW, err=True)
    if task_dir is None:
        typer.secho("warning: no --task-dir: the agent will find no task files at /task", fg=typer.colors.YELLOW,
                    err=True)
    mounts = []
    if task_dir is not None:
        public = task_dir / "public" if (task_dir / "public" / "task.json").is_file() else task_dir
        if not (public / "task.json").is_file():
            raise UserError(f"{task_dir} holds no task.json (give a prepared task dir or its public/ dir)")
        mounts.append(Mount(host=public.resolve(), target=Path("/task")))
    # The process backend cannot mount: its commands see the task's files at their host path.
    task_in_sandbox = str(mounts[0].host) if mounts and sandbox == "process" else "/task"
    config = AgentConfig(
        name=name, model=model, direction=_direction(direction), task=task, max_steps=max_steps, max_usd=max_usd,
        max_tokens=max_tokens, max_wall_s=max_wall_s, consult_model=consult_model,
        generate=GenerateConfig(thinking_budget=thinking), task_dir=task_in_sandbox,
    )
    workspace = workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    transcript = transcript or workspace.parent / f"{name}.jsonl"
    client = LabClient(lab, token)
    client.health()  # fail now, with the server's address, if it is not there
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with create(sandbox, SandboxSpec(workspace=workspace, mounts=mounts, name=name)) as box:
        agent = Agent(config, transcript=transcript, sandbox=box, client=client, stop_event=stop)
        try:
            record = agent.run()
        except KeyboardInterrupt:
            stop.set()
            raise typer.Exit(130) from None
    spent = agent.budget.spent
    typer.echo(f"{name} stopped at step {record.step}: {record.reason} ({record.detail}); "
               f"spent ${spent.usd:.4f}, {spent.tokens:,} tokens, {spent.wall_s:.0f} s. Transcript: {transcript}")


@app.command()
def show(
    transcript: Path = typer.Argument(..., help="A transcript JSONL file"),
    last: int = typer.Option(10, "--last", help="How many of the last turns to show"),
) -> None:
    """Print a transcript's spend and its last turns (tool calls and the start of their results)."""
    from aarlab.agent.transcript import read_transcript, replay

    if not transcript.is_file():
        raise UserError(f"no transcript at {transcript}")
    records = read_transcript(transcript)
    state = replay(records)
    typer.echo(f"{len(records)} records, {state.step} steps, {state.compactions} compactions, "
               f"${state.cost_usd:.4f}, {state.usage.total_tokens:,} tokens"
               + (f", stopped: {state.stopped}" if state.stopped else ""))
    for rec in [r for r in records if r.get("type") == "turn"][-last:]:
        assistant = rec["assistant"]
        text = (assistant.get("content") or "").strip().replace("\n", " ")
        typer.echo(f"[{rec['step']}] {text[:160]}")
        results = {r.get("tool_call_id"): r for r in rec.get("tool_results", [])}
        for call in assistant.get("tool_calls", []):
            result = results.get(call["id"], {})
            mark = "!" if result.get("is_error") else "→"
            first = (result.get("content") or "").strip().splitlines()[:1]
            typer.echo(f"    {call['name']}({str(call.get('arguments'))[:120]}) {mark} {first[0][:120] if first else ''}")
