"""Results as the dashboard shows them: the leaderboard's rows (from the lab core's one leaderboard), recent
submissions, and the series behind the PGR plots."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import and_, func, select

from aarlab.server import LEADERBOARD_SORTS, LeaderboardEntry, leaderboard_entries
from aarlab.store import tables as t

SORTS = LEADERBOARD_SORTS


# A leaderboard row is the lab core's own ``LeaderboardEntry`` (the API's schema): one leaderboard, one shape.
LeaderRow = LeaderboardEntry


def _metric(metrics: Any, key: str) -> float | None:
    if isinstance(metrics, dict) and isinstance(metrics.get(key), int | float) and not isinstance(metrics.get(key), bool):
        value = float(metrics[key])
        return value if math.isfinite(value) else None
    return None


def leaderboard(store, task_id: int | None = None, sort: str = "final", descending: bool = True) -> list[LeaderRow]:
    """The lab's one leaderboard (``aarlab.server._leaderboard``) as the humans see it: claimed, public,
    private and verified PGR with their SEs, flags and quarantine. ``descending=False`` shows the ranked
    results lowest first (ranks follow the order shown)."""
    sort = "recent" if sort == "created" else sort
    if sort not in SORTS:
        sort = "final"
    rows = list(leaderboard_entries(store, task_id, sort, agent_view=False))
    if not descending:
        ranked = [r for r in rows if r.rank is not None][::-1]
        for i, r in enumerate(ranked, 1):
            r.rank = i
        rows = ranked + [r for r in rows if r.rank is None]
    return rows


def recent_submissions(store, limit: int = 20, task_id: int | None = None) -> list[dict[str, Any]]:
    """The latest submissions (to ``task_id``, or to any task) with their author and public/private PGR,
    newest first."""
    s = t.submissions
    query = (select(s.c.id, s.c.created, s.c.snapshot_id, s.c.method, s.c.public_acc, s.c.public_pgr,
                    s.c.private_acc, s.c.private_pgr, t.agents.c.name.label("author"))
             .join(t.agents, t.agents.c.id == s.c.agent_id))
    if task_id is not None:
        query = query.where(s.c.task_id == task_id)
    with store.read() as conn:
        rows = conn.execute(query.order_by(s.c.id.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


# --- time series for the plots ---------------------------------------------------------------------------


def best_so_far(events: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``[(time, value)]`` → the running maximum, one point per improvement."""
    out: list[tuple[float, float]] = []
    best = -math.inf
    for when, value in sorted(events):
        if value > best:
            best = value
            out.append((when, value))
    return out


def pgr_events(store) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{"claimed"|"verified"|"public": {agent: [(time, pgr)]}}`` in time order."""
    p, v = t.posts, t.verifications
    out: dict[str, dict[str, list[tuple[float, float]]]] = {"claimed": {}, "verified": {}, "public": {}}
    with store.read() as conn:
        for r in conn.execute(select(p.c.author, p.c.created, p.c.metrics)
                              .where(and_(p.c.kind == "result", p.c.parent_id.is_(None)))):
            pgr = _metric(r.metrics, "pgr")
            if pgr is not None:
                out["claimed"].setdefault(r.author, []).append((r.created, pgr))
        for r in conn.execute(select(p.c.author, v.c.finished, v.c.created, v.c.verified_pgr)
                              .join(p, p.c.id == v.c.post_id)
                              .where(and_(v.c.status == "done", v.c.verified_pgr.isnot(None)))):
            out["verified"].setdefault(r.author, []).append((r.finished or r.created, float(r.verified_pgr)))
        for r in conn.execute(select(t.agents.c.name, t.submissions.c.created, t.submissions.c.public_pgr)
                              .join(t.agents, t.agents.c.id == t.submissions.c.agent_id)):
            out["public"].setdefault(r.name, []).append((r.created, float(r.public_pgr)))
    return out


def submissions_per_agent(store) -> list[tuple[str, int]]:
    with store.read() as conn:
        rows = conn.execute(select(t.agents.c.name, func.count(t.submissions.c.id))
                            .join(t.submissions, t.submissions.c.agent_id == t.agents.c.id, isouter=True)
                            .group_by(t.agents.c.name).order_by(t.agents.c.name)).all()
    return [(r[0], int(r[1])) for r in rows]
