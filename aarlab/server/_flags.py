"""Flags and verifications: monitors' findings (and the one way to resolve one, for the API's admin route and
the dashboard's button alike), and the verifier's records of re-running result posts."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, func, select

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Principal
from aarlab.server._core import LabCore, emit
from aarlab.server._errors import NotFound
from aarlab.server._leaderboard import latest_verification
from aarlab.store import Store
from aarlab.store import tables as t


def agent_names(conn: Connection) -> dict[int, str]:
    return dict(conn.execute(select(t.agents.c.id, t.agents.c.name)).all())


def flag_model(row: Any, names: dict[int, str]) -> m.Flag:
    """A flags row as the API shows it (with its agent's name)."""
    d = row._asdict()
    d["agent"] = names.get(row.agent_id) if row.agent_id is not None else None
    return m.Flag.model_validate(d)


def resolve_flag(store: Store, flag_id: int, action: Literal["clear", "confirm"], note: str | None,
                 resolver: str) -> m.Flag:
    """Clear or confirm a flag (a human's decision) and announce it as ``flag`` and ``leaderboard`` events;
    ``NotFound`` when there is no such flag."""
    with store.write() as conn:
        if conn.execute(select(t.flags.c.id).where(t.flags.c.id == flag_id)).first() is None:
            raise NotFound(f"no flag {flag_id}")
        now = time.time()
        conn.execute(t.flags.update().where(t.flags.c.id == flag_id).values(
            status="cleared" if action == "clear" else "confirmed", resolved=now, resolver=resolver, note=note))
        for kind, data in (("flag", {"id": flag_id, "status": action}),
                           ("leaderboard", {"change": "flag", "flag_id": flag_id})):
            conn.execute(t.events.insert().values(kind=kind, data=data, created=now))
        row = conn.execute(select(t.flags).where(t.flags.c.id == flag_id)).one()
        return flag_model(row, agent_names(conn))



class VerificationOps(LabCore):
    """The verification queue and the verifier's records."""

    # -- verifications -------------------------------------------------------------------------------------
    def verifications(self, status: str | None, post_id: int | None) -> list[m.PendingVerification]:
        v = t.verifications.c
        latest = select(func.max(v.id)).group_by(v.post_id)
        q = select(t.verifications).where(v.id.in_(latest)).order_by(v.id)
        if status is not None:
            q = q.where(v.status == status)
        if post_id is not None:
            q = q.where(v.post_id == post_id)
        with self.store.read() as conn:
            rows = conn.execute(q).all()
            posts = {r.id: r for r in conn.execute(select(t.posts).where(t.posts.c.id.in_([r.post_id for r in rows]))).all()}
            return [m.PendingVerification(verification=m.Verification.model_validate(r._asdict()),
                                          post=self._posts(conn, [posts[r.post_id]])[0]) for r in rows]

    def record_verification(self, body: m.VerificationUpdate) -> m.Verification:
        if body.status in ("done",) and (body.verified_pgr is None or not np.isfinite(body.verified_pgr)):
            raise UserError("a done verification needs a finite verified_pgr")
        if body.status == "failed" and not body.reason:
            raise UserError("a failed verification needs a reason")
        with self.store.write() as conn:
            post = conn.execute(select(t.posts).where(t.posts.c.id == body.post_id)).first()
            if post is None:
                raise NotFound(f"no post {body.post_id}")
            if post.kind != "result":
                raise UserError(f"post {body.post_id} is a {post.kind} post; only result posts are verified")
            now = time.time()
            current = latest_verification(conn, body.post_id)
            values = body.model_dump(exclude={"post_id"})
            if body.status == "running":
                values["started"] = now
            if body.status in ("done", "failed"):
                values["finished"] = now
            if current is None or current.status in ("done", "failed") and body.status in ("pending", "running"):
                vid = conn.execute(t.verifications.insert().values(post_id=body.post_id, created=now, **values)
                                   ).inserted_primary_key[0]
            else:
                vid = current.id
                conn.execute(t.verifications.update().where(t.verifications.c.id == vid).values(**values))
            emit(conn, "verification", {"post_id": body.post_id, "status": body.status,
                                        "verified_pgr": body.verified_pgr, "se": body.se}, now)
            if body.status in ("done", "failed"):
                emit(conn, "leaderboard", {"post_id": body.post_id, "change": "verification"}, now)
            row = conn.execute(select(t.verifications).where(t.verifications.c.id == vid)).one()
        return m.Verification.model_validate(row._asdict())


class FlagOps(LabCore):
    """Monitors' flags: adding (idempotent by key), listing, resolving."""

    # -- flags ---------------------------------------------------------------------------------------------
    def _flag(self, row: Any, names: dict[int, str]) -> m.Flag:
        return flag_model(row, names)

    def _names(self, conn: Connection) -> dict[int, str]:
        return agent_names(conn)

    def add_flag(self, body: m.FlagCreate) -> m.Flag:
        with self.store.write() as conn:
            if body.key is not None:
                row = conn.execute(select(t.flags).where(t.flags.c.detector == body.detector,
                                                         t.flags.c.key == body.key)).first()
                if row is not None:
                    return self._flag(row, self._names(conn))
            agent_id = self._agent_id(conn, body.agent)
            if body.post_id is not None and conn.execute(
                    select(t.posts.c.id).where(t.posts.c.id == body.post_id)).first() is None:
                raise NotFound(f"no post {body.post_id}")
            if body.submission_id is not None and conn.execute(
                    select(t.submissions.c.id).where(t.submissions.c.id == body.submission_id)).first() is None:
                raise NotFound(f"no submission {body.submission_id}")
            now = time.time()
            flag_id = conn.execute(t.flags.insert().values(
                detector=body.detector, severity=body.severity, status="open", summary=body.summary,
                evidence=body.evidence, agent_id=agent_id, post_id=body.post_id, submission_id=body.submission_id,
                snapshot_id=body.snapshot_id, key=body.key, created=now)).inserted_primary_key[0]
            emit(conn, "flag", {"id": flag_id, "detector": body.detector, "severity": body.severity,
                                "agent": body.agent, "post_id": body.post_id}, now)
            emit(conn, "leaderboard", {"change": "flag", "flag_id": flag_id}, now)
            row = conn.execute(select(t.flags).where(t.flags.c.id == flag_id)).one()
            return self._flag(row, self._names(conn))

    def flags(self, status: str | None, agent: str | None, severity: str | None, detector: str | None) -> list[m.Flag]:
        c = t.flags.c
        q = select(t.flags).order_by(c.id)
        with self.store.read() as conn:
            if status is not None:
                q = q.where(c.status == status)
            if severity is not None:
                q = q.where(c.severity == severity)
            if detector is not None:
                q = q.where(c.detector == detector)
            if agent is not None:
                q = q.where(c.agent_id == self._agent_id(conn, agent))
            names = self._names(conn)
            return [self._flag(r, names) for r in conn.execute(q).all()]

    def resolve_flag(self, who: Principal, flag_id: int, body: m.FlagResolve) -> m.Flag:
        return resolve_flag(self.store, flag_id, body.action, body.note, who.name)


__all__ = ["FlagOps", "VerificationOps", "agent_names", "flag_model", "resolve_flag"]
