"""Evaluation: budgets, submissions (one or several seeds) scored with ``w2s.scoring`` and answered with their
own coarse public numbers (``_feedback``), the admin's full-precision records, held-out scoring."""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np
from sqlalchemy import Connection, and_, func, select

from aarlab.server import schemas as m
from aarlab.server._auth import Principal
from aarlab.server._core import LabCore
from aarlab.server._errors import BudgetSpent, Forbidden, NotFound
from aarlab.server._feedback import public_feedback
from aarlab.server._tasks import LoadedTask, check_predictions, predictions_hash, predictions_json
from aarlab.store import tables as t
from aarlab.w2s.scoring import Score


def _submit_sql(dialect: str) -> dict[str, str]:
    sql = {
        "lock": "SELECT id FROM agents WHERE id = ? FOR UPDATE",
        "budget": "SELECT count(*), sum(CASE WHEN created > ? THEN 1 ELSE 0 END), "
                  "min(CASE WHEN created > ? THEN created END), max(shown_acc) "
                  "FROM submissions WHERE agent_id = ? AND task_id = ?",
        "insert": "INSERT INTO submissions (task_id, agent_id, created, pred_hash, predictions, snapshot_id, method, "
                  "public_acc, public_pgr, private_acc, private_pgr, shown_acc, shown_pgr, improved, n_seeds, "
                  "seed_predictions, public_pgr_se, public_test_se, private_pgr_se, private_test_se, shown_acc_se, "
                  "shown_pgr_se, shown_test_se) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        "event": "INSERT INTO events (kind, data, created) VALUES (?, ?, ?)",
    }
    if dialect == "postgresql":  # psycopg's placeholders; JSON columns take text with a cast
        sql = {k: v.replace("?", "%s") for k, v in sql.items()}
        sql["insert"] = sql["insert"].replace("VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,",
                                              "VALUES (%s, %s, %s, %s, %s::json, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                                              "%s::json,")
        sql["event"] = sql["event"].replace("(%s, %s, %s)", "(%s, %s::json, %s)")
    return sql


def _finite(value: float) -> float | None:
    """A stored SE: NULL for an infinite one (a part whose gap is inside its noise)."""
    return value if math.isfinite(value) else None


def _shown_se(value: float | None) -> float:
    return math.inf if value is None else value


class EvalOps(LabCore):
    """Submissions and budgets."""

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

    def submit(self, who: Principal, body: m.SubmissionCreate) -> m.SubmissionResult:
        """Score one submission (one or several seeds) and reply with its own coarse public scores."""
        task = self.task(body.task)
        runs = np.stack([check_predictions(run, task.n_test, task.n_labels, self.settings.max_predictions)
                         for run in body.runs])
        private = task.private.score_seeds(runs)
        public = task.public.score_seeds(runs)
        shown = public_feedback(task.public, runs, task.n_labels, self._dither_key, self.settings.score_decimals)
        preds_text = predictions_json(runs[0])
        seeds_text = "[" + ",".join(predictions_json(run) for run in runs) + "]" if len(runs) > 1 else None
        digest = predictions_hash(runs[0], preds_text) if seeds_text is None else \
            hashlib.sha256(seeds_text.encode()).hexdigest()
        if body.snapshot_id is not None:
            with self.store.read() as conn:
                self._check_snapshot(conn, body.snapshot_id)
        per_run, per_hour = self.settings.submissions_per_run, self.settings.submissions_per_hour
        sql = _submit_sql(self.store.dialect)
        # The hot path of the lab, in plain SQL (a budget check, two inserts): SQLAlchemy's statement
        # building costs more than the database work here.
        with self.store.write() as conn:
            if self.store.dialect == "postgresql":  # serialise this agent's budget check and insert
                conn.exec_driver_sql(sql["lock"], (who.agent_id,))
            now = time.time()
            used_run, used_hour, oldest, best_shown = conn.exec_driver_sql(
                sql["budget"], (now - 3600.0, now - 3600.0, who.agent_id, task.id)).one()
            used_hour = used_hour or 0
            if used_run >= per_run:
                raise BudgetSpent(f"submission budget spent: {per_run} submissions per run on task "
                                  f"{task.name!r} (used {used_run})")
            if used_hour >= per_hour:
                wait = max(0.0, (oldest or now) + 3600.0 - now)
                raise BudgetSpent(f"hourly submission budget spent: {per_hour} per hour on task "
                                  f"{task.name!r}; the next slot opens in {wait:.0f} s", retry_after=int(wait) + 1)
            # Derived from shown values only: the agent already knows every accuracy it was shown.
            improved = best_shown is None or shown.accuracy > best_shown + 1e-9
            sub_id = conn.exec_driver_sql(sql["insert"], (
                task.id, who.agent_id, now, digest, preds_text, body.snapshot_id, body.method, public.transfer_acc,
                public.pgr, private.transfer_acc, private.pgr, shown.accuracy, shown.pgr, improved, len(runs),
                seeds_text, public.pgr_se, _finite(public.pgr_test_se), private.pgr_se,
                _finite(private.pgr_test_se), shown.accuracy_seed_se, shown.pgr_seed_se,
                _finite(shown.pgr_test_se))).scalar()
            conn.exec_driver_sql(sql["event"], ("submission", json.dumps(
                {"id": sub_id, "task": task.name, "agent": who.name, "snapshot_id": body.snapshot_id}), now))
        remaining_run = per_run - used_run - 1
        remaining_hour = max(0, min(per_hour - used_hour - 1, remaining_run))
        return m.SubmissionResult(
            id=sub_id, task=task.name, n_seeds=shown.n_seeds, public_accuracy=shown.accuracy,
            public_accuracy_se=shown.accuracy_seed_se, public_pgr=shown.pgr, public_pgr_se=shown.pgr_seed_se,
            public_pgr_test_se=shown.pgr_test_se, step=shown.step,
            public_pgr_step=shown.pgr_step if math.isfinite(shown.pgr_step) else None, improved=improved,
            note=f"coarse public scores of this submission ({len(runs)} seed{'s' * (len(runs) > 1)}): accuracy on a "
                 f"grid of {shown.step:g}, PGR from it; final rankings use the private part and the held-out split",
            remaining_run=remaining_run, remaining_hour=remaining_hour, hash=digest, snapshot_id=body.snapshot_id,
            created=now)

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
                raise NotFound(f"no submission {submission_id}")
            if who.role == "agent" and rows[0].agent_id != who.agent_id:
                raise Forbidden(f"submission {submission_id} belongs to another agent")
        return [m.SubmissionSummary(id=r.id, task=r.task_name, created=r.created, hash=r.pred_hash,
                                    snapshot_id=r.snapshot_id, method=r.method, n_seeds=r.n_seeds or 1,
                                    public_accuracy=r.shown_acc, public_pgr=r.shown_pgr,
                                    public_pgr_se=r.shown_pgr_se or 0.0, public_pgr_test_se=_shown_se(r.shown_test_se),
                                    improved=bool(r.improved)) for r in rows]

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
                                   predictions=r.predictions, seed_predictions=r.seed_predictions,
                                   n_seeds=r.n_seeds or 1, public_accuracy=r.public_acc, public_pgr=r.public_pgr,
                                   public_pgr_se=r.public_pgr_se, public_pgr_test_se=r.public_test_se,
                                   private_accuracy=r.private_acc, private_pgr=r.private_pgr,
                                   private_pgr_se=r.private_pgr_se, private_pgr_test_se=r.private_test_se)
                for r in rows]

    def score_heldout(self, body: m.HeldoutScoreRequest) -> Score:
        task = self.task(body.task)
        if body.split == "public":
            preds = check_predictions(body.predictions, task.n_test, task.n_labels, self.settings.max_predictions)
            return task.public.score(preds)
        heldout = task.heldout()
        preds = check_predictions(body.predictions, len(heldout.labels), task.n_labels, self.settings.max_predictions)
        return heldout.score(preds)
