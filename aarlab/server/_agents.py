"""The lab's agents: creating them, their tokens (issued once, stored hashed), revocation."""

from __future__ import annotations

import time

from sqlalchemy import Connection, select

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import token_hash
from aarlab.server._core import LabCore
from aarlab.server._errors import Conflict, NotFound
from aarlab.server._settings import new_token
from aarlab.store import tables as t


class AgentOps(LabCore):
    """Agents and their tokens."""

    # -- agents --------------------------------------------------------------------------------------------
    def create_agent(self, body: m.AgentCreate) -> m.AgentCredentials:
        if body.name in ("admin", "viewer"):
            raise UserError(f"agent name {body.name!r} is reserved")
        token = new_token()
        now = time.time()
        with self.store.write() as conn:
            if conn.execute(select(t.agents.c.id).where(t.agents.c.name == body.name)).first():
                raise Conflict(f"an agent named {body.name!r} already exists")
            agent_id = conn.execute(t.agents.insert().values(
                name=body.name, direction=body.direction, token_hash=token_hash(token), created=now,
                token_expires=now + body.token_ttl_s if body.token_ttl_s else None,
            )).inserted_primary_key[0]
        return m.AgentCredentials(id=agent_id, name=body.name, token=token)

    def agents(self) -> list[m.AgentInfo]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.agents).order_by(t.agents.c.id)).all()
        return [m.AgentInfo(id=r.id, name=r.name, direction=r.direction, created=r.created,
                            token_expires=r.token_expires, revoked=r.revoked) for r in rows]

    def revoke_agent(self, name: str) -> m.AgentInfo:
        """Revoke an agent's token: every later request with it is a 401 (its posts and results stay)."""
        with self.store.write() as conn:
            agent_id = self._agent_id(conn, name)
            conn.execute(t.agents.update().where(t.agents.c.id == agent_id, t.agents.c.revoked.is_(None))
                         .values(revoked=time.time()))
        self.auth.forget(agent_id)
        return next(a for a in self.agents() if a.id == agent_id)

    def new_agent_token(self, name: str, token_ttl_s: float | None) -> m.AgentCredentials:
        """Give an agent a fresh token (the old one stops working), e.g. after a revocation or a leak."""
        token = new_token()
        now = time.time()
        with self.store.write() as conn:
            agent_id = self._agent_id(conn, name)
            conn.execute(t.agents.update().where(t.agents.c.id == agent_id).values(
                token_hash=token_hash(token), revoked=None,
                token_expires=now + token_ttl_s if token_ttl_s else None))
        self.auth.forget(agent_id)
        return m.AgentCredentials(id=agent_id, name=name, token=token)

    def _agent_id(self, conn: Connection, name: str | None) -> int | None:
        if name is None:
            return None
        agent_id = conn.execute(select(t.agents.c.id).where(t.agents.c.name == name)).scalar()
        if agent_id is None:
            raise NotFound(f"unknown agent {name!r}")
        return agent_id
