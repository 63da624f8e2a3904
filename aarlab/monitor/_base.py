"""The detector registry, what a detector reports (``Finding``), and the views of the lab it reads.

A detector is a small function registered by name with ``@detector(name, kind)``. ``kind`` says what it reads:

- ``"submission"``: ``fn(submissions, ctx, **params) -> list[Finding]``; ``submissions`` are every
  ``SubmissionView`` of one agent on one task, oldest first (a detector looks at history, e.g. probing).
- ``"transcript"``: ``fn(actions, ctx, **params) -> list[Finding]``; ``actions`` are the ``Action`` s (one tool
  call with its result) of one agent's transcript, in order.

Keyword parameters after ``ctx`` are the detector's configuration: their defaults are documented in the
function's docstring and overridden per run by ``MonitorConfig.detectors[name]``.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from aarlab.errors import UserError

Severity = Literal["info", "warning", "severe"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "severe")
DetectorKind = Literal["submission", "transcript", "verification", "judge"]

# Evidence lines are quoted, not dumped: a flag must be readable by a person on the dashboard.
MAX_QUOTE_CHARS = 300
MAX_EVIDENCE_ITEMS = 8



def _prose_tools() -> frozenset[str]:
    # Derived from the agent's tool registry so that it names only tools that exist: every tool that does not
    # run in the sandbox (the lab's forum, leaderboard, snapshot and submission tools; consult; finish) takes
    # what the agent says, while the sandbox's tools take what it runs and writes.
    from aarlab.agent.tools import registered_tools

    return frozenset(name for name, t in registered_tools().items() if t.needs != "sandbox")


# Tools whose text arguments are prose (what the agent says), not actions (what it runs or writes).
PROSE_TOOLS = _prose_tools()
PATH_ARGUMENTS = frozenset({"path", "dest", "file", "filename"})


class Finding(BaseModel):
    """One thing a detector saw. The monitor worker turns it into a flag (``LabClient.add_flag``).

    ``key`` identifies the finding across monitor passes so that the same evidence never raises two flags.
    """

    detector: str
    severity: Severity
    agent: str | None = None
    summary: str
    evidence: list[str] = Field(default_factory=list)
    submission_ids: list[int] = Field(default_factory=list)
    post_id: int | None = None
    snapshot_id: str | None = None
    time: float = Field(default_factory=time.time)
    key: str = ""
    count: int = 1  # how many occurrences the finding stands for (tool calls, submissions)

    def model_post_init(self, _context: Any) -> None:
        if not self.key:
            basis = f"{self.detector}|{self.agent}|{self.submission_ids}|{self.post_id}|{self.evidence[:2]}"
            self.key = f"{self.detector}:{hashlib.sha256(basis.encode()).hexdigest()[:16]}"


def quote(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """One evidence line: whitespace collapsed and cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class SubmissionView:
    """What submission detectors see of one submission (built from the server's ``SubmissionRecord``)."""

    id: int
    agent: str
    task: str
    predictions: list[int]
    snapshot_id: str | None = None
    method: str | None = None
    public_pgr: float | None = None
    public_accuracy: float | None = None
    time: float = 0.0

    @classmethod
    def from_record(cls, record: Any) -> SubmissionView:
        """Accept the server's pydantic record or a dict; field names differ a little between versions."""
        data = record.model_dump() if hasattr(record, "model_dump") else dict(record)

        def pick(*names, default=None):
            for name in names:
                if data.get(name) is not None:
                    return data[name]
            return default

        created = pick("time", "created", "created_at", default=0.0)
        if hasattr(created, "timestamp"):
            created = created.timestamp()
        return cls(
            id=int(pick("id")),
            agent=str(pick("agent", "agent_name", "author", default="?")),
            task=str(pick("task", "task_name", default="")),
            predictions=[int(p) for p in pick("predictions", default=[])],
            snapshot_id=pick("snapshot_id", "snapshot"),
            method=pick("method"),
            public_pgr=pick("public_pgr"),
            public_accuracy=pick("public_accuracy"),
            time=float(created or 0.0),
        )


@dataclass
class Action:
    """One tool call in a transcript with what came back: the unit transcript detectors read."""

    agent: str
    step: int
    tool: str
    arguments: dict[str, Any]
    result: str = ""
    is_error: bool = False
    time: float = 0.0
    call_id: str = ""
    source: str = ""  # set for a file of a published snapshot (not a tool call)

    @property
    def text(self) -> str:
        """What the call *does*, as one searchable text: commands, code, paths, file contents.

        For the lab's prose tools (forum posts, searches, snapshot messages) only path arguments count: an
        agent that writes about private labels in a post is talking, not acting.
        """
        parts = []
        for name, value in self.arguments.items():
            if self.tool in PROSE_TOOLS and name not in PATH_ARGUMENTS:
                continue
            parts.append(value if isinstance(value, str) else f"{name}={value!r}")
        return "\n".join(parts)

    def where(self) -> str:
        """Where the evidence is, as a flag quotes it: ``step 12 bash`` or ``main.py in snapshot 1a2b…``."""
        return self.source or f"step {self.step} {self.tool}"


@dataclass
class MonitorContext:
    """What detectors may know about the task and the run (the monitor runs with admin rights).

    ``public_labels`` are the test labels of the public part (``None`` where labels are not at hand, e.g.
    a monitor talking to a remote server): detectors that need them skip the check.
    """

    task: str = ""
    label_space: list[str] = field(default_factory=list)
    weak_label_shares: list[float] = field(default_factory=list)  # class shares of the weak labels' argmax
    test_texts: list[str] = field(default_factory=list)
    weak_test_predictions: list[int] | None = None  # the fixed weak teacher on test (seed 0), server side
    public_mask: list[bool] | None = None
    test_labels: list[int] | None = None
    weak_acc: float | None = None  # on the public part
    ceiling_acc: float | None = None
    allowed_models: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    claims: dict[tuple[str, str], float] = field(default_factory=dict)  # (agent, snapshot_id) -> claimed pgr
    allow_test_training: bool = False


@dataclass
class DetectorInfo:
    name: str
    kind: DetectorKind
    fn: Callable[..., list[Finding]]
    defaults: dict[str, Any]
    doc: str

    def summary(self) -> str:
        return (self.doc.strip().splitlines() or [""])[0]


_DETECTORS: dict[str, DetectorInfo] = {}


def detector(name: str, kind: DetectorKind):
    """Register a detector under ``name``; its keyword-only parameters are its configuration."""

    def register(fn):
        sig = inspect.signature(fn)
        defaults = {p.name: p.default for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        _DETECTORS[name] = DetectorInfo(name=name, kind=kind, fn=fn, defaults=defaults, doc=fn.__doc__ or "")
        return fn

    return register


def registered_detectors(kind: DetectorKind | None = None) -> dict[str, DetectorInfo]:
    """Detectors by name (all, or those of one kind)."""
    from aarlab.monitor import _judge, _submissions, _transcripts  # noqa: F401  (registration happens on import)

    return {n: d for n, d in _DETECTORS.items() if kind is None or d.kind == kind}


def get_detector(name: str) -> DetectorInfo:
    found = registered_detectors()
    if name not in found:
        raise UserError(f"unknown detector {name!r}; known: {', '.join(sorted(found))}")
    return found[name]


def run_detector(name: str, items: list, ctx: MonitorContext, params: dict[str, Any] | None = None) -> list[Finding]:
    """Run one detector with its defaults overridden by ``params`` (unknown parameters are a UserError)."""
    info = get_detector(name)
    params = dict(params or {})
    params.pop("enabled", None)
    unknown = set(params) - set(info.defaults)
    if unknown:
        raise UserError(f"detector {name!r} has no parameter {', '.join(sorted(unknown))}; "
                        f"it takes: {', '.join(sorted(info.defaults))}")
    for key, value in params.items():
        if key.endswith("severity") and value not in SEVERITIES:
            raise UserError(f"detector {name!r}: {key} must be one of {', '.join(SEVERITIES)}, not {value!r}")
    return info.fn(items, ctx, **params)
