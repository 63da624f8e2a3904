"""The ``Store``: one database (SQLite file in WAL mode, or Postgres by URL) plus where snapshot tars live."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url

from aarlab.errors import UserError
from aarlab.store import _schema as s
from aarlab.store._migrations import SCHEMA_VERSION, current_version, migrate


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the driver our ``postgres`` extra installs)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


class Store:
    """A lab database. Open with :func:`open_store`; migrations run on open.

    ``read()`` gives a connection in a read transaction, ``write()`` one in a write transaction that is
    serialized with other writers (SQLite ``BEGIN IMMEDIATE`` plus an in-process lock, so concurrent
    submissions cannot both pass a budget check; on Postgres the callers lock the rows they check).
    """

    def __init__(self, url: str, blob_dir: Path | str | None = None, echo: bool = False):
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise UserError(f"unsupported database {self.dialect!r}: use a SQLite path or a postgresql:// URL")
        self.blob_dir = Path(blob_dir) if blob_dir is not None else None
        self._write_lock = threading.RLock()
        if self.dialect == "sqlite":
            database = parsed.database
            if not database or database == ":memory:":
                raise UserError("the lab needs a database file (an in-memory SQLite is not shared between threads)")
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30},
                                        pool_size=20, max_overflow=20)
            _sqlite_events(self.engine)
        else:
            from aarlab.errors import require

            require("psycopg", "postgres")
            self.engine = create_engine(self.url, echo=echo, pool_size=20, max_overflow=20, pool_pre_ping=True)
        if self.blob_dir is not None:
            self.blob_dir.mkdir(parents=True, exist_ok=True)
        try:
            with self.write() as conn:
                self.applied_migrations = migrate(conn, self.dialect)
        except UserError:
            raise
        except Exception as exc:  # an unreachable server or a bad URL is the user's to fix, in one line
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                raise UserError(f"cannot open the lab database {parsed.render_as_string(hide_password=True)}: "
                                f"{str(exc.orig).strip().splitlines()[0]}") from None
            raise

    # -- transactions --------------------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        if self.dialect == "sqlite":
            # One writer at a time in this process: SQLite would serialize us anyway, but its busy handler
            # sleeps and retries, which wastes the CPU that the scorer needs.
            with self._write_lock, self.engine.connect() as conn:
                conn.execution_options(aarlab_write=True)
                with conn.begin():
                    yield conn
        else:
            with self.engine.connect() as conn, conn.begin():
                yield conn

    def schema_version(self) -> int:
        with self.read() as conn:
            return current_version(conn)

    def close(self) -> None:
        self.engine.dispose()

    # -- snapshot blobs ------------------------------------------------------------------------------------
    def put_blob(self, conn: Connection, blob_id: str, data: bytes) -> None:
        """Store a content-addressed blob (inside the caller's write transaction when it goes to the DB)."""
        if self.blob_dir is None:
            exists = conn.execute(select(s.snapshot_blobs.c.id).where(s.snapshot_blobs.c.id == blob_id)).first()
            if not exists:
                conn.execute(s.snapshot_blobs.insert().values(id=blob_id, data=data))
            return
        path = self.blob_dir / f"{blob_id}.tar"
        if path.exists():
            return
        # Written and fsync'd before the row that names it commits: a crash leaves at worst an orphan file.
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def get_blob(self, blob_id: str) -> bytes | None:
        if not re.fullmatch(r"[0-9a-f]{64}", blob_id):
            return None
        if self.blob_dir is not None:
            path = self.blob_dir / f"{blob_id}.tar"
            if path.exists():
                data = path.read_bytes()
                # Content-addressed: a file that does not hash to its name was tampered with or torn.
                return data if hashlib.sha256(data).hexdigest() == blob_id else None
        with self.read() as conn:
            row = conn.execute(select(s.snapshot_blobs.c.data).where(s.snapshot_blobs.c.id == blob_id)).first()
        return bytes(row[0]) if row else None

    # -- full-text search ----------------------------------------------------------------------------------
    def index_post(self, conn: Connection, post_id: int, title: str, body: str, tags: list[str]) -> None:
        """Add a post to the search index (SQLite; Postgres keeps a generated tsvector column)."""
        if self.dialect == "sqlite":
            conn.execute(text("INSERT INTO posts_fts(rowid, title, body, tags) VALUES (:id, :title, :body, :tags)"),
                         {"id": post_id, "title": title, "body": body, "tags": " ".join(tags)})

    def search_post_ids(self, conn: Connection, query: str, limit: int) -> list[int]:
        """Ids of posts matching ``query`` (words, all required), best first. Query syntax is never parsed
        from user input: SQLite gets each word quoted, Postgres gets ``websearch_to_tsquery``."""
        if self.dialect == "sqlite":
            words = re.findall(r"\w+", query)
            if not words:
                return []
            match = " ".join('"' + w.replace('"', '""') + '"' for w in words[:32])
            rows = conn.execute(text("SELECT rowid FROM posts_fts WHERE posts_fts MATCH :q ORDER BY rank LIMIT :n"),
                                {"q": match, "n": limit})
        else:
            rows = conn.execute(text(
                "SELECT id FROM posts WHERE search_vector @@ websearch_to_tsquery('english', :q) "
                "ORDER BY ts_rank(search_vector, websearch_to_tsquery('english', :q)) DESC, id DESC LIMIT :n"
            ), {"q": query, "n": limit})
        return [r[0] for r in rows]


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's begin hook below issue BEGIN itself (pysqlite's own would be deferred and late).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a killed process loses nothing that committed; only a power cut may lose the
        # last transactions (never corrupts). FULL would fsync every commit.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("aarlab_write") else "BEGIN")


def open_store(db_url: str | None = None, run_dir: Path | str | None = None) -> Store:
    """Open (creating and migrating) the lab database.

    ``db_url`` wins when given (``postgresql://...`` or ``sqlite:///path``); otherwise ``<run_dir>/lab.db``.
    Snapshot tars go to ``<run_dir>/snapshots/`` for a SQLite store in a run dir, else into the database.
    """
    if db_url is None and run_dir is None:
        raise UserError("give a run directory or a database URL")
    if db_url is None:
        url = sqlite_url(Path(run_dir) / "lab.db")
    elif "://" not in db_url:  # a bare path to a SQLite file
        url = sqlite_url(db_url)
    else:
        url = db_url
    blob_dir = None
    if run_dir is not None and normalize_url(url).startswith("sqlite"):
        blob_dir = Path(run_dir) / "snapshots"
    return Store(url, blob_dir=blob_dir)


__all__ = ["Store", "open_store", "sqlite_url", "normalize_url", "SCHEMA_VERSION"]
