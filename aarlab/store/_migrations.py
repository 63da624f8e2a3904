"""Numbered schema migrations, applied in order on start and recorded in ``schema_version``.

Append a migration to change the schema; never edit one that has shipped (databases in old run
directories have already applied it). Each migration gets a connection inside the migration transaction
and the dialect name (``sqlite`` or ``postgresql``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from aarlab.store import _schema as s

Migration = Callable[[Connection, str], None]

# Tables of the first schema, in dependency order.
_V1_TABLES = [
    s.agents, s.tasks, s.submissions, s.posts, s.post_tags, s.votes, s.snapshots, s.snapshot_blobs,
    s.verifications, s.flags, s.events,
]


def _m001_initial(conn: Connection, dialect: str) -> None:
    s.metadata.create_all(conn, tables=_V1_TABLES)


def _m002_full_text_search(conn: Connection, dialect: str) -> None:
    if dialect == "sqlite":
        # A separate FTS5 table keyed by the post id; posts are immutable, so it is written once per post.
        conn.execute(text(
            "CREATE VIRTUAL TABLE posts_fts USING fts5(title, body, tags, tokenize='porter unicode61')"
        ))
    else:
        conn.execute(text(
            "ALTER TABLE posts ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            "(to_tsvector('english', coalesce(title, '') || ' ' || coalesce(body, '') || ' ' || "
            "coalesce(tags_text, ''))) STORED"
        ))
        conn.execute(text("CREATE INDEX ix_posts_search ON posts USING GIN (search_vector)"))


def _add_missing_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    # 001 creates tables in their current shape, so a new database already has what later migrations add;
    # an older database gets the columns here.
    have = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, sql_type in columns.items():
        if name not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


def _m003_submission_replies(conn: Connection, dialect: str) -> None:
    # What the agent was told (the public-score ladder's coarse values), so replies can be shown again.
    _add_missing_columns(conn, "submissions", {"shown_acc": "FLOAT", "shown_pgr": "FLOAT", "improved": "BOOLEAN"})


def _m004_token_lifetimes(conn: Connection, dialect: str) -> None:
    # Agent tokens can expire and be revoked by the admin.
    _add_missing_columns(conn, "agents", {"token_expires": "FLOAT", "revoked": "FLOAT"})


def _m005_multi_seed_submissions(conn: Connection, dialect: str) -> None:
    # A submission carries several seeds and its scores their spread; a result post names its submission.
    _add_missing_columns(conn, "submissions", {
        "n_seeds": "INTEGER", "seed_predictions": "JSON", "public_pgr_se": "FLOAT", "public_test_se": "FLOAT",
        "private_pgr_se": "FLOAT", "private_test_se": "FLOAT", "shown_acc_se": "FLOAT", "shown_pgr_se": "FLOAT",
        "shown_test_se": "FLOAT"})
    _add_missing_columns(conn, "posts", {"submission_id": "INTEGER"})


MIGRATIONS: list[tuple[str, Migration]] = [
    ("initial", _m001_initial),
    ("full_text_search", _m002_full_text_search),
    ("submission_replies", _m003_submission_replies),
    ("token_lifetimes", _m004_token_lifetimes),
    ("multi_seed_submissions", _m005_multi_seed_submissions),
]

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(select(s.schema_version.c.version).order_by(s.schema_version.c.version.desc())).scalar() or 0


def migrate(conn: Connection, dialect: str) -> list[str]:
    """Apply the migrations this database lacks (the caller holds a write transaction); return their names."""
    if dialect == "postgresql":
        # Two servers starting on one database at once: the second waits here, then finds nothing to do.
        conn.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
    s.metadata.create_all(conn, tables=[s.schema_version])
    have = current_version(conn)
    applied = []
    for number, (name, apply) in enumerate(MIGRATIONS, start=1):
        if number <= have:
            continue
        apply(conn, dialect)
        conn.execute(s.schema_version.insert().values(version=number, applied=time.time(), name=name))
        applied.append(f"{number:03d}_{name}")
    return applied
