"""Who is calling: bearer tokens resolve to an admin, a read-only viewer, or one agent.

Agent tokens are stored as sha256 hashes (a token is 256 random bits, so a fast hash is enough and a
lookup is one index probe); the admin and viewer tokens come from the settings and are compared in
constant time. An agent token can expire (``token_expires``) and be revoked by the admin; a revocation made
by another server process on the same database takes effect here within ``CACHE_S`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException
from sqlalchemy import select

from aarlab.store import Store
from aarlab.store import tables as t

Role = Literal["admin", "viewer", "agent"]
# How long a looked-up agent token is trusted before the database is asked again (revocations by another
# process on the same database); the hot path stays one dict lookup.
CACHE_S = 5.0


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str
    agent_id: int | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    expires: float | None  # the token's own expiry
    checked: float  # monotonic time of the database lookup


class Authenticator:
    def __init__(self, store: Store, admin_token: str, viewer_token: str | None):
        self.store = store
        self.admin_token = admin_token
        self.viewer_token = viewer_token
        self._agents: dict[str, _Cached] = {}  # token hash -> agent, as last read from the database
        self._lock = threading.Lock()

    def _fixed(self, token: str) -> Principal | None:
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Principal("admin", "admin")
        if self.viewer_token and hmac.compare_digest(token.encode(), self.viewer_token.encode()):
            return Principal("viewer", "viewer")
        return None

    def cached(self, token: str | None) -> Principal | None:
        """The caller, when that is known without the database (admin, viewer, or a fresh cached agent)."""
        if not token:
            return None
        fixed = self._fixed(token)
        if fixed is not None:
            return fixed
        with self._lock:
            entry = self._agents.get(token_hash(token))
        if entry is None or time.monotonic() - entry.checked > CACHE_S:
            return None
        if entry.expires is not None and time.time() >= entry.expires:
            return None
        return entry.principal

    def identify(self, token: str | None) -> Principal:
        """The caller of ``token``, or a 401 saying what is wrong with it (may read the database)."""
        if not token:
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        fixed = self._fixed(token)
        if fixed is not None:
            return fixed
        digest = token_hash(token)
        with self._lock:
            entry = self._agents.get(digest)
        if entry is None or time.monotonic() - entry.checked > CACHE_S:
            with self.store.read() as conn:
                row = conn.execute(select(t.agents.c.id, t.agents.c.name, t.agents.c.token_expires, t.agents.c.revoked)
                                   .where(t.agents.c.token_hash == digest)).first()
            if row is None or row.revoked is not None:
                with self._lock:
                    self._agents.pop(digest, None)
                raise unauthorized("invalid token" if row is None else "this token was revoked by the lab's admin")
            entry = _Cached(Principal("agent", row.name, row.id), row.token_expires, time.monotonic())
            with self._lock:
                self._agents[digest] = entry
        if entry.expires is not None and time.time() >= entry.expires:
            raise unauthorized("this token has expired")
        return entry.principal

    def forget(self, agent_id: int) -> None:
        """Drop an agent's cached tokens (after a revocation or a new token), so the change holds at once."""
        with self._lock:
            for digest in [d for d, e in self._agents.items() if e.principal.agent_id == agent_id]:
                del self._agents[digest]


def require(principal: Principal, *roles: Role) -> Principal:
    """Refuse with 403 unless the caller has one of ``roles``, with a message saying who may."""
    if principal.role in roles:
        return principal
    if principal.role == "viewer":
        raise HTTPException(403, "the viewer token is read-only")
    who = " or ".join({"admin": "the admin token", "agent": "an agent token", "viewer": "the viewer token"}[r] for r in roles)
    raise HTTPException(403, f"this route needs {who}")
