"""The leaderboard: one definition of what each result shows and how results rank, for the API and the
dashboard alike.

Each result shows what its own submission earned (the one the post names; for an older post that names
none, its author's latest submission with the post's snapshot). Agents see that submission's coarse public
values and no private ones; monitor findings and quarantined results are for the humans. Ties rank the
newest result first. Every PGR comes with its seed SE and, where measured, its test-sampling SE (claimed: when
the post states ``test_se``; verified: the re-run's, recorded by the verifier).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, select

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Principal
from aarlab.server._core import LabCore
from aarlab.store import Store
from aarlab.store import tables as t

# "final" ranks on the numbers adaptive queries cannot reach: the verified (held-out) PGR, else the private one
# (for the humans; agents never see private numbers, so for them it is the verified PGR alone).
SORTS = ("final", "verified", "claimed", "public", "private", "recent")


def latest_verification(conn: Connection, post_id: int) -> m.Verification | None:
    """The latest verification of a result post."""
    row = conn.execute(select(t.verifications).where(t.verifications.c.post_id == post_id)
                       .order_by(t.verifications.c.id.desc()).limit(1)).first()
    return m.Verification.model_validate(row._asdict()) if row else None


def _result_submission(conn: Connection, post: Any) -> Any:
    """The submission whose scores a result shows: the one it names; for an older post that names none,
    its author's latest submission with the post's snapshot on its task."""
    s = t.submissions.c
    if post.submission_id is not None:
        return conn.execute(select(t.submissions).where(s.id == post.submission_id)).first()
    if post.agent_id is None or post.snapshot_id is None:
        return None
    return conn.execute(select(t.submissions).where(
        s.agent_id == post.agent_id, s.snapshot_id == post.snapshot_id,
        *([s.task_id == post.task_id] if post.task_id is not None else [])).order_by(s.id.desc()).limit(1)).first()


def _submission_scores(sub: Any, agent_view: bool) -> dict[str, Any]:
    """A leaderboard entry's public and private PGRs with their SEs, from its own submission.

    Agents get what that submission was told (coarse public values) and no private values: full-precision
    private scores would let an agent tune on the private part.
    """
    if sub is None:
        return {"public_pgr": None, "private_pgr": None}
    if agent_view:
        return {"public_pgr": sub.shown_pgr, "public_pgr_se": sub.shown_pgr_se,
                "public_pgr_test_se": sub.shown_test_se, "private_pgr": None}
    return {"public_pgr": sub.public_pgr, "public_pgr_se": sub.public_pgr_se, "public_pgr_test_se": sub.public_test_se,
            "private_pgr": sub.private_pgr, "private_pgr_se": sub.private_pgr_se,
            "private_pgr_test_se": sub.private_test_se}


def _number(value: Any) -> float | None:
    """A stored number (a post's metric, a verification detail), or None when it is not one."""
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _step(value: Any) -> float | None:
    """A claim's PGR grid step: a finite positive number, or None."""
    number = _number(value)
    return number if number is not None and math.isfinite(number) and number > 0 else None


def leaderboard_entries(store: Store, task_id: int | None, sort: str, agent_view: bool) -> list[m.LeaderboardEntry]:
    """The ranked results of a task (of all tasks when ``task_id`` is None) as ``agent_view`` or a human sees them."""
    if sort not in SORTS:
        raise UserError(f"unknown sort {sort!r} (one of {', '.join(SORTS)})")
    p, f = t.posts.c, t.flags.c
    q = select(t.posts).where(p.kind == "result", p.parent_id.is_(None))
    if task_id is not None:
        q = q.where(p.task_id == task_id)
    entries = []
    with store.read() as conn:
        posts = conn.execute(q.order_by(p.id)).all()
        flags = conn.execute(select(t.flags).where(f.status != "cleared")).all()
        for post in posts:
            sub = _result_submission(conn, post)
            ver = latest_verification(conn, post.id)
            own = [fl for fl in flags if fl.post_id == post.id
                   or (fl.snapshot_id is not None and fl.snapshot_id == post.snapshot_id)
                   or (sub is not None and fl.submission_id == sub.id)
                   or (fl.agent_id is not None and fl.agent_id == post.agent_id
                       and fl.post_id is None and fl.submission_id is None and fl.snapshot_id is None)]
            metrics = post.metrics or {}
            done = ver is not None and ver.status == "done"
            verified = ver.verified_pgr if done else None
            claimed = metrics.get("pgr")
            entries.append(m.LeaderboardEntry(
                rank=None, post_id=post.id, title=post.title, author=post.author, agent_id=post.agent_id,
                method=post.entry_point, snapshot_id=post.snapshot_id, created=post.created,
                claimed_pgr=claimed, claimed_pgr_se=metrics.get("pgr_se"), claimed_seeds=metrics.get("seeds"),
                submission_id=sub.id if sub is not None else None,
                submission_seeds=(sub.n_seeds or 1) if sub is not None else None,
                verified_pgr=verified, verified_pgr_se=ver.se if done else None,
                verified_pgr_test_se=_number((ver.details or {}).get("pgr_test_se")) if done else None,
                claimed_pgr_test_se=_number(metrics.get("test_se")),
                claimed_pgr_step=_step(metrics.get("pgr_step")),
                verified_seeds=ver.seeds if done else None,
                verification_status=ver.status if ver is not None else None,
                gap=(claimed - verified) if claimed is not None and verified is not None else None,
                flags=[m.FlagBrief(id=fl.id, detector=fl.detector, severity=fl.severity, status=fl.status,
                                   summary=fl.summary) for fl in own],
                quarantined=any(fl.severity == "severe" for fl in own),
                **_submission_scores(sub, agent_view=agent_view),
            ))
    if agent_view:
        # Monitor findings are for the humans running the lab: agents see neither flags nor quarantine,
        # and a quarantined result is simply not on their leaderboard (ranks are computed without it).
        entries = [e.model_copy(update={"flags": []}) for e in entries if not e.quarantined]
    key = {"final": lambda e: e.verified_pgr if e.verified_pgr is not None else e.private_pgr,
           "verified": lambda e: e.verified_pgr, "claimed": lambda e: e.claimed_pgr,
           "public": lambda e: e.public_pgr, "private": lambda e: e.private_pgr,
           "recent": lambda e: e.created}[sort]
    # Entries with a value first (best first), then those without (newest first); quarantined at the end.
    # Under "final", verified results rank before those with a private PGR only (held-out numbers first).
    tier = (lambda e: e.verified_pgr is None) if sort == "final" else (lambda e: False)
    entries.sort(key=lambda e: (e.quarantined, key(e) is None, tier(e), -(key(e) or 0.0), -e.created))
    rank = 0
    for e in entries:
        if not e.quarantined and key(e) is not None:
            rank += 1
            e.rank = rank
    return entries


class LeaderboardOps(LabCore):
    """The leaderboard of a task as one caller sees it, with the task's fixed baselines."""

    # -- leaderboard ---------------------------------------------------------------------------------------
    def leaderboard(self, who: Principal, task_name: str | None, sort: str) -> m.Leaderboard:
        if sort not in SORTS:
            raise UserError(f"unknown sort {sort!r} (one of {', '.join(SORTS)})")
        if task_name is None and len(self._tasks) == 1:
            task_name = next(iter(self._tasks))
        task = self.task(task_name) if task_name is not None else None
        baselines = []
        if task is not None:
            fixed = task.info.fixed
            baselines = [
                m.BaselineRow(name="weak", model=task.info.weak_model, accuracy=fixed.weak_acc.mean,
                              accuracy_se=fixed.weak_acc.se, n_seeds=fixed.weak_acc.n, pgr=0.0),
                m.BaselineRow(name="ceiling", model=task.info.strong_model, accuracy=fixed.ceiling_acc.mean,
                              accuracy_se=fixed.ceiling_acc.se, n_seeds=fixed.ceiling_acc.n, pgr=1.0),
            ]
        entries = leaderboard_entries(self.store, task.id if task is not None else None, sort,
                                      agent_view=who.role == "agent")
        return m.Leaderboard(task=task.name if task else None, sort=sort, baselines=baselines, entries=entries)
