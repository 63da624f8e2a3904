"""The forum and the code store as the dashboard's pages show them: posts with their replies and facets,
snapshots with their file trees, file views and diffs. Read-only queries on the lab's store."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from sqlalchemy import func, select

from aarlab.store import tables as t


def posts(store, *, kind: str | None = None, tag: str | None = None, author: str | None = None,
          query: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Top-level posts, newest first, filtered by kind, tag, author or a full-text query; and the total."""
    p = t.posts
    cols = [p.c.id, p.c.kind, p.c.title, p.c.tags, p.c.author, p.c.snapshot_id, p.c.metrics, p.c.created,
            func.substr(p.c.body, 1, 400).label("excerpt")]
    where = [p.c.parent_id.is_(None)]
    if kind:
        where.append(p.c.kind == kind)
    if author:
        where.append(p.c.author == author)
    if tag:
        where.append(p.c.id.in_(select(t.post_tags.c.post_id).where(t.post_tags.c.tag == tag)))
    with store.read() as conn:
        if query:
            ids = store.search_post_ids(conn, query, 500)
            if not ids:
                return [], 0
            where.append(p.c.id.in_(ids))
        total = conn.execute(select(func.count()).select_from(p).where(*where)).scalar_one()
        rows = conn.execute(select(*cols).where(*where).order_by(p.c.created.desc(), p.c.id.desc())
                            .limit(limit).offset(offset)).mappings().all()
        ids = [r["id"] for r in rows]
        replies = dict(conn.execute(select(p.c.parent_id, func.count()).where(p.c.parent_id.in_(ids))
                                    .group_by(p.c.parent_id)).all()) if ids else {}
    return [{**dict(r), "n_replies": replies.get(r["id"], 0)} for r in rows], int(total)


def forum_facets(store) -> dict[str, list[tuple[str, int]]]:
    """Counts of top-level posts per kind and per tag (the 30 most used tags)."""
    p = t.posts
    with store.read() as conn:
        kinds = conn.execute(select(p.c.kind, func.count()).where(p.c.parent_id.is_(None)).group_by(p.c.kind)
                             .order_by(p.c.kind)).all()
        tags = conn.execute(select(t.post_tags.c.tag, func.count().label("n")).group_by(t.post_tags.c.tag)
                            .order_by(func.count().desc(), t.post_tags.c.tag).limit(30)).all()
    return {"kinds": [(k, int(n)) for k, n in kinds], "tags": [(k, int(n)) for k, n in tags]}


def post(store, post_id: int) -> dict[str, Any] | None:
    """A post with its replies, vote score, latest verification and flags."""
    p = t.posts
    with store.read() as conn:
        row = conn.execute(select(p).where(p.c.id == post_id)).mappings().first()
        if row is None:
            return None
        replies = conn.execute(select(p).where(p.c.parent_id == post_id).order_by(p.c.id)).mappings().all()
        score = conn.execute(select(func.coalesce(func.sum(t.votes.c.value), 0))
                             .where(t.votes.c.post_id == post_id)).scalar_one()
        verification = conn.execute(select(t.verifications).where(t.verifications.c.post_id == post_id)
                                    .order_by(t.verifications.c.id.desc())).mappings().first()
        flags = conn.execute(select(t.flags).where(t.flags.c.post_id == post_id).order_by(t.flags.c.id)).mappings().all()
    return {**dict(row), "replies": [dict(r) for r in replies], "score": int(score),
            "verification": dict(verification) if verification else None, "flags": [dict(f) for f in flags]}


# --- snapshots -------------------------------------------------------------------------------------------


def snapshots(store, author: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    s = t.snapshots
    query = select(s.c.id, s.c.author, s.c.parent_id, s.c.message, s.c.size, s.c.n_files, s.c.created)
    if author:
        query = query.where(s.c.author == author)
    with store.read() as conn:
        rows = conn.execute(query.order_by(s.c.created.desc()).limit(limit).offset(offset)).mappings().all()
    return [dict(r) for r in rows]


def snapshot(store, snapshot_id: str) -> dict[str, Any] | None:
    """A snapshot's row (with its manifest), or None; accepts a unique id prefix of 8+ characters."""
    s = t.snapshots
    with store.read() as conn:
        row = conn.execute(select(s).where(s.c.id == snapshot_id)).mappings().first()
        if row is None and len(snapshot_id) >= 8:
            found = conn.execute(select(s).where(s.c.id.like(snapshot_id.replace("%", "") + "%")).limit(2)).mappings().all()
            row = found[0] if len(found) == 1 else None
    return dict(row) if row else None


def manifest_files(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The file entries of a snapshot manifest (``[{path, size, sha256}]``), sorted by path."""
    manifest = row.get("manifest")
    files = manifest.get("files") if isinstance(manifest, dict) else manifest
    out = [f for f in files or [] if isinstance(f, dict) and "path" in f]
    return sorted(out, key=lambda f: f["path"])


def tree_rows(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A manifest as an indented tree: a row per folder (first time it appears) and per file, in path order."""
    rows: list[dict[str, Any]] = []
    shown: set[str] = set()
    for f in sorted(files, key=lambda f: f["path"]):
        parts = f["path"].split("/")
        for depth in range(len(parts) - 1):
            folder = "/".join(parts[: depth + 1])
            if folder not in shown:
                shown.add(folder)
                rows.append({"name": parts[depth] + "/", "path": folder, "depth": depth, "is_dir": True, "size": None})
        rows.append({"name": parts[-1], "path": f["path"], "depth": len(parts) - 1, "is_dir": False,
                     "size": f.get("size")})
    return rows


MAX_FILE_VIEW = 512 * 1024


def snapshot_files(store, snapshot_id: str) -> dict[str, bytes] | None:
    """All regular files of a snapshot's tar (``{path: bytes}``), or None when the blob is missing."""
    blob = store.get_blob(snapshot_id)
    if blob is None:
        return None
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        for member in tar.getmembers():
            if member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    out[member.name.removeprefix("./")] = fh.read()
    return out


def is_text(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return False
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > 8180  # a multi-byte character cut at the sample's edge
    return True


def diff_files(a: dict[str, bytes], b: dict[str, bytes], context: int = 3) -> dict[str, Any]:
    """Added, removed and changed paths between two snapshots' files, and a unified diff per text file."""
    import difflib

    added = sorted(set(b) - set(a))
    removed = sorted(set(a) - set(b))
    changed = sorted(p for p in set(a) & set(b) if a[p] != b[p])
    diffs = []
    for path in changed + added + removed:
        old, new = a.get(path, b""), b.get(path, b"")
        if not (is_text(old) and is_text(new)):
            diffs.append({"path": path, "binary": True, "lines": []})
            continue
        lines = list(difflib.unified_diff(old.decode("utf-8", "replace").splitlines(),
                                          new.decode("utf-8", "replace").splitlines(),
                                          fromfile=f"a/{path}", tofile=f"b/{path}", lineterm="", n=context))
        diffs.append({"path": path, "binary": False, "lines": lines[:5000]})
    return {"added": added, "removed": removed, "changed": changed, "diffs": diffs}


# --- flags -----------------------------------------------------------------------------------------------
