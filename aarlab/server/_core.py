"""The lab core's base: one store, the settings, the registered tasks, and the event log.

Every write runs in one store transaction with its event row, so a reader never sees a post without its
event or a submission without its budget effect. Inputs are fully checked before the transaction opens:
a refused request stores nothing. Each concern adds its operations in its own module (``_agents``,
``_eval``, ``_forum``, ``_code_store``, ``_flags``, ``_leaderboard``); ``_service.Lab`` joins them.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any

from sqlalchemy import Connection, func, select

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Authenticator
from aarlab.server._errors import Conflict, NotFound
from aarlab.server._settings import ServerSettings
from aarlab.server._tasks import LoadedTask, load_task
from aarlab.store import Store
from aarlab.store import tables as t

ENTRY_POINT = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
SNAPSHOT_ID = re.compile(r"^[0-9a-f]{64}$")
TAG = re.compile(r"^[\w.:+-]{1,50}$")

def emit(conn: Connection, kind: str, data: dict[str, Any], now: float) -> None:
    conn.execute(t.events.insert().values(kind=kind, data=data, created=now))


class LabCore:
    """The lab's state: one store, the settings, and caches of tokens and tasks."""

    def __init__(self, store: Store, settings: ServerSettings):
        self.store = store
        self.settings = settings
        self.auth = Authenticator(store, settings.admin_token, settings.viewer_token)
        # Stable for a run (derived from its admin token), so resubmitting a vector, even after a restart,
        # returns the same coarse score and averaging repeated submissions learns nothing.
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
            raise NotFound(f"unknown task {name!r} (registered tasks: {known})")
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
                    raise Conflict(f"task {name!r} is already registered from {row.task_dir}")
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

    def _check_snapshot(self, conn: Connection, snapshot_id: str | None) -> None:
        if snapshot_id is None:
            return
        if not SNAPSHOT_ID.match(snapshot_id) or conn.execute(
                select(t.snapshots.c.id).where(t.snapshots.c.id == snapshot_id)).first() is None:
            raise UserError(f"unknown snapshot {snapshot_id!r} (publish it first)")

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
