"""What the dashboard and the report show, read straight from the lab database and the run directory.

Every function here is read-only and cheap on a large run: list queries are paginated in SQL, the
transcripts go through the incremental ``TranscriptIndex``, and nothing parses a whole transcript on a
page view. The same functions feed the live pages and ``aarlab report``, so both show the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select

from aarlab.dashboard import _runfiles as rf
from aarlab.dashboard._transcripts import TranscriptSummary, summarize, transcript_files
from aarlab.rundir import read_job_table
from aarlab.server import NotFound
from aarlab.server import resolve_flag as resolve
from aarlab.store import tables as t

# --- tasks and baselines ---------------------------------------------------------------------------------


def tasks(store) -> list[dict[str, Any]]:
    """Registered tasks: ``{id, name, info, n_test, created}`` (``info`` is the public ``task.json``)."""
    with store.read() as conn:
        rows = conn.execute(select(t.tasks.c.id, t.tasks.c.name, t.tasks.c.info, t.tasks.c.n_test,
                                   t.tasks.c.created).order_by(t.tasks.c.id)).mappings().all()
    return [dict(r) for r in rows]


def baselines(task: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The fixed weak and ceiling rows of a task (accuracy mean ± SE; PGR 0 and 1 by definition)."""
    if not task:
        return []
    info = task.get("info") or {}
    fixed = info.get("fixed") or {}
    rows = []
    for name, key, model, pgr in (("weak", "weak_acc", info.get("weak_model"), 0.0),
                                  ("ceiling", "ceiling_acc", info.get("strong_model"), 1.0)):
        stat = fixed.get(key) or {}
        if "mean" in stat:
            rows.append({"name": name, "model": model or "?", "accuracy": float(stat["mean"]),
                         "accuracy_se": float(stat.get("se") or 0.0), "n_seeds": int(stat.get("n") or 1),
                         "pgr": pgr})
    return rows


# --- agents ----------------------------------------------------------------------------------------------


@dataclass
class AgentView:
    """One researcher as the overview shows it."""

    name: str
    id: int | None
    direction: str
    state: str
    summary: TranscriptSummary | None
    submissions: int = 0
    posts: int = 0
    model: str | None = None
    direction_title: str = ""  # the direction's short title, when the team runner gave it one
    reason: str = ""  # why the agent stopped, failed or was restarted last (from state.json)

    @property
    def cost_usd(self) -> float:
        return self.summary.cost_usd if self.summary else 0.0

    @property
    def tokens(self) -> int:
        return self.summary.tokens if self.summary else 0


def _agent_state(entry: dict[str, Any], summary: TranscriptSummary | None) -> str:
    state = rf.first(entry, "status", "state")
    if isinstance(state, str) and state:
        return state
    if summary and summary.stop_reason:
        return f"stopped ({summary.stop_reason})"
    if summary and summary.turns:
        return "running" if summary.last_time and time.time() - summary.last_time < 600 else "idle"
    return "not started"


def agents(store, run_dir: Path | None, only: str | None = None) -> list[AgentView]:
    """Agents from the database, joined with ``state.json`` and their transcripts (the union of all three);
    with ``only``, just that agent (an empty list when it is in none of them)."""
    a, s, p = t.agents.c, t.submissions.c, t.posts.c
    with store.read() as conn:
        query = select(a.id, a.name, a.direction).order_by(a.name)
        subs_q = select(s.agent_id, func.count()).group_by(s.agent_id)
        posts_q = select(p.agent_id, func.count()).where(p.parent_id.is_(None)).group_by(p.agent_id)
        if only is not None:
            query = query.where(a.name == only)
            ids = select(a.id).where(a.name == only).scalar_subquery()
            subs_q, posts_q = subs_q.where(s.agent_id == ids), posts_q.where(p.agent_id == ids)
        rows = conn.execute(query).all()
        subs = dict(conn.execute(subs_q).all())
        posts = dict(conn.execute(posts_q).all())
    state_agents = rf.state_agents(rf.read_state(run_dir))
    files = transcript_files(run_dir)
    names = {r.name: r for r in rows}
    everyone = set(names) | set(state_agents) | set(files)
    views: list[AgentView] = []
    for name in sorted(everyone if only is None else everyone & {only}):
        row = names.get(name)
        entry = state_agents.get(name, {})
        summary = summarize(files[name]) if name in files else None
        # state.json (aarlab.team) keeps the direction's name, title and full text; the server keeps what
        # the agent was registered with.
        direction = str(rf.first(entry, "direction_text", default="") or (row.direction if row else "")
                        or rf.first(entry, "direction", default="") or "")
        title = str(rf.first(entry, "direction_title", default="") or "")
        if not title and entry.get("direction") and str(entry["direction"]) != direction:
            title = str(entry["direction"])
        views.append(AgentView(
            name=name, id=row.id if row else None, direction=direction, state=_agent_state(entry, summary),
            summary=summary, submissions=subs.get(row.id, 0) if row else 0, posts=posts.get(row.id, 0) if row else 0,
            model=rf.first(entry, "model", "model_spec"), direction_title=title,
            reason=str(entry.get("reason") or ""),
        ))
    return views


def agent_by_name(store, name: str) -> dict[str, Any] | None:
    with store.read() as conn:
        row = conn.execute(select(t.agents).where(t.agents.c.name == name)).mappings().first()
    return dict(row) if row else None


# --- budgets ---------------------------------------------------------------------------------------------


@dataclass
class BudgetLine:
    """One budget: what was spent, the limit (None = unlimited) and what is left."""

    name: str
    spent: float
    limit: float | None
    unit: str

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.spent)

    @property
    def fraction(self) -> float | None:
        if not self.limit:
            return None
        return min(1.0, self.spent / self.limit)


def budgets(store, run_dir: Path | None, agent_views: list[AgentView]) -> list[BudgetLine]:
    """Spent and remaining $, tokens, hours and submissions for the whole team."""
    config = rf.read_config(run_dir)
    total = rf.dig(config, "budget", "total", default={}) or {}
    n_agents = max(1, len(agent_views))
    usd = sum(a.cost_usd for a in agent_views)
    tokens = sum(a.tokens for a in agent_views)
    starts = [a.summary.first_time for a in agent_views if a.summary and a.summary.first_time]
    ends = [a.summary.last_time for a in agent_views if a.summary and a.summary.last_time]
    state = rf.read_state(run_dir)
    elapsed = state.get("elapsed_s")
    if isinstance(elapsed, int | float) and elapsed > 0:
        # The team runner's own count of wall-clock spent (across resumed sessions).
        hours = float(elapsed) / 3600
    else:
        started = rf.first(state, "started", "started_at", "created_at")
        if not isinstance(started, int | float):
            started = min(starts) if starts else None
        finished = rf.first(state, "finished", "finished_at", "stopped_at")
        if isinstance(finished, int | float):
            end = float(finished)
        elif _run_status(state, agent_views, rf.session_alive(run_dir)) == "running":
            end = time.time()
        else:
            end = max(ends) if ends else time.time()
        hours = (end - started) / 3600 if started else 0.0
    with store.read() as conn:
        n_subs = conn.execute(select(func.count()).select_from(t.submissions)).scalar_one()
    per_agent_subs = rf.dig(config, "budget", "submissions_per_run")
    return [
        BudgetLine("dollars", usd, _num(total.get("usd")), "$"),
        BudgetLine("tokens", float(tokens), _num(total.get("tokens")), "tokens"),
        BudgetLine("hours", max(0.0, hours), _num(total.get("hours")), "h"),
        BudgetLine("submissions", float(n_subs),
                   float(per_agent_subs) * n_agents if isinstance(per_agent_subs, int | float) else None,
                   "submissions"),
    ]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


PROCESS_GONE = "stopped (process gone)"


def _run_status(state: dict[str, Any], agent_views: list[AgentView], alive: bool | None = None) -> str:
    """The run's status from ``state.json``; a run it calls ``running`` whose session no longer holds the
    run's lock (``alive`` False: killed or crashed) is ``stopped (process gone)``."""
    status = rf.first(state, "status", "state")
    if isinstance(status, str) and status:
        return PROCESS_GONE if status == "running" and alive is False else status
    if any(a.summary and a.summary.stop_reason is None and a.summary.turns for a in agent_views):
        return "running"
    if agent_views and all(a.summary and a.summary.stop_reason for a in agent_views):
        return "finished"
    return "unknown"


@dataclass
class Overview:
    run_name: str
    status: str
    reason: str
    task: dict[str, Any] | None  # the run's own task (state.json names it), else the first registered
    agents: list[AgentView]
    budgets: list[BudgetLine]
    counts: dict[str, int]
    config: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)  # every registered task, the run's first
    sandbox_backend: str | None = None
    lock_holder: str = ""  # what the (last) session wrote into RUN_DIR/.lock, e.g. "pid 123"

    @property
    def unisolated(self) -> bool:
        """The agents' sandboxes do not isolate them (the ``process`` backend)."""
        return rf.is_unisolated(self.sandbox_backend)

    @property
    def process_gone(self) -> bool:
        return self.status == PROCESS_GONE

    @property
    def status_class(self) -> str:
        return "process-gone" if self.process_gone else "".join(c if c.isalnum() else "-" for c in self.status)


def pick_task(all_tasks: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The task ``?task=`` names (its id or its name), else the run's own (the first)."""
    for task in all_tasks:
        if wanted and wanted in (str(task["id"]), str(task["name"])):
            return task
    return all_tasks[0] if all_tasks else None


def ordered_tasks(all_tasks: list[dict[str, Any]], state: dict[str, Any]) -> list[dict[str, Any]]:
    """Registered tasks with the run's own task (``state.json``'s ``task`` name) first, then by id."""
    own = rf.first(state, "task", default=None)
    return sorted(all_tasks, key=lambda task: (task.get("name") != own, task.get("id") or 0))


@dataclass
class RunHealth:
    """What every page about a run must say loudly: its sandboxes do not isolate, or its process is gone."""

    sandbox_backend: str | None
    process_gone: bool
    lock_holder: str = ""

    @property
    def unisolated(self) -> bool:
        return rf.is_unisolated(self.sandbox_backend)


def run_health(run_dir: Path | None) -> RunHealth:
    """The run's sandbox backend and whether ``state.json`` says running while no session holds the lock."""
    state = rf.read_state(run_dir)
    gone = rf.first(state, "status", "state") == "running" and rf.session_alive(run_dir) is False
    return RunHealth(sandbox_backend=rf.sandbox_backend(rf.read_config(run_dir), state), process_gone=gone,
                     lock_holder=rf.lock_holder(run_dir) if gone else "")


def overview(store, run_dir: Path | None) -> Overview:
    """Everything the overview page and the report's header need."""
    views = agents(store, run_dir)
    with store.read() as conn:
        counts = {
            "posts": conn.execute(select(func.count()).select_from(t.posts)
                                  .where(t.posts.c.parent_id.is_(None))).scalar_one(),
            "results": conn.execute(select(func.count()).select_from(t.posts).where(
                and_(t.posts.c.kind == "result", t.posts.c.parent_id.is_(None)))).scalar_one(),
            "snapshots": conn.execute(select(func.count()).select_from(t.snapshots)).scalar_one(),
            "submissions": conn.execute(select(func.count()).select_from(t.submissions)).scalar_one(),
            "open_flags": conn.execute(select(func.count()).select_from(t.flags)
                                       .where(t.flags.c.status == "open")).scalar_one(),
            "verified": conn.execute(select(func.count()).select_from(t.verifications)
                                     .where(t.verifications.c.status == "done")).scalar_one(),
        }
    state = rf.read_state(run_dir)
    config = rf.read_config(run_dir)
    all_tasks = ordered_tasks(tasks(store), state)
    name = str(rf.first(config, "name", default=None) or rf.first(state, "run_id", "name", default=None)
               or (Path(run_dir).name if run_dir else "lab"))
    status = _run_status(state, views, rf.session_alive(run_dir))
    if status == PROCESS_GONE:
        # Its agents are not running either, whatever state.json last said of them.
        for view in views:
            if view.state in ("running", "restarting"):
                view.state = PROCESS_GONE
    return Overview(run_name=name, status=status, reason=str(state.get("reason") or ""),
                    task=all_tasks[0] if all_tasks else None, tasks=all_tasks,
                    agents=views, budgets=budgets(store, run_dir, views), counts=counts, config=config,
                    sandbox_backend=rf.sandbox_backend(config, state),
                    lock_holder=rf.lock_holder(run_dir) if status == PROCESS_GONE else "")


# --- leaderboard -----------------------------------------------------------------------------------------

def data_signature(store) -> tuple:
    """Changes whenever the data the plots and the leaderboard draw changes (newest ids and times), so that
    what was computed from it can be reused until then."""
    with store.read() as conn:
        return tuple(conn.execute(select(
            select(func.max(t.posts.c.id)).scalar_subquery(),
            select(func.max(t.submissions.c.id)).scalar_subquery(),
            select(func.max(t.verifications.c.id)).scalar_subquery(),
            select(func.max(t.verifications.c.finished)).scalar_subquery(),
            select(func.max(t.verifications.c.started)).scalar_subquery(),
            select(func.max(t.votes.c.created)).scalar_subquery(),
            select(func.max(t.snapshots.c.created)).scalar_subquery(),
            select(func.max(t.agents.c.id)).scalar_subquery(),
            select(func.max(t.tasks.c.id)).scalar_subquery(),
            select(func.max(t.flags.c.resolved)).scalar_subquery(),
            select(func.max(t.flags.c.id)).scalar_subquery(),
        )).one())


# --- forum -----------------------------------------------------------------------------------------------


def flags(store, status: str | None = None, limit: int = 200, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Flags newest first (open ones first when no status is given), with the agent's name; and the total."""
    f = t.flags
    query = select(f, t.agents.c.name.label("agent")).join(t.agents, t.agents.c.id == f.c.agent_id, isouter=True)
    count = select(func.count()).select_from(f)
    if status:
        query = query.where(f.c.status == status)
        count = count.where(f.c.status == status)
    order = [(f.c.status != "open"), f.c.id.desc()]
    with store.read() as conn:
        rows = conn.execute(query.order_by(*order).limit(limit).offset(offset)).mappings().all()
        total = conn.execute(count).scalar_one()
    return [dict(r) for r in rows], int(total)


def flag(store, flag_id: int) -> dict[str, Any] | None:
    f = t.flags
    with store.read() as conn:
        row = conn.execute(select(f, t.agents.c.name.label("agent"))
                           .join(t.agents, t.agents.c.id == f.c.agent_id, isouter=True)
                           .where(f.c.id == flag_id)).mappings().first()
    return dict(row) if row else None


def agent_posts(store, agent_id: int, limit: int = 50) -> list[dict[str, Any]]:
    p = t.posts
    with store.read() as conn:
        rows = conn.execute(select(p.c.id, p.c.kind, p.c.title, p.c.created, p.c.metrics, p.c.snapshot_id)
                            .where(and_(p.c.agent_id == agent_id, p.c.parent_id.is_(None)))
                            .order_by(p.c.id.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def agent_submissions(store, agent_id: int, limit: int = 50) -> list[dict[str, Any]]:
    s = t.submissions
    with store.read() as conn:
        rows = conn.execute(select(s.c.id, s.c.created, s.c.snapshot_id, s.c.method, s.c.public_pgr, s.c.private_pgr,
                                   s.c.public_acc, s.c.private_acc)
                            .where(s.c.agent_id == agent_id).order_by(s.c.id.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def agent_jobs(run_dir: Path | None, name: str, alive: bool) -> list[dict[str, Any]]:
    """An agent's background jobs for its page: name, state, runtime, slot, GPUs, command, exit code.

    The table is the one the team's job manager keeps (``RUN_DIR/jobs/<agent>.json``). When no session holds
    the run, a job the table still calls running died with its harness: it is shown as lost.
    """
    if run_dir is None:
        return []
    now = time.time()
    rows = []
    for job in read_job_table(run_dir, name):
        state = str(job.get("state") or "")
        started = float(job.get("started_at") or 0.0)
        ended = job.get("ended_at")
        if state == "running" and not alive:
            state, ended = "lost", job.get("seen_at") or started
        runtime = (float(ended) if ended is not None else now) - started if started else None
        rows.append({"name": job.get("name"), "state": state, "runtime_s": runtime, "slot": job.get("slot"),
                     "gpus": job.get("gpus") or [], "command": str(job.get("command") or ""),
                     "exit_code": job.get("exit_code"), "detail": job.get("detail") or ""})
    return rows


def agent_flags(store, agent_id: int) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(select(t.flags).where(t.flags.c.agent_id == agent_id)
                            .order_by(t.flags.c.id.desc()).limit(100)).mappings().all()
    return [dict(r) for r in rows]


def latest_event_id(store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.coalesce(func.max(t.events.c.id), 0))).scalar_one())


def events_after(store, after: int, limit: int = 100) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(select(t.events.c.id, t.events.c.kind, t.events.c.data, t.events.c.created)
                            .where(t.events.c.id > after).order_by(t.events.c.id).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def resolve_flag(store, flag_id: int, action: str, note: str | None, resolver: str) -> dict[str, Any] | None:
    """Clear or confirm a flag through the lab core (``aarlab.server._flags.resolve_flag``, the one way to
    resolve one); None if there is no such flag."""
    try:
        resolve(store, flag_id, action, note, resolver)
    except NotFound:
        return None
    return flag(store, flag_id)
