"""Agent transcripts: ``runs/<id>/transcripts/<agent>.jsonl``, one JSON record per line.

Every record has ``type``, ``time`` (unix seconds) and ``agent``. The types (docs/ARCHITECTURE.md):

- ``start``: ``{system_prompt, tools, config, first_message}`` — the first line.
- ``turn``: ``{step, assistant, tool_results, usage, cost_usd, latency_s}`` plus ``request`` (a summary of
  what was asked: model, number of messages and tools, max_tokens, ``started`` time), ``note`` (the budget note
  the model saw after this turn), ``tool_usage``/``tool_cost_usd`` (spend of tools such as ``consult``),
  ``elapsed_s`` (the agent's working time so far) and ``state`` (e.g. the forum cursor). Written only after
  all tool calls of the step ran, so a resume never repeats a tool call.
- ``compaction``: ``{step, summary, kept_from_step}`` plus ``notebook``, ``usage``, ``cost_usd``.
- ``stop``: ``{reason, step}`` plus ``detail``.
- ``job``: ``{step, event, name, command, slot, gpus, started_at, log}`` (``event``: start, end or lost; an end
  or a loss adds ``state, exit_code, runtime_s, cpu_s, detail``): a background job's life, written just before
  the turn record of the step that saw it. Turn records carry ``job_cpu_s``/``job_gpu_s``, the running totals.

Records are appended, flushed and fsync'd one at a time; a crash can only tear the last line, which
``read_records`` (the one reader, also used by the dashboard and the monitors) skips and ``TranscriptWriter``
cuts off before appending. While a step's tools run, the
writer keeps a side file ``<agent>.pending.json`` with the assistant message and the results so far; a
resume turns it into the step's ``turn`` record (calls that had not finished are reported to the model as
interrupted, never re-run).

``replay(records)`` rebuilds the conversation and the spend exactly as the model saw them;
``rebuild_messages(records)`` is its message list.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from aarlab.llm import Message, Usage

RECORD_TYPES = ("start", "turn", "compaction", "stop", "job")


class TranscriptError(Exception):
    """A transcript is corrupt in a way a crash cannot explain (a bad line before the last)."""


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} into a transcript")


def _dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, default=_default, separators=(",", ":"))


class TranscriptWriter:
    """Appends records to one agent's transcript; each record is flushed and fsync'd.

    With ``overlap_fsync`` the fsync of a record runs in a background thread while the caller goes on (the
    agent's next model call); ``wait_durable()`` blocks until every record written so far is on disk. The
    agent calls it before it runs any tool, so a tool never runs before the turns preceding it are durable,
    and the disk's sync latency hides behind the model's. Without it ``write`` returns only once durable.
    """

    def __init__(self, path: Path | str, agent: str, fsync: bool = True, overlap_fsync: bool = False):
        self.path = Path(path)
        self.agent = agent
        self.fsync = fsync
        self.overlap_fsync = overlap_fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._syncing: threading.Thread | None = None
        self._pending_fd: int | None = None

    def write(self, type: str, **fields: Any) -> dict:
        """Append one record of ``type`` and make it durable (now, or in the background with
        ``overlap_fsync``); returns the record as written."""
        if type not in RECORD_TYPES:
            raise ValueError(f"unknown transcript record type {type!r}")
        record = {"type": type, "time": time.time(), "agent": self.agent, **fields}
        line = _dumps(record)
        self.wait_durable()
        self._fh.write(line + "\n")
        self._fh.flush()  # in the page cache now: a killed process loses nothing from here on
        if self.fsync:
            if self.overlap_fsync:
                self._syncing = threading.Thread(target=os.fsync, args=(self._fh.fileno(),), daemon=True)
                self._syncing.start()
            else:
                os.fsync(self._fh.fileno())
        return json.loads(line)

    def wait_durable(self) -> None:
        """Block until every record written so far has been fsync'd."""
        if self._syncing is not None:
            self._syncing.join()
            self._syncing = None

    @property
    def pending_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".pending.json")

    # The pending side file survives a kill -9 of the process (it is in the page cache once written); it
    # is not fsync'd because losing it on a power cut only means the step is asked again. It is kept open
    # and rewritten in place (no rename, no new inode: those cost milliseconds on busy file systems); the
    # new content is written over the old before the file is cut to length, so a kill in between leaves
    # the new JSON document followed by stale bytes, which ``read_pending`` ignores.
    def write_pending(self, pending: dict) -> None:
        data = _dumps(pending).encode("utf-8") + b"\n"
        if self._pending_fd is None:
            self._pending_fd = os.open(self.pending_path, os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(self._pending_fd, data, 0)
        os.ftruncate(self._pending_fd, len(data))

    def read_pending(self) -> dict | None:
        try:
            text = self.pending_path.read_text(encoding="utf-8", errors="replace")
            return json.JSONDecoder().raw_decode(text)[0] if text.strip() else None
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def clear_pending(self) -> None:
        if self._pending_fd is not None:
            os.close(self._pending_fd)
            self._pending_fd = None
        self.pending_path.unlink(missing_ok=True)

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        self.wait_durable()
        if self._pending_fd is not None:
            os.close(self._pending_fd)
            self._pending_fd = None
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cut_torn_tail(path: Path) -> None:
    """Truncate a half-written last line (a crash mid-write) so that appending starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)


@dataclass
class TranscriptRead:
    """What one read of a transcript found, from a byte offset to the end of its last complete line."""

    records: list[dict] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # (byte offset, length) of each record's line
    end: int = 0  # the byte offset after the last complete line: where the next read starts
    bad_lines: list[int] = field(default_factory=list)  # byte offsets of complete lines that are not a record


def _parse(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return record if isinstance(record, dict) else None


def read_records(path: Path | str, start: int = 0) -> TranscriptRead:
    """The records on a transcript's complete lines from byte offset ``start``: the one reader of the format,
    for the agent's resume, the dashboard and the monitors.

    A line counts once its newline is written: a record and its newline are appended in one write, so a line
    without one was torn by a crash (``TranscriptWriter`` cuts it off before appending) or is being written
    right now (read it on the next pass, from ``end``). Blank lines are skipped; a complete line that is not a
    JSON object is left out and its offset kept in ``bad_lines``. A missing file reads as empty.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return TranscriptRead(end=start)
    complete = data.rfind(b"\n") + 1
    out = TranscriptRead(end=start + complete)
    offset = start
    for line in data[:complete].split(b"\n")[:-1]:
        if line.strip():
            record = _parse(line)
            if record is None:
                out.bad_lines.append(offset)
            else:
                out.records.append(record)
                out.spans.append((offset, len(line)))
        offset += len(line) + 1
    return out


def read_records_at(path: Path | str, spans: list[tuple[int, int]]) -> list[dict]:
    """The records at ``spans`` (byte offset, length) that an earlier ``read_records`` found, in one read from
    the first to the last; a line that no longer parses (the file was replaced) is left out."""
    if not spans:
        return []
    first = spans[0][0]
    with open(path, "rb") as fh:
        fh.seek(first)
        blob = fh.read(spans[-1][0] + spans[-1][1] - first)
    parsed = (_parse(blob[offset - first: offset - first + length]) for offset, length in spans)
    return [record for record in parsed if record is not None]


def read_transcript(path: Path | str) -> list[dict]:
    """All records of a transcript, to resume it: a torn last line is left out (see ``read_records``), and a
    bad line followed by records raises ``TranscriptError``, since no crash can explain it."""
    read = read_records(path)
    if read.bad_lines and read.spans and read.bad_lines[0] < read.spans[-1][0]:
        with open(path, "rb") as fh:
            line_no = fh.read(read.bad_lines[0]).count(b"\n") + 1
        raise TranscriptError(f"{path}: line {line_no} is not a JSON record")
    return read.records


# -- how records become the conversation (shared by the loop and by replay, so both build the same thing) --

def turn_messages(assistant: Message, tool_results: list[Message], note: str | None) -> list[Message]:
    """The messages one turn adds: the assistant message, its tool results, and the note after them.

    The note (remaining budget, a nudge) rides on the last tool result so that the conversation keeps the
    user/assistant alternation every provider accepts; without tool results it is a user message.
    """
    out = [assistant, *tool_results]
    if note:
        if tool_results:
            last = tool_results[-1]
            out[-1] = last.model_copy(update={"content": f"{last.content}\n\n[{note}]"})
        else:
            out.append(Message(role="user", content=note))
    return out


def compaction_message(summary: str, notebook: str | None) -> Message:
    """The user message that replaces the summarised turns."""
    parts = [
        "Your earlier work was summarised to fit the context window. Keep going from where you are.",
        f"## Summary of your work so far\n\n{summary.strip()}",
    ]
    if notebook is not None:
        parts.append(f"## Your notebook (its current content)\n\n{notebook.strip() or '(empty)'}")
    return Message(role="user", content="\n\n".join(parts))


@dataclass
class Replay:
    """What a transcript says about an agent: the conversation to continue and what it has spent."""

    messages: list[Message] = field(default_factory=list)
    prefix: list[Message] = field(default_factory=list)  # system prompt + first message or latest summary
    turns: dict[int, list[Message]] = field(default_factory=dict)  # the turns since the last compaction
    step: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    state: dict = field(default_factory=dict)
    started: bool = False
    stopped: str | None = None  # reason of the last stop record, if the transcript ends with one
    stop_detail: str = ""
    summary: str | None = None
    compactions: int = 0
    idle_replies: int = 0
    last_prompt_tokens: int = 0
    job_cpu_s: float = 0.0  # background jobs' compute charged so far (turn records carry the running total)
    job_gpu_s: float = 0.0


def _msg(data: dict) -> Message:
    return Message.model_validate(data)


def replay(records: list[dict]) -> Replay:
    """Rebuild the conversation (applying compactions) and the spend from transcript records."""
    out = Replay()
    prefix: list[Message] = []
    turns: dict[int, list[Message]] = {}
    for rec in records:
        kind = rec.get("type")
        if kind == "start":
            out.started = True
            prefix = [Message(role="system", content=rec["system_prompt"])]
            if rec.get("first_message"):
                prefix.append(Message(role="user", content=rec["first_message"]))
            turns = {}
        elif kind == "turn":
            step = int(rec["step"])
            turns[step] = turn_messages(_msg(rec["assistant"]), [_msg(m) for m in rec.get("tool_results", [])],
                                        rec.get("note"))
            usage = Usage.model_validate(rec.get("usage") or {})
            out.usage = out.usage + usage + Usage.model_validate(rec.get("tool_usage") or {})
            out.cost_usd += float(rec.get("cost_usd") or 0.0) + float(rec.get("tool_cost_usd") or 0.0)
            out.step = max(out.step, step)
            out.elapsed_s = float(rec.get("elapsed_s", out.elapsed_s))
            out.state.update(rec.get("state") or {})
            out.idle_replies = int(rec.get("idle_replies", 0))
            out.job_cpu_s = float(rec.get("job_cpu_s", out.job_cpu_s))
            out.job_gpu_s = float(rec.get("job_gpu_s", out.job_gpu_s))
            out.last_prompt_tokens = usage.total_input_tokens
            out.stopped, out.stop_detail = None, ""
        elif kind == "compaction":
            out.summary = rec["summary"]
            prefix = [prefix[0], compaction_message(rec["summary"], rec.get("notebook"))]
            kept_from = int(rec["kept_from_step"])
            turns = {s: m for s, m in turns.items() if s >= kept_from}
            out.usage = out.usage + Usage.model_validate(rec.get("usage") or {})
            out.cost_usd += float(rec.get("cost_usd") or 0.0)
            out.compactions += 1
            out.last_prompt_tokens = 0
        elif kind == "stop":
            out.stopped, out.stop_detail = rec.get("reason"), rec.get("detail", "")
            out.elapsed_s = float(rec.get("elapsed_s", out.elapsed_s))
    out.prefix, out.turns = prefix, turns
    out.messages = prefix + [m for step in sorted(turns) for m in turns[step]]
    return out


def rebuild_messages(records: list[dict]) -> list[Message]:
    """The conversation a transcript describes, ready to send to the model again."""
    return replay(records).messages
