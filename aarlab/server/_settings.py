"""``ServerSettings``: everything that shapes one lab server's behaviour, in one pydantic model."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import BaseModel, Field


def new_token() -> str:
    """A fresh 256-bit bearer token (URL-safe text)."""
    return secrets.token_urlsafe(32)


class ServerSettings(BaseModel):
    """Settings of a lab server.

    The defaults bound what an agent can learn about the hidden public labels: every submission reply is
    rounded to ``score_decimals`` and an agent gets ``submissions_per_run`` submissions per task over the whole
    run, at most ``submissions_per_hour`` of them in any sliding hour.
    """

    admin_token: str = Field(default_factory=new_token, min_length=16)
    viewer_token: str | None = Field(default=None, min_length=16)
    min_result_seeds: int = Field(default=3, ge=1)
    submissions_per_run: int = Field(default=30, ge=0)  # the team default; the leakage bound is measured at 3 × 30
    submissions_per_hour: int = Field(default=20, ge=0)
    # Uploads (predictions, snapshots, held-out scoring) may be this big; every other request body (posts,
    # replies, votes, admin calls) is limited to ``max_small_body_kb``.
    max_body_mb: float = Field(default=20.0, gt=0)
    max_small_body_kb: float = Field(default=256.0, gt=0)
    max_predictions: int = Field(default=1_000_000, ge=1)
    max_snapshot_mb: float = Field(default=20.0, gt=0)
    max_snapshot_files: int = Field(default=2_000, ge=1)
    score_decimals: int = Field(default=2, ge=0, le=6)
    run_dir: Path | None = None
    # How often an open event stream looks for new events (the events table is the source of truth, so
    # streams see writes made by any process on the same database).
    events_poll_s: float = Field(default=0.2, gt=0)
    # Open event streams per token: each one polls the database, so one agent's hundred streams would slow
    # every other caller.
    max_event_streams: int = Field(default=4, ge=1)
    # The dashboard's signed session cookie: HMAC key (default: <run_dir>/session_secret, mode 0600, or a
    # fresh one per process without a run dir) and lifetime.
    session_secret: str | None = Field(default=None, min_length=16)
    session_max_age_s: int = Field(default=12 * 3600, ge=60)
