"""aarlab.store: the lab's database (SQLAlchemy 2 Core), with numbered migrations that run on open.

SQLite in WAL mode at ``<run_dir>/lab.db`` by default (a file anyone can open with ``sqlite3``), Postgres by
URL. The tables are importable for read-only queries (the dashboard reads them directly)::

    from aarlab.store import open_store, tables
    store = open_store(run_dir="runs/demo")
    with store.read() as conn:
        conn.execute(select(tables.posts)).all()
"""

from aarlab.store import _schema as tables
from aarlab.store._migrations import MIGRATIONS, SCHEMA_VERSION
from aarlab.store._store import Store, normalize_url, open_store, sqlite_url

__all__ = ["Store", "open_store", "sqlite_url", "normalize_url", "tables", "MIGRATIONS", "SCHEMA_VERSION"]
