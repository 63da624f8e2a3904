"""``aarlab flags``: list the monitors' flags of a run with their evidence, and clear or confirm them.

    aarlab flags runs/demo                      # open flags, with evidence
    aarlab flags runs/demo --all --agent alice  # every flag of one agent, resolved ones too
    aarlab flags runs/demo clear 3 --note "reading ../ was ls of its own dir"
    aarlab flags runs/demo confirm 4

It talks to the run's lab server when one answers (``--url``, or the URL in the run's ``state.json``), with
the admin token from ``RUN_DIR/admin_token``; otherwise it opens the run's database directly, so flags can
be reviewed after the run ended. Imports stay light: the database and HTTP stacks load inside the command.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from aarlab.errors import UserError

ACTIONS = ("clear", "confirm")


def flags(
    run_dir: Path = typer.Argument(..., help="The run directory (holds admin_token and lab.db)."),
    action: str | None = typer.Argument(None, help="clear | confirm (omit to list flags)."),
    flag_id: int | None = typer.Argument(None, help="The flag to clear or confirm."),
    agent: str | None = typer.Option(None, "--agent", help="Only this agent's flags."),
    all_: bool = typer.Option(False, "--all", help="Resolved (cleared, confirmed) flags too, not only open ones."),
    note: str | None = typer.Option(None, "--note", help="Why the flag was cleared or confirmed (kept with it)."),
    url: str | None = typer.Option(None, "--url", help="The lab server (default: the run's own, if it is up)."),
    as_json: bool = typer.Option(False, "--json", help="Print the flags as JSON."),
) -> None:
    """List the monitors' flags of a run with their evidence, or clear / confirm one (admin)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    if action is not None and action not in ACTIONS:
        raise UserError(f"unknown action {action!r}: use `aarlab flags RUN_DIR clear|confirm FLAG_ID`")
    if action is not None and flag_id is None:
        raise UserError(f"give the flag to {action}: `aarlab flags {run_dir} {action} FLAG_ID`")
    backend = open_flags(run_dir, url)
    try:
        if action is not None:
            flag = backend.resolve(flag_id, action, note)
            typer.echo(f"flag #{flag['id']} {flag['status']} ({flag['detector']}, {flag['severity']}, "
                       f"agent {flag['agent'] or '-'}) via {backend.where}")
            return
        rows = backend.list(agent=agent, include_resolved=all_)
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
            return
        typer.echo(format_flags(rows, backend.where, all_))
    finally:
        backend.close()


def format_flags(rows: list[dict[str, Any]], where: str, all_: bool) -> str:
    """Flags as a person reads them: one header line each, the summary, then the quoted evidence."""
    if not rows:
        return f"no {'' if all_ else 'open '}flags ({where})"
    severe_open = sum(1 for r in rows if r["severity"] == "severe" and r["status"] == "open")
    lines = [f"{len(rows)} flag{'s' if len(rows) != 1 else ''} ({where}); {severe_open} severe and open "
             f"(their entries are quarantined until cleared)"]
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["created"]))
        lines.append("")
        lines.append(f"#{r['id']:<4} {r['severity']:<8} {r['status']:<10} {r['detector']:<22} "
                     f"agent {r['agent'] or '-'}  {when} UTC")
        lines.append(f"      {r['summary']}")
        evidence = r.get("evidence") or {}
        for line in evidence.get("lines", []) if isinstance(evidence, dict) else []:
            lines.append(f"      > {line}")
        refs = []
        if isinstance(evidence, dict) and evidence.get("submission_ids"):
            refs.append("submissions " + ", ".join(str(i) for i in evidence["submission_ids"][:20]))
        if r.get("post_id"):
            refs.append(f"post {r['post_id']}")
        if r.get("snapshot_id"):
            refs.append(f"snapshot {str(r['snapshot_id'])[:12]}")
        if refs:
            lines.append(f"      ({'; '.join(refs)})")
        if r.get("resolved"):
            lines.append(f"      {r['status']} by {r.get('resolver') or '?'}"
                         + (f": {r['note']}" if r.get("note") else ""))
    return "\n".join(lines)


def _admin_token(run_dir: Path) -> str | None:
    path = run_dir / "admin_token"
    return path.read_text().strip() if path.is_file() else None


def _state_url(run_dir: Path) -> str | None:
    path = run_dir / "state.json"
    try:
        state = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, OSError):
        return None
    for key in ("lab_url", "server_url", "url"):
        if isinstance(state.get(key), str):
            return state[key]
    server = state.get("server")
    if isinstance(server, dict) and isinstance(server.get("url"), str):
        return server["url"]
    return None


class _ServerFlags:
    def __init__(self, client):
        self.client = client
        self.where = f"server {client.base_url}"

    def list(self, agent: str | None, include_resolved: bool) -> list[dict[str, Any]]:
        flags = self.client.flags(agent=agent, status=None if include_resolved else "open")
        return [f.model_dump() for f in flags]

    def resolve(self, flag_id: int, action: str, note: str | None) -> dict[str, Any]:
        return self.client.resolve_flag(flag_id, action, note).model_dump()

    def close(self) -> None:
        self.client.close()


class _DatabaseFlags:
    """The run's flags read and resolved in its database, for when no server is running."""

    def __init__(self, run_dir: Path):
        from aarlab.store import open_store

        if not (run_dir / "lab.db").is_file():
            raise UserError(f"{run_dir} has no lab.db and no lab server answers for it (give --url)")
        self.store = open_store(run_dir=run_dir)
        self.where = f"database {run_dir / 'lab.db'}"

    def _rows(self, conn, where=None) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from aarlab.store import tables as t

        names = dict(conn.execute(select(t.agents.c.id, t.agents.c.name)).all())
        q = select(t.flags).order_by(t.flags.c.id)
        if where is not None:
            q = q.where(where)
        out = []
        for row in conn.execute(q).all():
            d = row._asdict()
            d["agent"] = names.get(d["agent_id"]) if d["agent_id"] is not None else None
            out.append(d)
        return out

    def list(self, agent: str | None, include_resolved: bool) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = self._rows(conn)
        return [r for r in rows if (include_resolved or r["status"] == "open") and (agent is None or r["agent"] == agent)]

    def resolve(self, flag_id: int, action: str, note: str | None) -> dict[str, Any]:
        from aarlab.store import tables as t

        now = time.time()
        with self.store.write() as conn:
            if not self._rows(conn, t.flags.c.id == flag_id):
                raise UserError(f"no flag {flag_id} in {self.where}")
            conn.execute(t.flags.update().where(t.flags.c.id == flag_id).values(
                status="cleared" if action == "clear" else "confirmed", resolved=now, resolver="admin (cli)",
                note=note))
            # The same events the server emits, so a dashboard that follows the stream sees the change.
            conn.execute(t.events.insert().values(kind="flag", data={"id": flag_id, "status": action}, created=now))
            conn.execute(t.events.insert().values(kind="leaderboard", data={"change": "flag", "flag_id": flag_id},
                                                  created=now))
            return self._rows(conn, t.flags.c.id == flag_id)[0]

    def close(self) -> None:
        self.store.close()


def open_flags(run_dir: Path, url: str | None = None):
    """The run's flags through its server when one answers (``url`` or the run's own), else its database."""
    from aarlab.server.client import LabClient, LabError

    token = _admin_token(run_dir)
    target = url or _state_url(run_dir)
    if target:
        if token is None:
            raise UserError(f"{run_dir / 'admin_token'} is missing: the flags API needs the run's admin token")
        client = LabClient(target, token, timeout=10.0, retries=0)
        try:
            client.health()
            return _ServerFlags(client)
        except LabError:
            client.close()
            if url:  # the user named this server: say that it is down rather than guess
                raise UserError(f"no lab server answers at {url}") from None
    return _DatabaseFlags(run_dir)
