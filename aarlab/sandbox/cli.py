"""``aarlab sandbox check`` and ``aarlab sandbox exec``: see which backends isolate here, and try one.

Imports stay light: a backend's module (and Ray, for ``ray``) is loaded only when that backend is checked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from aarlab.errors import UserError

app = typer.Typer(no_args_is_help=True)

BACKENDS = ("bwrap", "process", "docker", "ray")


def _isolates(name: str) -> bool | None:
    """Whether the backend isolates agents (None: it cannot even be loaded here)."""
    from aarlab.sandbox._registry import _backend_class

    try:
        return bool(getattr(_backend_class(name), "isolates", True))
    except UserError:
        return None


@app.command()
def check(
    backend: list[str] = typer.Option(None, "--backend", "-b", help="Check only these backends."),
) -> None:
    """List the sandbox backends, whether each works here and whether it isolates agents."""
    from aarlab.sandbox import NOT_ISOLATED_WARNING, check_backend

    names = backend or list(BACKENDS)
    for name in names:
        if name not in BACKENDS:
            raise UserError(f"unknown sandbox backend {name!r} (known: {', '.join(BACKENDS)})")
    width = max(len(n) for n in names)
    for name in names:
        ok, reason = check_backend(name)
        isolates = _isolates(name)
        status = "works" if ok else "unavailable"
        isolation = {True: "isolates", False: "NO ISOLATION", None: "unknown"}[isolates]
        color = typer.colors.GREEN if ok and isolates else (typer.colors.RED if ok else typer.colors.YELLOW)
        typer.secho(f"{name:<{width}}  {status:<11}  {isolation:<12}  {reason}", fg=color)
    if "process" in names:
        typer.secho(f"WARNING: {NOT_ISOLATED_WARNING}", fg=typer.colors.RED, bold=True, err=True)
    try:
        from aarlab.sandbox import default_backend

        typer.echo(f"default: {default_backend()}")
    except UserError as exc:
        typer.echo(f"default: none ({exc})")


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_command(
    ctx: typer.Context,
    backend: str = typer.Option(None, "--backend", "-b", help="bwrap (default on Linux), process, docker, ray."),
    workspace: Path = typer.Option(..., "--workspace", "-w", help="Host directory used as /workspace."),
    timeout: float = typer.Option(60.0, "--timeout", help="Wall-clock limit in seconds; the whole tree is killed."),
    memory_mb: int = typer.Option(4096, "--memory-mb", help="Memory limit."),
    mount: list[str] = typer.Option(
        None, "--mount", help="HOST:TARGET (read-only) or HOST:TARGET:rw; repeatable. E.g. task/public:/task."
    ),
    gpu: list[int] = typer.Option(None, "--gpu", help="A GPU index the sandbox may use; repeatable."),
    allow_weak_limits: bool = typer.Option(
        False, "--allow-weak-limits", help="Run without a cgroup (memory per process only); see docs/security.md."
    ),
) -> None:
    """Run one command in a fresh sandbox over WORKSPACE: ``aarlab sandbox exec -w ws -- python -V``.

    Prints the command's stdout and stderr and exits with its exit code (124 on timeout).
    """
    from aarlab.sandbox import NOT_ISOLATED_WARNING, Mount, SandboxError, SandboxSpec, create, default_backend

    argv = [a for a in ctx.args if a != "--"] if ctx.args[:1] == ["--"] else list(ctx.args)
    if not argv:
        raise UserError("no command given: aarlab sandbox exec --workspace DIR -- COMMAND [ARGS...]")
    name = backend or default_backend()
    mounts = []
    for item in mount or []:
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise UserError(f"--mount {item!r} must be HOST:TARGET or HOST:TARGET:rw")
        host = Path(parts[0])
        if not host.exists():
            raise UserError(f"--mount {item!r}: {host} does not exist")
        if not parts[1].startswith("/"):
            raise UserError(f"--mount {item!r}: the target must be an absolute path inside the sandbox")
        mounts.append(Mount(host=host, target=Path(parts[1]), writable=len(parts) == 3 and parts[2] == "rw"))
    spec = SandboxSpec(
        workspace=workspace, mounts=mounts, memory_mb=memory_mb, default_timeout_s=timeout, gpus=list(gpu or []),
        allow_weak_limits=allow_weak_limits,
    )
    sandbox = _create(create, name, spec)
    if not sandbox.isolates:
        typer.secho(f"WARNING: {NOT_ISOLATED_WARNING}", fg=typer.colors.RED, bold=True, err=True)
    try:
        with sandbox:
            result = sandbox.exec(argv[0] if len(argv) == 1 and " " in argv[0] else argv, timeout=timeout)
    except SandboxError as exc:
        raise UserError(str(exc)) from None
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    raise typer.Exit(result.exit_code)


def _create(create, name: str, spec):
    from aarlab.sandbox import SandboxError, check_backend

    ok, reason = check_backend(name)
    if not ok:
        raise UserError(f"sandbox backend {name!r} cannot run here: {reason}")
    try:
        return create(name, spec)
    except SandboxError as exc:
        raise UserError(str(exc)) from None
