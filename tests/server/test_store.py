"""The store: numbered migrations on open, SQLite in WAL mode, Postgres by URL."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select, text

from aarlab.errors import UserError
from aarlab.store import MIGRATIONS, SCHEMA_VERSION, open_store
from aarlab.store import tables as t
from aarlab.store._migrations import migrate


def test_sqlite_store_is_a_wal_file_with_all_migrations(tmp_path):
    store = open_store(run_dir=tmp_path)
    assert store.applied_migrations == [f"{i:03d}_{name}" for i, (name, _) in enumerate(MIGRATIONS, start=1)]
    assert store.schema_version() == SCHEMA_VERSION
    store.close()
    db = sqlite3.connect(tmp_path / "lab.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {r[0] for r in db.execute("SELECT name FROM schema_version")} == {name for name, _ in MIGRATIONS}
    db.close()
    again = open_store(run_dir=tmp_path)
    assert again.applied_migrations == [] and again.schema_version() == SCHEMA_VERSION
    again.close()


def test_an_older_database_is_migrated_forward(tmp_path):
    store = open_store(run_dir=tmp_path)
    with store.write() as conn:  # make it look like a database from before migration 003
        for column in ("shown_acc", "shown_pgr", "improved"):
            conn.execute(text(f"ALTER TABLE submissions DROP COLUMN {column}"))
        for column in ("token_expires", "revoked"):
            conn.execute(text(f"ALTER TABLE agents DROP COLUMN {column}"))
        for column in ("n_seeds", "seed_predictions", "public_pgr_se", "shown_test_se"):
            conn.execute(text(f"ALTER TABLE submissions DROP COLUMN {column}"))
        conn.execute(text("ALTER TABLE posts DROP COLUMN submission_id"))
        conn.execute(t.schema_version.delete().where(t.schema_version.c.version >= 3))
    store.close()
    store = open_store(run_dir=tmp_path)
    assert store.applied_migrations == ["003_submission_replies", "004_token_lifetimes", "005_multi_seed_submissions"]
    with store.read() as conn:
        conn.execute(select(t.submissions.c.shown_acc, t.submissions.c.improved, t.submissions.c.n_seeds,
                            t.submissions.c.seed_predictions, t.submissions.c.shown_test_se)).all()
        conn.execute(select(t.posts.c.submission_id)).all()
        conn.execute(select(t.agents.c.token_expires, t.agents.c.revoked)).all()
    with store.write() as conn:
        assert migrate(conn, store.dialect) == []
    store.close()


def test_bad_database_urls_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unsupported database"):
        open_store("mysql://x@localhost/db")
    with pytest.raises(UserError, match="cannot open the lab database"):
        open_store("postgresql://nobody@127.0.0.1:1/none")


@pytest.mark.postgres
def test_postgres_store_migrates_and_searches(pg_url):
    store = open_store(pg_url)
    assert store.dialect == "postgresql" and store.schema_version() == SCHEMA_VERSION
    with store.write() as conn:
        post_id = conn.execute(t.posts.insert().values(
            kind="insight", title="Confident labels", body="thresholding weak labels", tags=["w2s"],
            tags_text="w2s", author="admin", created=0.0)).inserted_primary_key[0]
    with store.read() as conn:
        assert store.search_post_ids(conn, "threshold", 10) == [post_id]
        assert store.search_post_ids(conn, "w2s", 10) == [post_id]
        assert store.search_post_ids(conn, "unrelated", 10) == []
    store.close()
    again = open_store(pg_url)
    assert again.applied_migrations == []
    again.close()
