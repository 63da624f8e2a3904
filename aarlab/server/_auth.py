"""Who is calling: bearer tokens resolve to an admin, a read-only viewer, or one agent.

Agent tokens are stored as sha256 hashes (a token is 256 random bits, so a fast hash is enough and a
lookup is one index probe); the admin and viewer tokens come from the settings and are compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException
from sqlalchemy import select

from aarlab.store import Store
from aarlab.store import tables as t

Role = Literal["admin", "viewer", "agent"]


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str
    agent_id: int | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


class Authenticator:
    def __init__(self, store: Store, admin_token: str, viewer_token: str | None):
        self.store = store
        self.admin_token = admin_token
        self.viewer_token = viewer_token
        self._agents: dict[str, Principal] = {}  # token hash -> agent; agents are never deleted
        self._lock = threading.Lock()

    def identify(self, token: str | None) -> Principal:
        if not token:
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Principal("admin", "admin")
        if self.viewer_token and hmac.compare_digest(token.encode(), self.viewer_token.encode()):
            return Principal("viewer", "viewer")
        digest = token_hash(token)
        with self._lock:
            found = self._agents.get(digest)
        if found is None:
            with self.store.read() as conn:
                row = conn.execute(select(t.agents.c.id, t.agents.c.name).where(t.agents.c.token_hash == digest)).first()
            if row is None:
                raise unauthorized("invalid token")
            found = Principal("agent", row.name, row.id)
            with self._lock:
                self._agents[digest] = found
        return found


def require(principal: Principal, *roles: Role) -> Principal:
    """Refuse with 403 unless the caller has one of ``roles``, with a message saying who may."""
    if principal.role in roles:
        return principal
    if principal.role == "viewer":
        raise HTTPException(403, "the viewer token is read-only")
    who = " or ".join({"admin": "the admin token", "agent": "an agent token", "viewer": "the viewer token"}[r] for r in roles)
    raise HTTPException(403, f"this route needs {who}")
