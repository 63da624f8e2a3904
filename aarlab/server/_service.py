"""``Lab``: the server's operations on one store, independent of HTTP (the routers are thin wrappers).

Every write runs in one store transaction with its event row, so a reader never sees a post without its
event or a submission without its budget effect. Inputs are fully checked before the transaction opens:
a refused request stores nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import HTTPException
from sqlalchemy import Connection, and_, func, select

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Authenticator, Principal, token_hash
from aarlab.server._settings import ServerSettings, new_token
from aarlab.server._snapshots import canonicalize, diff, read_file
from aarlab.server._tasks import LoadedTask, check_predictions, load_task, predictions_hash, predictions_json
from aarlab.store import Store
from aarlab.store import tables as t
from aarlab.w2s.scoring import Score

ENTRY_POINT = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
SNAPSHOT_ID = re.compile(r"^[0-9a-f]{64}$")
TAG = re.compile(r"^[\w.:+-]{1,50}$")
SORTS = ("verified", "claimed", "public", "private", "recent")


def _submit_sql(dialect: str) -> dict[str, str]:
    sql = {
        "lock": "SELECT id FROM agents WHERE id = ? FOR UPDATE",
        "budget": "SELECT count(*), sum(CASE WHEN created > ? THEN 1 ELSE 0 END), "
                  "min(CASE WHEN created > ? THEN created END), max(CASE WHEN improved THEN shown_acc END) "
                  "FROM submissions WHERE agent_id = ? AND task_id = ?",
        "insert": "INSERT INTO submissions (task_id, agent_id, created, pred_hash, predictions, snapshot_id, method, "
                  "public_acc, public_pgr, private_acc, private_pgr, shown_acc, shown_pgr, improved) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        "event": "INSERT INTO events (kind, data, created) VALUES (?, ?, ?)",
    }
    if dialect == "postgresql":  # psycopg's placeholders; JSON columns take text with a cast
        sql = {k: v.replace("?", "%s") for k, v in sql.items()}
        sql["insert"] = sql["insert"].replace("%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                                              "%s, %s, %s, %s, %s::json, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
        sql["event"] = sql["event"].replace("(%s, %s, %s)", "(%s, %s::json, %s)")
    return sql


def public_step(n_public: int, decimals: int) -> float:
    """The reporting step of public accuracies: ``10**-decimals``, or coarser for small public parts so
    that one example is at most half a step."""
    unit = 10.0 ** -decimals
    return max(unit, math.ceil(2.0 / n_public / unit - 1e-9) * unit)


def coarse_public_scores(acc: float, weak_acc: float, ceiling_acc: float, n_public: int, decimals: int,
                         key: bytes, digest: str) -> tuple[float, float]:
    """Coarsen a public-part accuracy before an agent sees it, and derive the PGR from the coarse value.

    The accuracy is put on a grid of step ``max(10**-decimals, 2/n_public)`` (rounded up to the decimals),
    so one example never moves it by a whole step and exact counts are never shown. Rounding to the grid
    is stochastic with a dither keyed on the predictions' hash: it is unbiased, the same predictions always
    get the same answer, and flipping one prediction changes the answer only with probability about
    ``1/(n_public * step)`` — which defeats the attack that parks a submission on a rounding boundary and
    then reads one label per submission. The PGR is computed from the coarse accuracy, so its finer scale
    (1/(ceiling - weak) times the accuracy's) leaks nothing more.
    """
    step = public_step(n_public, decimals)
    u = int.from_bytes(hmac.new(key, digest.encode(), "sha256").digest()[:8], "big") / 2.0**64
    shown = math.floor(acc / step + u) * step
    shown = min(1.0, max(0.0, shown))
    return round(shown, decimals), round((shown - weak_acc) / (ceiling_acc - weak_acc), decimals)


def not_found(what: str) -> HTTPException:
    return HTTPException(404, what)


def emit(conn: Connection, kind: str, data: dict[str, Any], now: float) -> None:
    conn.execute(t.events.insert().values(kind=kind, data=data, created=now))


class Lab:
    """The lab's state and operations: one store, the settings, and caches of tokens and tasks."""

    def __init__(self, store: Store, settings: ServerSettings):
        self.store = store
        self.settings = settings
        self.auth = Authenticator(store, settings.admin_token, settings.viewer_token)
        # Stable for a run (derived from its admin token), so resubmitting a vector, even after a restart,
        # returns the same coarse score and averaging repeated submissions learns nothing.
        self._submit_sql = _submit_sql(store.dialect)
        self._dither_key = hashlib.sha256(b"aarlab-score-dither\0" + settings.admin_token.encode()).digest()
        self._tasks: dict[str, LoadedTask] = {}
        self._tasks_by_id: dict[int, LoadedTask] = {}
        self._tasks_lock = threading.Lock()
        with store.read() as conn:
            rows = conn.execute(select(t.tasks)).all()
        for row in rows:
            try:
                self._cache_task(load_task(row.id, row.name, row.task_dir))
            except UserError:
                pass  # a task dir that moved away: reported when the task is used

    # -- tasks ---------------------------------------------------------------------------------------------
    def _cache_task(self, task: LoadedTask) -> LoadedTask:
        with self._tasks_lock:
            self._tasks[task.name] = task
            self._tasks_by_id[task.id] = task
        return task

    def task(self, name: str) -> LoadedTask:
        found = self._tasks.get(name)
        if found is not None:
            return found
        with self.store.read() as conn:  # registered by another server process on the same database
            row = conn.execute(select(t.tasks).where(t.tasks.c.name == name)).first()
        if row is None:
            known = ", ".join(sorted(self._tasks)) or "none yet"
            raise not_found(f"unknown task {name!r} (registered tasks: {known})")
        return self._cache_task(load_task(row.id, row.name, row.task_dir))

    def task_by_id(self, task_id: int | None) -> LoadedTask | None:
        if task_id is None:
            return None
        if task_id not in self._tasks_by_id:
            with self.store.read() as conn:
                row = conn.execute(select(t.tasks).where(t.tasks.c.id == task_id)).first()
            if row is None:
                return None
            self._cache_task(load_task(row.id, row.name, row.task_dir))
        return self._tasks_by_id[task_id]

    def task_summary(self, task: LoadedTask, created: float = 0.0) -> m.TaskSummary:
        info = task.info
        return m.TaskSummary(id=task.id, name=task.name, dataset=info.dataset, label_space=info.label_space,
                             input_fields=info.input_fields, weak_model=info.weak_model, strong_model=info.strong_model,
                             n_test=task.n_test, sizes=info.sizes, fixed=info.fixed, description=info.description,
                             created=created)

    def register_task(self, task_dir: str, name: str | None) -> m.TaskSummary:
        from aarlab.server._tasks import read_task_dir

        info, data = read_task_dir(task_dir)
        name = name or info.name
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}", name):
            raise UserError(f"task name {name!r}: use letters, digits, '_', '.', ':' and '-'")
        root = str(data["root"])
        load_task(0, name, root)  # checks both parts score (PGR defined) before anything is stored
        now = time.time()
        with self.store.write() as conn:
            row = conn.execute(select(t.tasks).where(t.tasks.c.name == name)).first()
            if row is not None:
                if row.task_dir != root:
                    raise HTTPException(409, f"task {name!r} is already registered from {row.task_dir}")
                task_id, created = row.id, row.created
            else:
                task_id = conn.execute(t.tasks.insert().values(
                    name=name, task_dir=root, info=info.model_dump(mode="json"), n_test=data["n_test"], created=now,
                )).inserted_primary_key[0]
                created = now
        return self.task_summary(self._cache_task(load_task(task_id, name, root)), created)

    def tasks(self) -> list[m.TaskSummary]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.tasks.c.name, t.tasks.c.created).order_by(t.tasks.c.id)).all()
        out = []
        for row in rows:
            try:
                out.append(self.task_summary(self.task(row.name), row.created))
            except UserError:
                continue
        return out

    # -- agents --------------------------------------------------------------------------------------------
    def create_agent(self, body: m.AgentCreate) -> m.AgentCredentials:
        if body.name in ("admin", "viewer"):
            raise UserError(f"agent name {body.name!r} is reserved")
        token = new_token()
        with self.store.write() as conn:
            if conn.execute(select(t.agents.c.id).where(t.agents.c.name == body.name)).first():
                raise HTTPException(409, f"an agent named {body.name!r} already exists")
            agent_id = conn.execute(t.agents.insert().values(
                name=body.name, direction=body.direction, token_hash=token_hash(token), created=time.time(),
            )).inserted_primary_key[0]
        return m.AgentCredentials(id=agent_id, name=body.name, token=token)

    def agents(self) -> list[m.AgentInfo]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.agents).order_by(t.agents.c.id)).all()
        return [m.AgentInfo(id=r.id, name=r.name, direction=r.direction, created=r.created) for r in rows]

    def _agent_id(self, conn: Connection, name: str | None) -> int | None:
        if name is None:
            return None
        agent_id = conn.execute(select(t.agents.c.id).where(t.agents.c.name == name)).scalar()
        if agent_id is None:
            raise not_found(f"unknown agent {name!r}")
        return agent_id

    # -- evaluation ----------------------------------------------------------------------------------------
    def _budget(self, conn: Connection, agent_id: int, task: LoadedTask, now: float) -> m.Budget:
        hour_ago = now - 3600.0
        c = t.submissions.c
        where = and_(c.agent_id == agent_id, c.task_id == task.id)
        used_run = conn.execute(select(func.count()).where(where)).scalar() or 0
        used_hour, oldest = conn.execute(select(func.count(), func.min(c.created)).where(where, c.created > hour_ago)).one()
        per_run, per_hour = self.settings.submissions_per_run, self.settings.submissions_per_hour
        remaining_run = max(0, per_run - used_run)
        remaining_hour = max(0, min(per_hour - (used_hour or 0), remaining_run))
        next_slot = oldest + 3600.0 if used_hour and used_hour >= per_hour and remaining_run else None
        return m.Budget(task=task.name, per_run=per_run, per_hour=per_hour, used_run=used_run,
                        used_hour=used_hour or 0, remaining_run=remaining_run, remaining_hour=remaining_hour,
                        next_slot_at=next_slot)

    def budget(self, who: Principal, task_name: str) -> m.Budget:
        task = self.task(task_name)
        with self.store.read() as conn:
            return self._budget(conn, who.agent_id, task, time.time())

    def public_view(self, task: LoadedTask, public_acc: float, digest: str) -> tuple[float, float]:
        """The (accuracy, PGR) an agent may see for a submission: see ``coarse_public_scores``."""
        return coarse_public_scores(public_acc, task.public.weak_acc, task.public.ceiling_acc, len(task.public.labels),
                                    self.settings.score_decimals, self._dither_key, digest)

    def _check_snapshot(self, conn: Connection, snapshot_id: str | None) -> None:
        if snapshot_id is None:
            return
        if not SNAPSHOT_ID.match(snapshot_id) or conn.execute(
                select(t.snapshots.c.id).where(t.snapshots.c.id == snapshot_id)).first() is None:
            raise UserError(f"unknown snapshot {snapshot_id!r} (publish it first)")

    def submit(self, who: Principal, body: m.SubmissionCreate) -> m.SubmissionResult:
        task = self.task(body.task)
        preds = check_predictions(body.predictions, task.n_test, task.n_labels, self.settings.max_predictions)
        public, private = task.public.score(preds), task.private.score(preds)
        preds_text = predictions_json(preds)
        digest = predictions_hash(preds, preds_text)
        shown_acc, shown_pgr = self.public_view(task, public.transfer_acc, digest)
        if body.snapshot_id is not None:
            with self.store.read() as conn:
                self._check_snapshot(conn, body.snapshot_id)
        step = public_step(len(task.public.labels), self.settings.score_decimals)
        per_run, per_hour = self.settings.submissions_per_run, self.settings.submissions_per_hour
        sql = self._submit_sql
        # The hot path of the lab, in plain SQL (a budget check, two inserts): SQLAlchemy's statement
        # building costs more than the database work here.
        with self.store.write() as conn:
            if self.store.dialect == "postgresql":  # serialise this agent's budget check and insert
                conn.exec_driver_sql(sql["lock"], (who.agent_id,))
            now = time.time()
            used_run, used_hour, oldest, best_acc = conn.exec_driver_sql(
                sql["budget"], (now - 3600.0, now - 3600.0, who.agent_id, task.id)).one()
            used_hour = used_hour or 0
            if used_run >= per_run:
                raise HTTPException(429, f"submission budget spent: {per_run} submissions per run on task "
                                         f"{task.name!r} (used {used_run})")
            if used_hour >= per_hour:
                wait = max(0.0, (oldest or now) + 3600.0 - now)
                raise HTTPException(429, f"hourly submission budget spent: {per_hour} per hour on task "
                                         f"{task.name!r}; the next slot opens in {wait:.0f} s",
                                    headers={"Retry-After": str(int(wait) + 1)})
            improved = best_acc is None or shown_acc >= best_acc + step - 1e-9
            if improved:
                reply_acc, reply_pgr = shown_acc, shown_pgr
            else:
                reply_acc = best_acc
                reply_pgr = round((best_acc - task.public.weak_acc) / (task.public.ceiling_acc - task.public.weak_acc),
                                  self.settings.score_decimals)
            sub_id = conn.exec_driver_sql(sql["insert"], (
                task.id, who.agent_id, now, digest, preds_text, body.snapshot_id, body.method, public.transfer_acc,
                public.pgr, private.transfer_acc, private.pgr, reply_acc, reply_pgr, improved)).scalar()
            conn.exec_driver_sql(sql["event"], ("submission", json.dumps(
                {"id": sub_id, "task": task.name, "agent": who.name, "snapshot_id": body.snapshot_id}), now))
        remaining_run = per_run - used_run - 1
        budget = m.Budget(task=task.name, per_run=per_run, per_hour=per_hour, used_run=used_run + 1,
                          used_hour=used_hour + 1, remaining_run=remaining_run,
                          remaining_hour=max(0, min(per_hour - used_hour - 1, remaining_run)))
        return m.SubmissionResult(
            id=sub_id, task=task.name, public_accuracy=reply_acc, public_pgr=reply_pgr, improved=improved,
            note="" if improved else (f"not better than your best public accuracy {best_acc:.2f} by "
                                      f"{step:.2f} or more; the scores shown are that best"),
            remaining_run=budget.remaining_run,
            remaining_hour=budget.remaining_hour, hash=digest, snapshot_id=body.snapshot_id, created=now)

    def my_submissions(self, who: Principal, task_name: str | None, submission_id: int | None = None) -> list[m.SubmissionSummary]:
        c = t.submissions.c
        q = select(t.submissions, t.tasks.c.name.label("task_name")).join(t.tasks, t.tasks.c.id == c.task_id)
        if submission_id is not None:
            q = q.where(c.id == submission_id)
        else:
            q = q.where(c.agent_id == who.agent_id)
            if task_name is not None:
                q = q.where(c.task_id == self.task(task_name).id)
        with self.store.read() as conn:
            rows = conn.execute(q.order_by(c.id)).all()
        if submission_id is not None:
            if not rows:
                raise not_found(f"no submission {submission_id}")
            if who.role == "agent" and rows[0].agent_id != who.agent_id:
                raise HTTPException(403, f"submission {submission_id} belongs to another agent")
        return [m.SubmissionSummary(id=r.id, task=r.task_name, created=r.created, hash=r.pred_hash,
                                    snapshot_id=r.snapshot_id, method=r.method, public_accuracy=r.shown_acc,
                                    public_pgr=r.shown_pgr, improved=bool(r.improved)) for r in rows]

    def submission_records(self, since_id: int, task_name: str | None, limit: int) -> list[m.SubmissionRecord]:
        c = t.submissions.c
        q = (select(t.submissions, t.tasks.c.name.label("task_name"), t.agents.c.name.label("agent_name"))
             .join(t.tasks, t.tasks.c.id == c.task_id).join(t.agents, t.agents.c.id == c.agent_id)
             .where(c.id > since_id).order_by(c.id).limit(limit))
        if task_name is not None:
            q = q.where(c.task_id == self.task(task_name).id)
        with self.store.read() as conn:
            rows = conn.execute(q).all()
        return [m.SubmissionRecord(id=r.id, task=r.task_name, agent=r.agent_name, agent_id=r.agent_id,
                                   created=r.created, hash=r.pred_hash, snapshot_id=r.snapshot_id, method=r.method,
                                   predictions=r.predictions, public_accuracy=r.public_acc, public_pgr=r.public_pgr,
                                   private_accuracy=r.private_acc, private_pgr=r.private_pgr) for r in rows]

    def score_heldout(self, body: m.HeldoutScoreRequest) -> Score:
        task = self.task(body.task)
        heldout = task.heldout()
        preds = check_predictions(body.predictions, len(heldout.labels), task.n_labels, self.settings.max_predictions)
        return heldout.score(preds)

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
                          metrics=r.metrics, entry_point=r.entry_point, parent_id=r.parent_id, created=r.created,
                          score=int(scores.get(r.id) or 0), n_replies=int(n_replies.get(r.id) or 0))
            if with_replies:
                replies = conn.execute(select(t.posts).where(t.posts.c.parent_id == r.id).order_by(t.posts.c.id)).all()
                post.replies = self._posts(conn, replies)
                if r.kind == "result":
                    post.verification = self._latest_verification(conn, r.id)
            out.append(post)
        return out

    def _latest_verification(self, conn: Connection, post_id: int) -> m.Verification | None:
        row = conn.execute(select(t.verifications).where(t.verifications.c.post_id == post_id)
                           .order_by(t.verifications.c.id.desc()).limit(1)).first()
        return m.Verification.model_validate(row._asdict()) if row else None

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
            else:
                self._check_snapshot(conn, body.snapshot_id)
        with self.store.write() as conn:
            now = time.time()
            post_id = conn.execute(t.posts.insert().values(
                kind=body.kind, title=body.title, body=body.body, tags=tags, tags_text=" ".join(tags),
                agent_id=who.agent_id, author=who.name, task_id=task_id, snapshot_id=body.snapshot_id,
                metrics=metrics, entry_point=body.entry_point, parent_id=None, created=now,
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
                      metrics=metrics, entry_point=body.entry_point, created=now)

    def reply(self, who: Principal, post_id: int, body: m.ReplyCreate) -> m.Post:
        with self.store.write() as conn:
            parent = conn.execute(select(t.posts).where(t.posts.c.id == post_id)).first()
            if parent is None:
                raise not_found(f"no post {post_id}")
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
            if conn.execute(select(t.posts.c.id).where(t.posts.c.id == post_id)).first() is None:
                raise not_found(f"no post {post_id}")
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
                raise not_found(f"no post {post_id}")
            return self._posts(conn, [row], with_replies=True)[0]

    # -- snapshots -----------------------------------------------------------------------------------------
    def _snapshot_info(self, row: Any, with_files: bool = True) -> m.SnapshotInfo:
        return m.SnapshotInfo(id=row.id, author=row.author, agent_id=row.agent_id, parent=row.parent_id,
                              message=row.message, size=row.size, n_files=row.n_files, created=row.created,
                              files=[m.FileEntry(**f) for f in row.manifest] if with_files else [])

    def publish_snapshot(self, who: Principal, raw: bytes, message: str, parent: str | None) -> m.SnapshotInfo:
        snap = canonicalize(raw, int(self.settings.max_snapshot_mb * 1e6), self.settings.max_snapshot_files)
        with self.store.read() as conn:
            if parent is not None:
                self._check_snapshot(conn, parent)
            existing = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snap.id)).first()
        if existing is not None:  # content-addressed: the same files are the same snapshot
            return self._snapshot_info(existing)
        with self.store.write() as conn:
            existing = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snap.id)).first()
            if existing is None:
                self.store.put_blob(conn, snap.id, snap.data)
                conn.execute(t.snapshots.insert().values(
                    id=snap.id, agent_id=who.agent_id, author=who.name, parent_id=parent, message=message,
                    size=snap.size, n_files=len(snap.manifest), manifest=snap.manifest, created=time.time()))
            row = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snap.id)).one()
        return self._snapshot_info(row)

    def snapshot_row(self, snapshot_id: str) -> Any:
        if not SNAPSHOT_ID.match(snapshot_id):
            raise not_found(f"no snapshot {snapshot_id!r} (ids are 64 hex digits)")
        with self.store.read() as conn:
            row = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snapshot_id)).first()
        if row is None:
            raise not_found(f"no snapshot {snapshot_id}")
        return row

    def snapshot_info(self, snapshot_id: str) -> m.SnapshotInfo:
        return self._snapshot_info(self.snapshot_row(snapshot_id))

    def snapshot_tar(self, snapshot_id: str) -> bytes:
        self.snapshot_row(snapshot_id)
        data = self.store.get_blob(snapshot_id)
        if data is None:
            raise HTTPException(500, f"snapshot {snapshot_id} is registered but its tar is missing or corrupt")
        return data

    def snapshot_file(self, snapshot_id: str, path: str) -> bytes:
        data = read_file(self.snapshot_tar(snapshot_id), path)
        if data is None:
            raise not_found(f"snapshot {snapshot_id[:12]} has no file {path!r}")
        return data

    def snapshots(self, author: str | None, limit: int, offset: int) -> list[m.SnapshotInfo]:
        q = select(t.snapshots).order_by(t.snapshots.c.created.desc(), t.snapshots.c.id)
        if author is not None:
            q = q.where(t.snapshots.c.author == author)
        with self.store.read() as conn:
            rows = conn.execute(q.limit(limit).offset(offset)).all()
        return [self._snapshot_info(r, with_files=False) for r in rows]

    def diff(self, a: str, b: str) -> m.SnapshotDiff:
        ra, rb = self.snapshot_row(a), self.snapshot_row(b)
        return m.SnapshotDiff(**diff(a, self.snapshot_tar(a), ra.manifest, b, self.snapshot_tar(b), rb.manifest))

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
                raise not_found(f"no post {body.post_id}")
            if post.kind != "result":
                raise UserError(f"post {body.post_id} is a {post.kind} post; only result posts are verified")
            now = time.time()
            current = self._latest_verification(conn, body.post_id)
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

    # -- flags ---------------------------------------------------------------------------------------------
    def _flag(self, row: Any, names: dict[int, str]) -> m.Flag:
        d = row._asdict()
        d["agent"] = names.get(row.agent_id) if row.agent_id is not None else None
        return m.Flag.model_validate(d)

    def _names(self, conn: Connection) -> dict[int, str]:
        return dict(conn.execute(select(t.agents.c.id, t.agents.c.name)).all())

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
                raise not_found(f"no post {body.post_id}")
            if body.submission_id is not None and conn.execute(
                    select(t.submissions.c.id).where(t.submissions.c.id == body.submission_id)).first() is None:
                raise not_found(f"no submission {body.submission_id}")
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
        with self.store.write() as conn:
            if conn.execute(select(t.flags.c.id).where(t.flags.c.id == flag_id)).first() is None:
                raise not_found(f"no flag {flag_id}")
            now = time.time()
            conn.execute(t.flags.update().where(t.flags.c.id == flag_id).values(
                status="cleared" if body.action == "clear" else "confirmed", resolved=now, resolver=who.name,
                note=body.note))
            emit(conn, "flag", {"id": flag_id, "status": body.action}, now)
            emit(conn, "leaderboard", {"change": "flag", "flag_id": flag_id}, now)
            row = conn.execute(select(t.flags).where(t.flags.c.id == flag_id)).one()
            return self._flag(row, self._names(conn))

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
        p, s, f = t.posts.c, t.submissions.c, t.flags.c
        q = select(t.posts).where(p.kind == "result", p.parent_id.is_(None))
        if task is not None:
            q = q.where(p.task_id == task.id)
        entries = []
        with self.store.read() as conn:
            posts = conn.execute(q.order_by(p.id)).all()
            flags = conn.execute(select(t.flags).where(f.status != "cleared")).all()
            for post in posts:
                sub = None
                if post.agent_id is not None:
                    sub = conn.execute(select(t.submissions).where(
                        s.agent_id == post.agent_id, s.snapshot_id == post.snapshot_id,
                        *([s.task_id == post.task_id] if post.task_id is not None else []))
                        .order_by(s.id.desc()).limit(1)).first()
                ver = self._latest_verification(conn, post.id)
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
                    # Agents see what they were told when submitting (the ladder's value), nothing finer.
                    public_pgr=(sub.public_pgr if who.role != "agent" else sub.shown_pgr) if sub is not None else None,
                    # Full-precision private scores would let an agent tune on the private part.
                    private_pgr=sub.private_pgr if sub is not None and who.role != "agent" else None,
                    submission_id=sub.id if sub is not None else None,
                    verified_pgr=verified, verified_pgr_se=ver.se if done else None,
                    verified_seeds=ver.seeds if done else None,
                    verification_status=ver.status if ver is not None else None,
                    gap=(claimed - verified) if claimed is not None and verified is not None else None,
                    flags=[m.FlagBrief(id=fl.id, detector=fl.detector, severity=fl.severity, status=fl.status,
                                       summary=fl.summary) for fl in own],
                    quarantined=any(fl.severity == "severe" for fl in own),
                ))
        key = {"verified": lambda e: e.verified_pgr, "claimed": lambda e: e.claimed_pgr,
               "public": lambda e: e.public_pgr, "private": lambda e: e.private_pgr,
               "recent": lambda e: e.created}[sort]
        # Entries with a value first (best first), then those without (newest first); quarantined at the end.
        entries.sort(key=lambda e: (e.quarantined, key(e) is None, -(key(e) or 0.0), -e.created))
        rank = 0
        for e in entries:
            if not e.quarantined and key(e) is not None:
                rank += 1
                e.rank = rank
        return m.Leaderboard(task=task.name if task else None, sort=sort, baselines=baselines, entries=entries)

    # -- events --------------------------------------------------------------------------------------------
    def events_after(self, after_id: int, kinds: set[str] | None, limit: int = 500) -> list[m.Event]:
        q = select(t.events).where(t.events.c.id > after_id).order_by(t.events.c.id).limit(limit)
        if kinds:
            q = q.where(t.events.c.kind.in_(sorted(kinds)))
        with self.store.read() as conn:
            rows = conn.execute(q).all()
        return [m.Event(id=r.id, kind=r.kind, data=r.data, created=r.created) for r in rows]

    def last_event_id(self) -> int:
        with self.store.read() as conn:
            return conn.execute(select(func.coalesce(func.max(t.events.c.id), 0))).scalar()


__all__ = ["Lab", "SORTS"]
