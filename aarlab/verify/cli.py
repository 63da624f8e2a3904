"""``aarlab verify`` and ``aarlab generalize``: believe only what re-runs.

Imports stay light here; the verifier, the server and the w2s stack are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer

from aarlab.errors import UserError


def _admin_token(run_dir: Path) -> str:
    path = run_dir / "admin_token"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not an aarlab run directory (no admin_token file)") from None


def _running_lab_url(run_dir: Path) -> str | None:
    """The URL in ``state.json`` if a lab answers there (the run is live), else None."""
    try:
        url = json.loads((run_dir / "state.json").read_text(encoding="utf-8")).get("lab_url")
    except (OSError, ValueError):
        return None
    if not url:
        return None
    from aarlab.server.client import LabClient, LabError

    try:
        with LabClient(url, retries=0, timeout=3.0) as client:
            client.health()
        return url
    except LabError:
        return None


@contextlib.contextmanager
def _lab(run_dir: Path, lab_url: str | None):
    """Yield (url, admin token): the given or live lab, or a lab server started on the run dir for this command."""
    url = lab_url or _running_lab_url(run_dir)
    if url:
        yield url, _admin_token(run_dir)
        return
    from aarlab.server import LabServer

    if not (run_dir / "lab.db").is_file():
        raise UserError(f"{run_dir} is not an aarlab run directory (no lab.db)")
    with LabServer(run_dir=run_dir) as server:  # reads RUN_DIR/admin_token
        yield server.url, server.admin_token


def _verification_config(run_dir: Path):
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    from aarlab.config import RunConfig

    return RunConfig.load(path).verification


def verify(
    run_dir: Path = typer.Argument(..., help="The run directory (holds lab.db, task/, admin_token)."),
    post: int | None = typer.Option(None, "--post", help="Verify this result post (again, if it was verified)."),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="Seeds per post (default: the run's config, 3)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Wall-clock limit per seed, in seconds."),
    backend: str | None = typer.Option(None, "--backend", help="Sandbox backend (default: bwrap)."),
    allow_unisolated: bool = typer.Option(False, "--allow-unisolated",
                                          help="Allow --backend process: agents' code re-run with no isolation."),
    lab_url: str | None = typer.Option(None, "--lab-url", help="A running lab (default: the run's, or start one)."),
):
    """Re-run result posts on the held-out split and record verified PGR ± SE (the queue, or one --post)."""
    from aarlab.verify._verifier import Outcome, Verifier, VerifierSettings, machine_parallel

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    settings = VerifierSettings.from_config(_verification_config(run_dir))
    if seeds is not None:
        settings.seeds = seeds
    if timeout is not None:
        settings.limits.timeout_s = timeout
    if backend is not None:
        settings.limits.backend = backend
    settings.limits.allow_unisolated = settings.limits.allow_unisolated or allow_unisolated
    settings.limits.check_isolation()
    from aarlab.server.client import LabClient

    outcomes: list[Outcome] = []
    with _lab(run_dir, lab_url) as (url, token), LabClient(url, token, timeout=60.0) as client:
        # labels are read from RUN_DIR/task on this host: the same files the server scores with
        verifier = Verifier(client, run_dir / "task", settings, work_root=run_dir / "verify", offline_scoring=True)
        if settings.parallel is None:  # no agents beside it: the machine is the verifier's
            verifier.slots.set_capacity(machine_parallel(settings.limits.threads))
        if post is not None:
            item = client.get_post(post)
            if item.kind != "result":
                raise UserError(f"post {post} is a {item.kind} post; only result posts are verified")
            queue = [item]
        else:
            queue = sorted((p.post for p in client.pending_verifications()), key=lambda p: p.id)
            if not queue:
                typer.echo("nothing to verify: no result post is pending")
                return
        for item in queue:
            typer.echo(f"verifying post {item.id} ({item.entry_point}, snapshot {item.snapshot_id}) …", err=True)
            try:
                outcomes.append(verifier.verify(item))
            except UserError as exc:  # the verifier's own trouble with this post: record it, go on
                reason = f"verifier error: {exc}"
                client.record_verification(item.id, "failed", reason=reason[:2000])
                outcomes.append(Outcome(post_id=item.id, status="failed", reason=reason))
    typer.echo("| post | status | claimed PGR | verified PGR ± SE | gap | flag | reason |")
    typer.echo("|---:|---|---:|---:|---:|---|---|")
    for o in outcomes:
        claimed = f"{o.gap.claimed:.2f} ± {o.gap.claimed_se:.2f}" if o.gap else "—"
        verified = f"{o.verified_pgr:.2f} ± {o.se:.2f}" if o.verified_pgr is not None else "—"
        gap = f"{o.gap.gap:+.2f} (thr {o.gap.threshold:.2f})" if o.gap else "—"
        flag = f"#{o.flag_id} {o.gap.severity}" if o.flag_id else ""
        typer.echo(f"| {o.post_id} | {o.status} | {claimed} | {verified} | {gap} | {flag} | {o.reason or ''} |")


def _entry_point_of(client, snapshot: str) -> str:
    """The entry point of the newest result post that names ``snapshot``."""
    for page in range(100):  # newest first, 200 a page
        posts = client.posts(kind="result", limit=200, offset=200 * page)
        for post in posts:
            if post.snapshot_id == snapshot and post.entry_point:
                return post.entry_point
        if len(posts) < 200:
            break
    raise UserError(f"no result post names snapshot {snapshot}: pass --entry-point MODULE")


def generalize(
    method: str | None = typer.Option(None, "--method", help="Known method(s) by name, comma-separated (vanilla,…)."),
    snapshot: str | None = typer.Option(None, "--snapshot", help="A snapshot id of the run (with --run-dir)."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="The run that holds --snapshot."),
    entry_point: str | None = typer.Option(None, "--entry-point", help="Module to run from the snapshot "
                                           "(default: the entry point of the result post that names it)."),
    datasets: str | None = typer.Option(None, "--datasets", help="Dataset specs, comma-separated."),
    task_dirs: str | None = typer.Option(None, "--task-dirs", help="Already prepared task dirs, comma-separated."),
    strong: str | None = typer.Option(None, "--strong", help="A bigger strong model for the ceiling and the method."),
    weak: str | None = typer.Option(None, "--weak", help="The weak model (default: the library's)."),
    size: int | None = typer.Option(None, "--size", help="Examples per dataset to prepare (default: the library's)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per method and dataset."),
    timeout: float = typer.Option(1800.0, "--timeout", help="Wall-clock limit per seed, in seconds."),
    backend: str | None = typer.Option(None, "--backend", help="Sandbox backend (default: bwrap)."),
    allow_unisolated: bool = typer.Option(False, "--allow-unisolated",
                                          help="Allow --backend process: the code is run with no isolation."),
    out: Path = typer.Option(Path("generalization"), "--out", help="Where the table (.md, .json) and plot go."),
):
    """Run a method on other prepared tasks; print weak, ceiling, transfer and PGR ± SE per dataset, and plot it."""
    from aarlab.verify._generalize import generalize as run_generalize
    from aarlab.verify._generalize import known_method_entry_point, plot_generalization, render_table
    from aarlab.verify._runner import ComputeLimits, check_entry_point

    if (method is None) == (snapshot is None):
        raise UserError("give exactly one of --method NAME or --snapshot ID (with --run-dir)")
    if not datasets and not task_dirs:
        raise UserError("give --datasets A,B,C (prepared and cached here) or --task-dirs D1,D2")
    limits = ComputeLimits(backend=backend, timeout_s=timeout, allow_unisolated=allow_unisolated)
    limits.check_isolation()
    if method is not None:
        from aarlab.verify._prepare import check_known_method

        targets = [(name, known_method_entry_point(check_known_method(name)), None)
                   for name in (m.strip() for m in method.split(",")) if name]
    else:
        if run_dir is None:
            raise UserError("--snapshot needs --run-dir (the run whose lab holds the snapshot)")
        with _lab(Path(run_dir), None) as (url, token):
            from aarlab.server.client import LabClient

            with LabClient(url, token) as client:
                code_tar = client.fetch_snapshot(snapshot)
                if entry_point is None:
                    entry_point = _entry_point_of(client, snapshot)
        targets = [(f"{snapshot[:12]}:{entry_point}", check_entry_point(entry_point), code_tar)]

    dirs: list[Path] = [Path(d.strip()) for d in (task_dirs or "").split(",") if d.strip()]
    if datasets:
        from aarlab.verify._prepare import prepare_cached

        for spec in (d.strip() for d in datasets.split(",") if d.strip()):
            typer.echo(f"preparing {spec} (cached) …", err=True)
            dirs.append(prepare_cached(spec, weak=weak, strong=strong, size=size, seeds=seeds))
    rows = []
    for label, module, code_tar in targets:
        rows += run_generalize(module, dirs, seeds=seeds, limits=limits, code_tar=code_tar, method_label=label,
                               progress=lambda msg: typer.echo(msg, err=True))
    out.mkdir(parents=True, exist_ok=True)
    table = render_table(rows)
    (out / "generalization.md").write_text(table + "\n")
    (out / "generalization.json").write_text(json.dumps([r.model_dump() for r in rows], indent=2))
    plot = plot_generalization(rows, out / "generalization.png")
    typer.echo(table)
    typer.echo(f"\nwrote {out / 'generalization.md'}, {out / 'generalization.json'} and {plot}")
