"""``state.json``: who is on a run's team and where each of them is, written atomically.

The run directory is the run's memory (docs/ARCHITECTURE.md). ``state.json`` holds what the transcripts and
the lab database do not: each agent's server identity and token, its direction and model, its status, its
restarts and why it stopped, and the team's wall-clock spent so far (so ``--hours`` counts across resumes).
Every change goes through ``RunState.save`` (write to a temp file, fsync, rename), so a ``kill -9`` at any
moment leaves the old or the new state, never half of one.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

from aarlab.errors import UserError
from aarlab.paths import atomic_write_text
from aarlab.rundir import STATE_FILE, session_running  # noqa: F401  (session_running: re-exported for the team)

AgentStatus = Literal["pending", "running", "restarting", "interrupted", "done", "budget", "failed"]
# An agent in one of these states is not started again by ``aarlab resume``.
FINAL_AGENT_STATUSES = ("done", "budget", "failed")
RunStatus = Literal["created", "running", "stopped", "finished", "budget"]


class AgentState(BaseModel):
    """One researcher of the team."""

    name: str
    model: str
    direction: str  # the direction's short name
    direction_title: str = ""
    direction_text: str = ""  # the brief the agent was given (kept: a user's direction file may change later)
    server_id: int | str | None = None
    token: str | None = None
    status: AgentStatus = "pending"
    restarts: int = 0
    reason: str = ""  # why it stopped, failed or was restarted last
    started_at: float | None = None
    stopped_at: float | None = None
    # Losses of its sandbox's node (Ray backend), one record each: time, reason, synced_at, lost_s, from/to node.
    recoveries: list[dict] = Field(default_factory=list)


class RunState(BaseModel):
    """The whole of ``state.json``."""

    run_id: str
    created_at: float = Field(default_factory=time.time)
    status: RunStatus = "created"
    reason: str = ""
    task: str = ""  # the server's task name
    agents: list[AgentState] = Field(default_factory=list)
    elapsed_s: float = 0.0  # team wall-clock spent in earlier sessions plus this one so far
    sessions: int = 0  # how many times `aarlab run`/`resume` started on this dir
    lab_url: str | None = None  # the last session's server (informational; it is gone once the run stops)

    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        path = Path(run_dir) / STATE_FILE
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UserError(f"{run_dir} is not an aarlab run directory (no {STATE_FILE})") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None

    def save(self, run_dir: Path) -> None:
        # One writer at a time: the temp file's name is per process, so two threads must not interleave.
        with self._lock:
            atomic_write_text(Path(run_dir) / STATE_FILE, self.model_dump_json(indent=2) + "\n")

    def agent(self, name: str) -> AgentState:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)

    def update_agent(self, run_dir: Path, name: str, **fields) -> AgentState:
        """Change one agent's fields and save the whole state (thread-safe)."""
        with self._lock:
            agent = self.agent(name)
            for key, value in fields.items():
                setattr(agent, key, value)
            self.save(run_dir)
            return agent

    @property
    def unfinished_agents(self) -> list[AgentState]:
        return [a for a in self.agents if a.status not in FINAL_AGENT_STATUSES]
