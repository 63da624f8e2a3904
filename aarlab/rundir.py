"""Facts about a run directory that more than one package needs: where its state and lock live, whether a
session holds it, and its ``state.json`` read tolerantly.

The team writes these files (``aarlab.team``); the dashboard, the report and ``aarlab status`` only read
them. Both sides import this module, so that the dashboard never needs the team to know whether a run is alive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"  # agents, tokens, statuses; written atomically by aarlab.team.RunState.save
LOCK_FILE = ".lock"  # flock'd by the team session for as long as it runs


def session_running(run_dir: Path) -> bool:
    """Whether a team session holds ``RUN_DIR/.lock`` right now.

    A session holds an ``flock`` on the file for as long as it runs, and the kernel drops it when the process
    dies, however it dies. The probe takes the lock for an instant and lets it go; it never creates the file
    (the dashboard and the report must not write into a run), so a missing lock file means no session. Within
    the process that runs the session, the probe's separate open file is refused too.
    """
    import fcntl

    try:
        handle = open(Path(run_dir) / LOCK_FILE, "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


class RunLocked(OSError):
    """Another session holds the run (its message names the holder)."""


def hold_session_lock(run_dir: Path):
    """Take ``RUN_DIR/.lock`` for a session and return its open handle (closing it lets go).

    Two sessions on one run would run every agent twice, so a second one gets ``RunLocked`` naming the holder.
    An ``flock`` dies with its process, so a run killed with ``kill -9`` is never left locked.
    """
    import fcntl
    import os

    handle = open(Path(run_dir) / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLocked(f"{run_dir} is being run by {holder} right now; stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def lock_holder(run_dir: Path) -> str:
    """What the session wrote into its lock file (``pid N``), or ``""``."""
    try:
        return (Path(run_dir) / LOCK_FILE).read_text(encoding="utf-8", errors="replace").strip()[:100]
    except OSError:
        return ""


def read_state_file(run_dir: Path) -> dict[str, Any]:
    """``state.json`` as a plain dict, or ``{}`` when it is missing or unreadable (a reader never fails on a run
    that is being created or was copied half-way; ``aarlab.team.RunState.load`` is the strict reader)."""
    try:
        data = json.loads((Path(run_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


JOBS_DIR = "jobs"  # RUN_DIR/jobs/<agent>.json: each agent's background-job table (aarlab.sandbox._jobs)


def job_table_path(run_dir: Path, agent: str) -> Path:
    """Where the team keeps ``agent``'s job table; the sandbox's job manager writes it atomically."""
    return Path(run_dir) / JOBS_DIR / f"{agent}.json"


def read_job_table(run_dir: Path, agent: str) -> list[dict[str, Any]]:
    """The jobs of ``agent`` as plain dicts, newest first; ``[]`` when there is no table or it is unreadable."""
    try:
        data = json.loads(job_table_path(run_dir, agent).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        return []
    return sorted((j for j in jobs if isinstance(j, dict)), key=lambda j: -float(j.get("started_at") or 0.0))
