"""Fast, paginated reading of agents' JSONL transcripts (format in docs/ARCHITECTURE.md).

A long run has thousands of turns per agent (tens of MB), so a page must not parse the whole file. The
``TranscriptIndex`` scans a file once, remembers each complete line's byte offset plus the few numbers
the dashboard aggregates (time, step, cost, tokens), and on the next call only scans what was appended.
A page then seeks straight to its lines. Lines are framed and parsed by the agent's own reader
(``aarlab.agent.transcript.read_records``): a torn last line (an agent killed mid-write) is left out until it
is complete.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aarlab.agent.transcript import read_records, read_records_at

# Tools whose calls are research events worth highlighting on the timeline.
SUBMISSION_TOOLS = {"submit_predictions"}
POST_TOOLS = {"forum_post", "forum_reply"}
SNAPSHOT_TOOLS = {"snapshot_publish"}


@dataclass
class RecordMeta:
    """What the index keeps per transcript line."""

    offset: int
    length: int
    type: str
    time: float
    step: int | None
    cost_usd: float
    tokens: int
    tool_names: tuple[str, ...] = ()


@dataclass
class _FileIndex:
    inode: int = -1
    scanned: int = 0
    records: list[RecordMeta] = field(default_factory=list)


def _usage_tokens(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens"))


def _meta(offset: int, length: int, record: dict[str, Any]) -> RecordMeta:
    kind = str(record.get("type", "?"))
    assistant = record.get("assistant") if kind == "turn" else None
    tools: tuple[str, ...] = ()
    if isinstance(assistant, dict):
        tools = tuple(str(c.get("name", "")) for c in assistant.get("tool_calls") or [] if isinstance(c, dict))
    step = record.get("step")
    return RecordMeta(
        offset=offset,
        length=length,
        type=kind,
        time=float(record.get("time") or 0.0),
        step=int(step) if isinstance(step, int | float) else None,
        # A turn's spend includes tools that call models themselves (``consult``): ``tool_cost_usd``.
        cost_usd=float(record.get("cost_usd") or 0.0) + float(record.get("tool_cost_usd") or 0.0),
        tokens=_usage_tokens(record.get("usage")) + _usage_tokens(record.get("tool_usage")),
        tool_names=tools,
    )


class TranscriptIndex:
    """Per-file line index, extended incrementally as the file grows; thread-safe."""

    def __init__(self) -> None:
        self._files: dict[Path, _FileIndex] = {}
        self._lock = threading.Lock()

    def records(self, path: Path) -> list[RecordMeta]:
        """The index of ``path`` brought up to date (empty if the file does not exist)."""
        path = Path(path)
        with self._lock:
            try:
                st = path.stat()
            except FileNotFoundError:
                self._files.pop(path, None)
                return []
            idx = self._files.get(path)
            if idx is None or idx.inode != st.st_ino or st.st_size < idx.scanned:
                idx = _FileIndex(inode=st.st_ino)
                self._files[path] = idx
            if st.st_size > idx.scanned:
                self._scan(path, idx)
            return idx.records

    @staticmethod
    def _scan(path: Path, idx: _FileIndex) -> None:
        # A torn or still-being-written last line is not read until its newline is there.
        read = read_records(path, idx.scanned)
        idx.records.extend(_meta(offset, length, record)
                           for (offset, length), record in zip(read.spans, read.records, strict=True))
        idx.scanned = read.end

    def read(self, path: Path, metas: list[RecordMeta]) -> list[dict[str, Any]]:
        """Parse the given records of ``path`` (read from the first to the last in one go)."""
        return read_records_at(path, [(m.offset, m.length) for m in metas])


_INDEX = TranscriptIndex()


def shared_index() -> TranscriptIndex:
    """The process-wide index (the dashboard and the report share it)."""
    return _INDEX


def transcript_files(run_dir: Path | None) -> dict[str, Path]:
    """``{agent name: transcript path}`` for a run dir, sorted by name."""
    if run_dir is None:
        return {}
    folder = Path(run_dir) / "transcripts"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.jsonl"))}


@dataclass
class TranscriptSummary:
    agent: str
    turns: int
    steps: int
    cost_usd: float
    tokens: int
    submissions: int
    posts: int
    snapshots: int
    first_time: float | None
    last_time: float | None
    stop_reason: str | None
    compactions: int


_SUMMARIES: dict[tuple[int, Path], tuple[int, TranscriptSummary]] = {}


def summarize(path: Path, index: TranscriptIndex | None = None) -> TranscriptSummary:
    """Totals over one transcript, from the index alone (no full parse after the first scan).

    Kept until the transcript grows, so an overview of a long run does not re-add thousands of turns."""
    index = index or _INDEX
    metas = index.records(path)
    key = (id(index), Path(path))
    cached = _SUMMARIES.get(key)
    if cached is not None and cached[0] == len(metas):
        return cached[1]
    summary = _summarize(path, index, metas)
    _SUMMARIES[key] = (len(metas), summary)
    return summary


def _summarize(path: Path, index: TranscriptIndex, metas: list[RecordMeta]) -> TranscriptSummary:
    turns = [m for m in metas if m.type == "turn"]
    stop_reason = None
    stops = [m for m in metas if m.type == "stop"]
    if stops:
        rec = index.read(path, [stops[-1]])
        stop_reason = rec[0].get("reason") if rec else None
    times = [m.time for m in metas if m.time]
    tool_names = [t for m in turns for t in m.tool_names]
    return TranscriptSummary(
        agent=Path(path).stem,
        turns=len(turns),
        steps=max((m.step or 0 for m in turns), default=0),
        cost_usd=sum(m.cost_usd for m in metas),  # compactions cost too
        tokens=sum(m.tokens for m in metas),
        submissions=sum(t in SUBMISSION_TOOLS for t in tool_names),
        posts=sum(t in POST_TOOLS for t in tool_names),
        snapshots=sum(t in SNAPSHOT_TOOLS for t in tool_names),
        first_time=min(times) if times else None,
        last_time=max(times) if times else None,
        stop_reason=stop_reason,
        compactions=sum(m.type == "compaction" for m in metas),
    )


def spend_series(path: Path, index: TranscriptIndex | None = None) -> list[tuple[float, float]]:
    """Cumulative $ spent over time for one agent: ``[(unix time, total $)]``."""
    index = index or _INDEX
    total = 0.0
    points: list[tuple[float, float]] = []
    for m in index.records(path):
        if m.cost_usd and m.time:
            total += m.cost_usd
            points.append((m.time, total))
    return _thin(points)


def _thin(points: list[tuple[float, float]], limit: int = 400) -> list[tuple[float, float]]:
    """Keep at most ``limit`` points (plus the last), so a 5,000-turn series draws fast."""
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    kept = [points[int(i * stride)] for i in range(limit)]
    kept.append(points[-1])
    return kept


# --- turning records into a readable timeline -------------------------------------------------------


@dataclass
class ToolEvent:
    call_id: str
    name: str
    arguments: dict[str, Any]
    output: str
    is_error: bool
    kind: str  # "submission" | "post" | "snapshot" | "tool"


@dataclass
class TimelineEntry:
    index: int  # position in the transcript (record number), stable across pages
    type: str
    time: float
    step: int | None
    text: str = ""
    thinking: str = ""
    tools: list[ToolEvent] = field(default_factory=list)
    cost_usd: float = 0.0
    tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _tool_kind(name: str) -> str:
    if name in SUBMISSION_TOOLS:
        return "submission"
    if name in POST_TOOLS:
        return "post"
    if name in SNAPSHOT_TOOLS:
        return "snapshot"
    return "tool"


def to_timeline(record: dict[str, Any], index: int) -> TimelineEntry:
    """One transcript record as a timeline entry (tool calls matched to their results by id)."""
    kind = str(record.get("type", "?"))
    entry = TimelineEntry(
        index=index, type=kind, time=float(record.get("time") or 0.0), step=record.get("step")
    )
    if kind == "turn":
        assistant = record.get("assistant") or {}
        entry.text = str(assistant.get("content") or "")
        entry.thinking = str(assistant.get("thinking") or "")
        results = {r.get("tool_call_id"): r for r in record.get("tool_results") or [] if isinstance(r, dict)}
        for call in assistant.get("tool_calls") or []:
            result = results.get(call.get("id"), {})
            entry.tools.append(
                ToolEvent(
                    call_id=str(call.get("id", "")),
                    name=str(call.get("name", "")),
                    arguments=call.get("arguments") or {},
                    output=str(result.get("content", "")),
                    is_error=bool(result.get("is_error")),
                    kind=_tool_kind(str(call.get("name", ""))),
                )
            )
        entry.cost_usd = float(record.get("cost_usd") or 0.0) + float(record.get("tool_cost_usd") or 0.0)
        entry.tokens = _usage_tokens(record.get("usage")) + _usage_tokens(record.get("tool_usage"))
        entry.extra = {"note": record.get("note") or "", "latency_s": record.get("latency_s")}
    elif kind == "start":
        entry.text = str(record.get("system_prompt") or "")
        entry.extra = {"config": record.get("config") or {}, "tools": record.get("tools") or [],
                       "first_message": record.get("first_message") or ""}
    elif kind == "compaction":
        entry.text = str(record.get("summary") or "")
        entry.extra = {"kept_from_step": record.get("kept_from_step")}
    elif kind == "stop":
        entry.text = str(record.get("reason") or "")
        entry.extra = {"detail": record.get("detail") or ""}
    return entry


@dataclass
class TimelinePage:
    entries: list[TimelineEntry]
    page: int
    pages: int
    total: int
    next_index: int  # the record number after the last one shown (for live tailing)


def timeline_page(
    path: Path, page: int | None = None, per_page: int = 50, index: TranscriptIndex | None = None
) -> TimelinePage:
    """Page ``page`` (1-based; ``None`` = the last, i.e. the latest turns) of a transcript."""
    index = index or _INDEX
    metas = index.records(path)
    total = len(metas)
    pages = max(1, -(-total // per_page))
    page = pages if page is None else min(max(1, page), pages)
    lo = (page - 1) * per_page
    chunk = metas[lo : lo + per_page]
    records = index.read(path, chunk)
    entries = [to_timeline(r, lo + i) for i, r in enumerate(records)]
    return TimelinePage(entries=entries, page=page, pages=pages, total=total, next_index=lo + len(chunk))


def timeline_after(path: Path, after: int, limit: int = 200, index: TranscriptIndex | None = None) -> TimelinePage:
    """Entries appended after record number ``after`` (the live tail of the last page)."""
    index = index or _INDEX
    metas = index.records(path)
    chunk = metas[after : after + limit]
    records = index.read(path, chunk)
    entries = [to_timeline(r, after + i) for i, r in enumerate(records)]
    return TimelinePage(entries=entries, page=0, pages=0, total=len(metas), next_index=after + len(chunk))


def file_signature(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) — a cheap change detector for caches keyed on a transcript."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)
