"""The code store: content-addressed, immutable snapshots (canonical tars), their files and diffs."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Principal
from aarlab.server._core import SNAPSHOT_ID, LabCore
from aarlab.server._errors import Corrupt, NotFound
from aarlab.server._snapshots import canonicalize, diff, read_file
from aarlab.store import tables as t


class SnapshotOps(LabCore):
    """Snapshots."""

    # -- snapshots -----------------------------------------------------------------------------------------
    def _snapshot_info(self, row: Any, with_files: bool = True) -> m.SnapshotInfo:
        return m.SnapshotInfo(id=row.id, author=row.author, agent_id=row.agent_id, parent=row.parent_id,
                              message=row.message, size=row.size, n_files=row.n_files, created=row.created,
                              files=[m.FileEntry(**f) for f in row.manifest] if with_files else [])

    def publish_snapshot(self, who: Principal, raw: bytes, message: str, parent: str | None) -> m.SnapshotInfo:
        bad = m.control_character(message, multiline=True)
        if bad:
            raise UserError(f"snapshot message: control character {bad} is not allowed")
        snap = canonicalize(raw, int(self.settings.max_snapshot_mb * 1e6), self.settings.max_snapshot_files)
        for entry in snap.manifest:
            # File names are shown to other agents and in terminals: no newlines, no escape sequences.
            bad = m.control_character(entry["path"])
            if bad:
                raise UserError(f"snapshot rejected: file name {entry['path'][:200]!r} has control character {bad}")
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
            raise NotFound(f"no snapshot {snapshot_id!r} (ids are 64 hex digits)")
        with self.store.read() as conn:
            row = conn.execute(select(t.snapshots).where(t.snapshots.c.id == snapshot_id)).first()
        if row is None:
            raise NotFound(f"no snapshot {snapshot_id}")
        return row

    def snapshot_info(self, snapshot_id: str) -> m.SnapshotInfo:
        return self._snapshot_info(self.snapshot_row(snapshot_id))

    def snapshot_tar(self, snapshot_id: str) -> bytes:
        self.snapshot_row(snapshot_id)
        data = self.store.get_blob(snapshot_id)
        if data is None:
            raise Corrupt(f"snapshot {snapshot_id} is registered but its tar is missing or corrupt")
        return data

    def snapshot_file(self, snapshot_id: str, path: str) -> bytes:
        data = read_file(self.snapshot_tar(snapshot_id), path)
        if data is None:
            raise NotFound(f"snapshot {snapshot_id[:12]} has no file {path!r}")
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
