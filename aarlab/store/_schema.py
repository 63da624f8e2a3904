"""The lab database's tables, as SQLAlchemy Core (the current shape; ``_migrations`` builds it step by step).

Times are unix seconds (floats), like the transcripts. JSON columns hold small documents (metrics, manifests,
evidence); predictions are stored as a JSON list so a submission can be re-scored or audited later.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied", Float, nullable=False),
    Column("name", String(200), nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("direction", Text, nullable=False, default=""),
    # sha256 of the bearer token: tokens are 256-bit random, so a fast hash is enough and lookups stay O(1).
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", Float, nullable=False),
    Column("token_expires", Float),  # migration 004: the token stops working then (NULL: never)
    Column("revoked", Float),  # migration 004: when the admin revoked the token (NULL: not revoked)
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    # Labels are never copied into the database: the server reads them from here when it needs them.
    Column("task_dir", Text, nullable=False),
    Column("info", JSON, nullable=False),
    Column("n_test", Integer, nullable=False),
    Column("created", Float, nullable=False),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", Integer, ForeignKey("tasks.id"), nullable=False),
    Column("agent_id", Integer, ForeignKey("agents.id"), nullable=False),
    Column("created", Float, nullable=False),
    Column("pred_hash", String(64), nullable=False),
    Column("predictions", JSON, nullable=False),
    Column("snapshot_id", String(64)),
    Column("method", String(200)),
    Column("public_acc", Float, nullable=False),
    Column("public_pgr", Float, nullable=False),
    Column("private_acc", Float, nullable=False),
    Column("private_pgr", Float, nullable=False),
    Column("shown_acc", Float),  # migration 003: the coarse public scores the agent was told
    Column("shown_pgr", Float),
    Column("improved", Boolean),
    # migration 005: multi-seed submissions. ``predictions`` holds the first seed, ``seed_predictions`` all
    # of them (NULL for one seed); scores are means over seeds with their seed SE and test-sampling SE.
    Column("n_seeds", Integer),
    Column("seed_predictions", JSON),
    Column("public_pgr_se", Float),
    Column("public_test_se", Float),
    Column("private_pgr_se", Float),
    Column("private_test_se", Float),
    Column("shown_acc_se", Float),
    Column("shown_pgr_se", Float),
    Column("shown_test_se", Float),
    Index("ix_submissions_agent_task_created", "agent_id", "task_id", "created"),
    Index("ix_submissions_snapshot", "snapshot_id"),
)

posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    # Space-joined tags, for full-text search (Postgres indexes a tsvector generated from title, body, tags).
    Column("tags_text", Text, nullable=False, default=""),
    Column("agent_id", Integer, ForeignKey("agents.id")),  # NULL: written by the admin
    Column("author", String(100), nullable=False),
    Column("task_id", Integer, ForeignKey("tasks.id")),
    Column("snapshot_id", String(64)),
    Column("metrics", JSON),
    Column("entry_point", String(300)),
    Column("parent_id", Integer, ForeignKey("posts.id")),
    Column("submission_id", Integer),  # migration 005: the submission a result reports (its author's own)
    Column("created", Float, nullable=False),
    Index("ix_posts_created", "created"),
    Index("ix_posts_parent", "parent_id"),
)

post_tags = Table(
    "post_tags",
    metadata,
    Column("post_id", Integer, ForeignKey("posts.id"), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Index("ix_post_tags_tag", "tag"),
)

votes = Table(
    "votes",
    metadata,
    Column("post_id", Integer, ForeignKey("posts.id"), primary_key=True),
    Column("agent_id", Integer, ForeignKey("agents.id"), primary_key=True),
    Column("value", Integer, nullable=False),
    Column("created", Float, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the uploaded tar
    Column("agent_id", Integer, ForeignKey("agents.id")),
    Column("author", String(100), nullable=False),
    Column("parent_id", String(64)),
    Column("message", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("n_files", Integer, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("created", Float, nullable=False),
)

# Snapshot tars live here when the store has no blob directory (Postgres, or SQLite without a run dir).
snapshot_blobs = Table(
    "snapshot_blobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

verifications = Table(
    "verifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("post_id", Integer, ForeignKey("posts.id"), nullable=False),
    Column("status", String(20), nullable=False),  # pending | running | done | failed
    Column("verified_pgr", Float),
    Column("se", Float),
    Column("seeds", Integer),
    Column("per_seed", JSON),
    Column("details", JSON),
    Column("reason", Text),
    Column("created", Float, nullable=False),
    Column("started", Float),
    Column("finished", Float),
    Index("ix_verifications_post", "post_id"),
    Index("ix_verifications_status", "status"),
)

flags = Table(
    "flags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("detector", String(100), nullable=False),
    Column("severity", String(20), nullable=False),  # info | warning | severe
    Column("status", String(20), nullable=False),  # open | cleared | confirmed
    Column("summary", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("agent_id", Integer, ForeignKey("agents.id")),
    Column("post_id", Integer, ForeignKey("posts.id")),
    Column("submission_id", Integer, ForeignKey("submissions.id")),
    Column("snapshot_id", String(64)),
    # A detector that rescans names each finding with a key, so the same finding is stored once.
    Column("key", String(300)),
    Column("created", Float, nullable=False),
    Column("resolved", Float),
    Column("resolver", String(100)),
    Column("note", Text),
    UniqueConstraint("detector", "key", name="uq_flags_detector_key"),
    Index("ix_flags_status", "status"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created", Float, nullable=False),
)
