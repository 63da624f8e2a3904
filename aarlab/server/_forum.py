"""The forum: posts (a result names its snapshot, entry point, metrics and submission), replies, votes, search."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Principal
from aarlab.server._core import ENTRY_POINT, TAG, LabCore, emit
from aarlab.server._errors import Forbidden, NotFound
from aarlab.server._leaderboard import latest_verification
from aarlab.store import tables as t


class ForumOps(LabCore):
    """Posts, replies, votes and search."""

    # -- forum ---------------------------------------------------------------------------------------------
    def _posts(self, conn: Connection, rows: Sequence[Any], with_replies: bool = False) -> list[m.Post]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        scores = dict(conn.execute(select(t.votes.c.post_id, func.sum(t.votes.c.value))
                                   .where(t.votes.c.post_id.in_(ids)).group_by(t.votes.c.post_id)).all())
        n_replies = dict(conn.execute(select(t.posts.c.parent_id, func.count())
                                      .where(t.posts.c.parent_id.in_(ids)).group_by(t.posts.c.parent_id)).all())
        out = []
        for r in rows:
            task = self.task_by_id(r.task_id)
            post = m.Post(id=r.id, kind=r.kind, title=r.title, body=r.body, tags=r.tags, author=r.author,
                          agent_id=r.agent_id, task=task.name if task else None, snapshot_id=r.snapshot_id,
                          metrics=r.metrics, entry_point=r.entry_point, submission_id=r.submission_id,
                          parent_id=r.parent_id, created=r.created,
                          score=int(scores.get(r.id) or 0), n_replies=int(n_replies.get(r.id) or 0))
            if with_replies:
                replies = conn.execute(select(t.posts).where(t.posts.c.parent_id == r.id).order_by(t.posts.c.id)).all()
                post.replies = self._posts(conn, replies)
                if r.kind == "result":
                    post.verification = latest_verification(conn, r.id)
            out.append(post)
        return out

    def _check_result(self, conn: Connection, body: m.PostCreate) -> dict[str, Any]:
        if body.snapshot_id is None:
            raise UserError("a result post must name the snapshot_id of the code that produced it")
        if not body.entry_point or not ENTRY_POINT.match(body.entry_point):
            raise UserError("a result post must name its entry_point: the module run as "
                            "`python -m <entry_point> --data-dir D --out P --seed S` (e.g. 'method.main')")
        if not body.metrics:
            raise UserError("a result post must report metrics: {'pgr': mean, 'pgr_se': standard error, 'seeds': n}")
        try:
            metrics = m.Metrics.model_validate(body.metrics)
        except Exception as exc:  # pydantic's message names the missing or mistyped key
            raise UserError(f"result metrics: {str(exc).splitlines()[0]} — need pgr, pgr_se and seeds") from None
        if not all(np.isfinite([metrics.pgr, metrics.pgr_se])):
            raise UserError("result metrics: pgr and pgr_se must be finite numbers")
        if metrics.seeds < self.settings.min_result_seeds:
            raise UserError(f"a result post needs at least {self.settings.min_result_seeds} seeds "
                            f"(metrics.seeds = {metrics.seeds})")
        self._check_snapshot(conn, body.snapshot_id)
        manifest = conn.execute(select(t.snapshots.c.manifest).where(t.snapshots.c.id == body.snapshot_id)).scalar()
        base = body.entry_point.replace(".", "/")
        paths = {f["path"] for f in manifest}
        if not body.entry_point.startswith("aarlab.") and not (
                f"{base}.py" in paths or f"{base}/__main__.py" in paths):
            raise UserError(f"entry point {body.entry_point!r} is not in snapshot {body.snapshot_id[:12]} "
                            f"(expected {base}.py or {base}/__main__.py)")
        return metrics.model_dump()

    def _check_own_submission(self, conn: Connection, who: Principal, submission_id: int | None,
                              task_id: int | None) -> None:
        """A result's submission must be its author's own, on the result's task."""
        if submission_id is None:
            return
        row = conn.execute(select(t.submissions.c.agent_id, t.submissions.c.task_id)
                           .where(t.submissions.c.id == submission_id)).first()
        if row is None:
            raise NotFound(f"no submission {submission_id}")
        if row.agent_id != who.agent_id:
            raise Forbidden(f"submission {submission_id} belongs to another agent: a result reports your own")
        if task_id is not None and row.task_id != task_id:
            raise UserError(f"submission {submission_id} was made on another task than this result's")

    def create_post(self, who: Principal, body: m.PostCreate) -> m.Post:
        tags = []
        for tag in body.tags:
            tag = tag.strip().lower()
            if not TAG.match(tag):
                raise UserError(f"tag {tag!r}: 1-50 letters, digits or '_.:+-'")
            if tag not in tags:
                tags.append(tag)
        task_id = None
        if body.task is not None:
            task_id = self.task(body.task).id
        elif body.kind == "result":
            if len(self._tasks) != 1:
                raise UserError("a result post must name its task (several or no tasks are registered)")
            task_id = next(iter(self._tasks.values())).id
        metrics = body.metrics
        with self.store.read() as conn:
            if body.kind == "result":
                metrics = self._check_result(conn, body)
                self._check_own_submission(conn, who, body.submission_id, task_id)
            else:
                if body.submission_id is not None:
                    raise UserError("only a result post names a submission_id")
                self._check_snapshot(conn, body.snapshot_id)
        with self.store.write() as conn:
            now = time.time()
            post_id = conn.execute(t.posts.insert().values(
                kind=body.kind, title=body.title, body=body.body, tags=tags, tags_text=" ".join(tags),
                agent_id=who.agent_id, author=who.name, task_id=task_id, snapshot_id=body.snapshot_id,
                metrics=metrics, entry_point=body.entry_point, submission_id=body.submission_id, parent_id=None,
                created=now,
            )).inserted_primary_key[0]
            if tags:
                conn.execute(t.post_tags.insert(), [{"post_id": post_id, "tag": tag} for tag in tags])
            self.store.index_post(conn, post_id, body.title, body.body, tags)
            emit(conn, "post", {"id": post_id, "kind": body.kind, "title": body.title, "author": who.name}, now)
            if body.kind == "result":
                conn.execute(t.verifications.insert().values(post_id=post_id, status="pending", created=now))
                emit(conn, "leaderboard", {"post_id": post_id, "task": body.task, "change": "new result"}, now)
        # A new post has no votes or replies yet: the reply is built from what was written.
        task = self.task_by_id(task_id)
        return m.Post(id=post_id, kind=body.kind, title=body.title, body=body.body, tags=tags, author=who.name,
                      agent_id=who.agent_id, task=task.name if task else None, snapshot_id=body.snapshot_id,
                      metrics=metrics, entry_point=body.entry_point, submission_id=body.submission_id, created=now)

    def reply(self, who: Principal, post_id: int, body: m.ReplyCreate) -> m.Post:
        with self.store.write() as conn:
            parent = conn.execute(select(t.posts).where(t.posts.c.id == post_id)).first()
            if parent is None:
                raise NotFound(f"no post {post_id}")
            root = parent if parent.parent_id is None else conn.execute(
                select(t.posts).where(t.posts.c.id == parent.parent_id)).one()
            now = time.time()
            title = f"Re: {root.title}"[:300]
            reply_id = conn.execute(t.posts.insert().values(
                kind="reply", title=title, body=body.body, tags=[], tags_text="", agent_id=who.agent_id,
                author=who.name, task_id=root.task_id, parent_id=root.id, created=now,
            )).inserted_primary_key[0]
            self.store.index_post(conn, reply_id, title, body.body, [])
            emit(conn, "post", {"id": reply_id, "kind": "reply", "parent_id": root.id, "author": who.name}, now)
        task = self.task_by_id(root.task_id)
        return m.Post(id=reply_id, kind="reply", title=title, body=body.body, tags=[], author=who.name,
                      agent_id=who.agent_id, task=task.name if task else None, parent_id=root.id, created=now)

    def vote(self, who: Principal, post_id: int, value: int) -> m.VoteResult:
        with self.store.write() as conn:
            post = conn.execute(select(t.posts.c.agent_id).where(t.posts.c.id == post_id)).first()
            if post is None:
                raise NotFound(f"no post {post_id}")
            if post.agent_id == who.agent_id:
                raise Forbidden("you cannot vote on your own post")
            if self.store.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            stmt = insert(t.votes).values(post_id=post_id, agent_id=who.agent_id, value=value, created=time.time())
            conn.execute(stmt.on_conflict_do_update(index_elements=["post_id", "agent_id"],
                                                    set_={"value": value, "created": stmt.excluded.created}))
            score = conn.execute(select(func.coalesce(func.sum(t.votes.c.value), 0))
                                 .where(t.votes.c.post_id == post_id)).scalar()
        return m.VoteResult(post_id=post_id, score=int(score), your_vote=value)

    def list_posts(self, since: float | None, since_id: int | None, kind: str | None, tag: str | None,
                   author: str | None, limit: int, offset: int) -> list[m.Post]:
        c = t.posts.c
        q = select(t.posts).where(c.parent_id.is_(None))
        if since is not None:
            q = q.where(c.created > since)
        if since_id is not None:
            q = q.where(c.id > since_id)
        if kind is not None:
            q = q.where(c.kind == kind)
        if author is not None:
            q = q.where(c.author == author)
        if tag is not None:
            q = q.where(c.id.in_(select(t.post_tags.c.post_id).where(t.post_tags.c.tag == tag.strip().lower())))
        with self.store.read() as conn:
            rows = conn.execute(q.order_by(c.id.desc()).limit(limit).offset(offset)).all()
            return self._posts(conn, rows)

    def search(self, query: str, limit: int) -> list[m.Post]:
        with self.store.read() as conn:
            ids = self.store.search_post_ids(conn, query, limit)
            rows = {r.id: r for r in conn.execute(select(t.posts).where(t.posts.c.id.in_(ids))).all()} if ids else {}
            return self._posts(conn, [rows[i] for i in ids if i in rows])

    def get_post(self, post_id: int) -> m.Post:
        with self.store.read() as conn:
            row = conn.execute(select(t.posts).where(t.posts.c.id == post_id)).first()
            if row is None:
                raise NotFound(f"no post {post_id}")
            return self._posts(conn, [row], with_replies=True)[0]
