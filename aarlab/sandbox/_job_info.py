"""A background job as the job table records it, and how jobs are shown: one line for the model, events for
the transcript, durations."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from aarlab.sandbox._base import SandboxError

JobState = Literal["running", "exited", "killed", "timed_out", "cpu_limit", "lost"]


class JobError(SandboxError):
    """A job request that cannot be carried out: a bad or taken name, no free slot or GPU, an unknown job."""


class JobInfo(BaseModel):
    """One job as the table keeps it (and tools, views and the dashboard show it)."""

    name: str
    command: str
    state: JobState = "running"
    slot: int = 0
    gpus: list[int] = Field(default_factory=list)
    log: str = ""  # the log file, relative to the workspace
    started_at: float = 0.0
    ended_at: float | None = None
    seen_at: float = 0.0  # last time the harness saw it running (a lost job ran at least until then)
    exit_code: int | None = None
    cpu_s: float = 0.0
    timeout_s: float = 0.0
    detail: str = ""  # how it ended, in words
    cgroup: list[str] = Field(default_factory=list)  # its cgroup directories, for the sweep after a crash
    session: int = 0  # which start of the table's owner launched it (jobs of earlier sessions are history)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def runtime_s(self) -> float:
        end = self.ended_at if self.ended_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @property
    def gpu_s(self) -> float:
        return self.runtime_s * len(self.gpus)

    def describe(self) -> str:
        """One line for the model: name, state, runtime, slot and GPUs, exit code, CPU time."""
        parts = [f"{self.name}: {self.state}", f"{format_duration(self.runtime_s)}", f"slot {self.slot}"]
        if self.gpus:
            parts.append(f"GPU {','.join(map(str, self.gpus))}")
        if self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        parts.append(f"CPU {self.cpu_s:.0f} s")
        if self.detail and not self.running:
            parts.append(self.detail)
        return " · ".join(parts) + f" · log {self.log} · $ {_short(self.command)}"


def _event(kind: str, info: JobInfo) -> dict:
    event = {"event": kind, "name": info.name, "command": info.command, "slot": info.slot, "gpus": info.gpus,
             "started_at": round(info.started_at, 3), "log": info.log}
    if kind != "start":
        event.update(state=info.state, exit_code=info.exit_code, runtime_s=round(info.runtime_s, 1),
                     cpu_s=round(info.cpu_s, 2), detail=info.detail)
    return event


def _short(command: str, limit: int = 80) -> str:
    line = " ".join(command.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: a duration as the job tools and the budget show it."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
