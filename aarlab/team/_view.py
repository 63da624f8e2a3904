"""What a team is doing, for people: the live terminal view of ``aarlab run`` and ``aarlab status``.

Both read the same sources — ``state.json``, the tail of each transcript, the lab's leaderboard and flags —
through ``TeamSnapshot``, so the live view and ``aarlab status`` always agree. Transcripts are read
incrementally (only the bytes appended since the last look), so refreshing twice a second stays cheap.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from aarlab.team._state import RunState

LEADERBOARD_POLL_S = 3.0


@dataclass
class AgentProgress:
    """What one agent's transcript says so far."""

    step: int = 0
    last_action: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    stop: str | None = None


class TranscriptTail:
    """Follows one transcript file, parsing only complete new lines."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.progress = AgentProgress()

    def poll(self) -> AgentProgress:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return self.progress
        end = data.rfind(b"\n") + 1  # a torn or half-written last line waits for the next poll
        self.offset += end
        for line in data[:end].splitlines():
            try:
                self._apply(json.loads(line))
            except (ValueError, TypeError, KeyError):
                continue
        return self.progress

    def _apply(self, rec: dict) -> None:
        p = self.progress
        kind = rec.get("type")
        if kind == "turn":
            p.step = max(p.step, int(rec.get("step", 0)))
            p.cost_usd += float(rec.get("cost_usd") or 0) + float(rec.get("tool_cost_usd") or 0)
            usage = rec.get("usage") or {}
            p.tokens += sum(int(usage.get(k) or 0) for k in
                            ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens"))
            p.last_action = describe_action(rec.get("assistant") or {})
            p.stop = None
        elif kind == "compaction":
            p.cost_usd += float(rec.get("cost_usd") or 0)
            p.last_action = "compacted its memory"
        elif kind == "stop":
            p.stop = rec.get("reason")


def describe_action(assistant: dict) -> str:
    """A short line for an assistant message: its tool calls with their main argument, or its text."""
    calls = assistant.get("tool_calls") or []
    if not calls:
        text = (assistant.get("content") or "").strip().replace("\n", " ")
        return f"said: {text[:60]}" if text else "(thinking)"
    parts = []
    for call in calls[:2]:
        args = call.get("arguments") or {}
        main = next((str(args[k]) for k in ("command", "path", "title", "query", "snapshot_id", "code", "message")
                     if k in args), "")
        main = main.strip().replace("\n", " ")
        parts.append(f"{call.get('name')}: {main[:50]}" if main else str(call.get("name")))
    more = f" (+{len(calls) - 2})" if len(calls) > 2 else ""
    return "; ".join(parts) + more


@dataclass
class LabView:
    """What the lab server says: the leaderboard and the flags (None when it could not be asked)."""

    leaderboard: Any = None
    flags: list[Any] = field(default_factory=list)
    error: str | None = None


def fetch_lab(url: str, token: str, task: str | None) -> LabView:
    from aarlab.server.client import LabClient

    try:
        with LabClient(url, token, timeout=5.0, retries=0) as client:
            board = client.leaderboard(task or None)
            try:
                flags = client.flags()
            except Exception:
                flags = []
            return LabView(board, flags)
    except Exception as exc:  # the view must never take the run down
        return LabView(error=f"{type(exc).__name__}: {exc}")


def _fmt(value: float | None, se: float | None = None, test_se: float | None = None,
         step: float | None = None) -> str:
    """``mean ± seed SE ± test SE`` (the parts that are known; a test SE alone reads ``± ? ± t``). With the
    coarse reply's PGR ``step``, a seed SE that rounds to 0 there reads ``± <step``: below the grid, not zero."""
    if value is None:
        return "-"
    text = f"{value:.2f}"
    from aarlab.server import below_grid

    if below_grid(se, step, 2):
        text += f" ± <{step:.2f}"
    elif se is not None or test_se is not None:
        text += f" ± {se:.2f}" if se is not None else " ± ?"
    if test_se is not None:
        text += f" ± {test_se:.2f}" if math.isfinite(test_se) else " ± inf"
    return text


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class TeamSnapshot:
    """Everything the views show, gathered from a run dir (and the lab, when a URL and token are given)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.tails: dict[str, TranscriptTail] = {}
        self.lab = LabView()
        self._lab_at = 0.0

    def progress(self, name: str) -> AgentProgress:
        tail = self.tails.get(name)
        if tail is None:
            tail = self.tails[name] = TranscriptTail(self.run_dir / "transcripts" / f"{name}.jsonl")
        return tail.poll()

    def poll_lab(self, url: str | None, token: str, task: str | None, force: bool = False) -> LabView:
        if url and (force or time.monotonic() - self._lab_at > LEADERBOARD_POLL_S):
            self._lab_at = time.monotonic()
            self.lab = fetch_lab(url, token, task)
        return self.lab

    def best_by_author(self) -> dict[str, tuple[float | None, float | None]]:
        """Each author's best claimed and best verified PGR on the leaderboard."""
        out: dict[str, tuple[float | None, float | None]] = {}
        board = self.lab.leaderboard
        for e in board.entries if board is not None else []:
            claimed, verified = out.get(e.author, (None, None))
            if e.claimed_pgr is not None and (claimed is None or e.claimed_pgr > claimed):
                claimed = e.claimed_pgr
            if e.verified_pgr is not None and (verified is None or e.verified_pgr > verified):
                verified = e.verified_pgr
            out[e.author] = (claimed, verified)
        return out

    def flags_by_agent(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for flag in self.lab.flags:
            if getattr(flag, "agent", None):
                out[flag.agent] = out.get(flag.agent, 0) + 1
        return out

    # ------------------------------------------------------------------------------------------ rendering
    def agents_table(self, state: RunState) -> Table:
        table = Table(title=None, expand=True, show_lines=False)
        for col, kw in (("agent", {}), ("direction", {"overflow": "ellipsis", "max_width": 24}), ("status", {}),
                        ("step", {"justify": "right"}), ("last action", {"overflow": "ellipsis", "ratio": 1}),
                        ("$ spent", {"justify": "right"}), ("best PGR", {"justify": "right"}),
                        ("verified", {"justify": "right"}), ("flags", {"justify": "right"})):
            table.add_column(col, no_wrap=True, **kw)
        best, flags = self.best_by_author(), self.flags_by_agent()
        for agent in state.agents:
            p = self.progress(agent.name)
            claimed, verified = best.get(agent.name, (None, None))
            extras = [f"restarts {agent.restarts}" if agent.restarts else "",
                      f"{len(agent.recoveries)} node loss{'es' if len(agent.recoveries) > 1 else ''}"
                      if agent.recoveries else ""]
            status = agent.status + (f" ({', '.join(e for e in extras if e)})" if any(extras) else "")
            style = {"failed": "red", "done": "green", "budget": "yellow", "interrupted": "yellow"}.get(agent.status)
            table.add_row(agent.name, agent.direction, Text(status, style=style or ""), str(p.step), p.last_action,
                          f"{p.cost_usd:.2f}", _fmt(claimed), _fmt(verified), str(flags.get(agent.name, 0)))
        return table

    def leaderboard_table(self, top: int = 5) -> Table | Text:
        board = self.lab.leaderboard
        if board is None:
            return Text(f"leaderboard unavailable ({self.lab.error})" if self.lab.error else "leaderboard: -",
                        style="dim")
        # Every PGR as mean ± seed SE ± test-sampling SE: the parts a reader needs to judge whether two agree.
        table = Table(title=f"leaderboard ({board.task or 'all tasks'}, by {board.sort})", expand=True,
                      caption="PGR: mean ± seed SE ± test SE", caption_justify="right")
        private = any(e.private_pgr is not None for e in board.entries)
        columns = ["rank", "author", "title", "claimed PGR", "public PGR", *(["private PGR"] if private else []),
                   "verified PGR", "status"]
        for col in columns:
            table.add_column(col, no_wrap=True, overflow="ellipsis", ratio=3 if col == "title" else None)
        blank = [""] * (len(columns) - 4)
        for b in board.baselines:
            table.add_row("", b.name, b.model, _fmt(b.pgr), *blank, f"acc {b.accuracy:.3f} ± {b.accuracy_se:.3f}")
        for e in board.entries[:top]:
            rank = "quarantined" if e.quarantined else (str(e.rank) if e.rank is not None else "-")
            status = (e.verification_status or "-") + (f", {len(e.flags)} flag(s)" if e.flags else "")
            cells = [_fmt(e.claimed_pgr, e.claimed_pgr_se, e.claimed_pgr_test_se, e.claimed_pgr_step),
                     _fmt(e.public_pgr, e.public_pgr_se, e.public_pgr_test_se)]
            if private:
                cells.append(_fmt(e.private_pgr, e.private_pgr_se, e.private_pgr_test_se))
            cells.append(_fmt(e.verified_pgr, e.verified_pgr_se, e.verified_pgr_test_se))
            table.add_row(rank, e.author, e.title, *cells, status)
        if not board.entries:
            table.add_row("", "", "no results posted yet", *[""] * (len(columns) - 3))
        return table

    def budget_line(self, state: RunState, config, elapsed_s: float) -> Text:
        spent_usd = sum(self.progress(a.name).cost_usd for a in state.agents)
        spent_tokens = sum(self.progress(a.name).tokens for a in state.agents)
        total = config.budget.total
        parts = [f"elapsed {_duration(elapsed_s)}" + (
            f" of {_duration(total.hours * 3600)} ({_duration(total.hours * 3600 - elapsed_s)} left)"
            if total.hours else "")]
        parts.append(f"${spent_usd:.2f}" + (f" of ${total.usd:.2f} (${max(0.0, total.usd - spent_usd):.2f} left)"
                                            if total.usd is not None else ""))
        parts.append(f"{spent_tokens:,} tokens" + (f" of {total.tokens:,}" if total.tokens else ""))
        done = sum(a.status in ("done", "budget", "failed") for a in state.agents)
        parts.append(f"{done}/{len(state.agents)} agents finished")
        return Text(" · ".join(parts))


def isolation_warning(config, unisolated: set[str] | frozenset[str] = frozenset()) -> Text | None:
    """A loud line when the agents' commands run with no isolation (the ``process`` backend), else None."""
    if config.sandbox.backend != "process" and not unisolated:
        return None
    who = f" ({', '.join(sorted(unisolated))})" if unisolated else ""
    return Text(f"NOT ISOLATED: sandbox backend 'process'{who}: agents' commands run as your user, with your "
                "files and network", style="bold white on red")


def running_jobs(session) -> dict[str, list]:
    """Each running agent's running background jobs (``JobInfo``), read from its live sandbox."""
    found = {}
    for name, agent in list(getattr(session, "agents", {}).items()):
        jobs = getattr(getattr(agent, "sandbox", None), "jobs", None)
        if jobs is None:
            continue
        try:
            running = jobs.running()
        except Exception:  # a sandbox stopping meanwhile: nothing to show for it
            continue
        if running:
            found[name] = running
    return found


def jobs_table(jobs_by_agent: dict[str, list]) -> Table | None:
    """The running background jobs: agent, name, runtime, slot (and GPUs), command; None when there are none."""
    if not jobs_by_agent:
        return None
    table = Table(title="running jobs", expand=True, show_lines=False)
    for col, kw in (("agent", {}), ("job", {}), ("runtime", {"justify": "right"}), ("slot", {"justify": "right"}),
                    ("command", {"overflow": "ellipsis", "ratio": 1})):
        table.add_column(col, no_wrap=True, **kw)
    for agent, jobs in jobs_by_agent.items():
        for job in jobs:
            slot = str(job.slot) + (f" · GPU {','.join(map(str, job.gpus))}" if job.gpus else "")
            table.add_row(agent, job.name, _duration(job.runtime_s), slot, job.command)
    return table


class LiveView:
    """The live terminal view of a team session (rich ``Live`` on a terminal, a line every 15 s otherwise)."""

    PLAIN_EVERY_S = 15.0

    def __init__(self, session, console: Console | None = None):
        self.session = session
        self.console = console or Console(stderr=False)
        self.snapshot = TeamSnapshot(session.run_dir)
        self.status_line = ""
        self._live = None
        self._last_plain = 0.0
        self._last_statuses: dict[str, str] = {}

    def _token(self) -> str:
        return self.session.admin_token

    def renderable(self):
        s = self.session
        self.snapshot.poll_lab(s.url, self._token(), s.state.task)
        header = Text(f"aarlab run {s.run_dir}  ·  lab {s.url or '-'}", style="bold")
        parts = [header]
        warning = isolation_warning(s.config, getattr(s, "unisolated", set()))
        if warning is not None:
            parts.append(warning)
        parts.append(self.snapshot.agents_table(s.state))
        jobs = jobs_table(running_jobs(s))
        if jobs is not None:
            parts.append(jobs)
        parts += [self.snapshot.leaderboard_table(), self.snapshot.budget_line(s.state, s.config, s.elapsed_s)]
        if self.status_line or s.stop_event.is_set():
            parts.append(Text(self.status_line or "stopping…", style="yellow"))
        return Group(*parts)

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self.renderable(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.renderable())
            return
        statuses = {a.name: a.status for a in self.session.state.agents}
        changed = statuses != self._last_statuses
        if changed or time.monotonic() - self._last_plain > self.PLAIN_EVERY_S:
            self._last_statuses = statuses
            self._last_plain = time.monotonic()
            s = self.session
            rows = []
            jobs = running_jobs(s)
            for agent in s.state.agents:
                p = self.snapshot.progress(agent.name)
                running = jobs.get(agent.name)
                rows.append(f"{agent.name} {agent.status} step {p.step}"
                            + (f" jobs {','.join(j.name for j in running)}" if running else ""))
            line = self.snapshot.budget_line(s.state, s.config, s.elapsed_s).plain
            if isolation_warning(s.config, getattr(s, "unisolated", set())) is not None:
                line += " · NOT ISOLATED (process backend)"
            self.console.print(f"[{_duration(s.elapsed_s)}] " + ", ".join(rows) + f" · {line}", highlight=False)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self.renderable())
            self._live.__exit__(None, None, None)
            self._live = None
