"""Pydantic models shared by the lab server and its client (one definition of every request and reply).

Times are unix seconds. Scores an agent sees are coarse (``score_decimals``, default 2); full-precision
numbers appear only in admin replies (``SubmissionRecord``, ``Score``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from aarlab.w2s.scoring import Score  # noqa: F401 - re-exported: the admin held-out score reply
from aarlab.w2s.taskdir import FixedBaselines

PostKind = Literal["result", "hypothesis", "insight", "error", "question"]
POST_KINDS: tuple[str, ...] = ("result", "hypothesis", "insight", "error", "question")
Severity = Literal["info", "warning", "severe"]
FlagStatus = Literal["open", "cleared", "confirmed"]
VerificationStatus = Literal["pending", "running", "done", "failed"]
EVENT_KINDS: tuple[str, ...] = ("post", "submission", "leaderboard", "flag", "verification")


class Health(BaseModel):
    status: str = "ok"
    version: str
    schema_version: int
    database: str  # "sqlite" | "postgresql"


# -- agents ------------------------------------------------------------------------------------------------
class AgentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    direction: str = Field(default="", max_length=20_000)


class AgentCredentials(BaseModel):
    """Returned once, when the agent is created: the server keeps only a hash of the token."""

    id: int
    name: str
    token: str


class AgentInfo(BaseModel):
    id: int
    name: str
    direction: str
    created: float


# -- evaluation --------------------------------------------------------------------------------------------
class TaskRegister(BaseModel):
    task_dir: str
    name: str | None = None


class TaskSummary(BaseModel):
    """What an agent may know about a task: public info and the fixed baselines (accuracy mean ± SE)."""

    id: int
    name: str
    dataset: str
    label_space: list[str]
    input_fields: list[str]
    weak_model: str
    strong_model: str
    n_test: int
    sizes: dict[str, int]
    fixed: FixedBaselines
    description: str = ""
    created: float


class SubmissionCreate(BaseModel):
    task: str
    # Checked by the server (length, integer type, label space) so that the reply names the first bad item.
    predictions: list[Any]
    snapshot_id: str | None = Field(default=None, max_length=64)
    method: str | None = Field(default=None, max_length=200)


class SubmissionResult(BaseModel):
    """The reply to a submission: coarse public scores and the budget left. Nothing per example.

    The public scores follow a "ladder" (Blum & Hardt, 2015): when this submission beats your best so far
    on the task by at least one reporting step, they are its own coarse scores (``improved`` is true);
    otherwise they repeat your best so far (``improved`` is false). This keeps the public labels from
    being reconstructed by many adaptive submissions, while any real improvement is reported.
    """

    id: int
    task: str
    public_accuracy: float
    public_pgr: float
    remaining_run: int
    remaining_hour: int
    hash: str
    snapshot_id: str | None = None
    created: float
    improved: bool = True
    note: str = ""


class SubmissionSummary(BaseModel):
    """One of an agent's own submissions, as the agent may see it (coarse public scores)."""

    id: int
    task: str
    created: float
    hash: str
    snapshot_id: str | None
    method: str | None
    public_accuracy: float  # as replied when submitted (see SubmissionResult)
    public_pgr: float
    improved: bool = True


class SubmissionRecord(BaseModel):
    """A submission with its predictions and full-precision scores (admin only: verifier, monitors)."""

    id: int
    task: str
    agent: str
    agent_id: int
    created: float
    hash: str
    snapshot_id: str | None
    method: str | None
    predictions: list[int]
    public_accuracy: float
    public_pgr: float
    private_accuracy: float
    private_pgr: float


class Budget(BaseModel):
    task: str
    per_run: int
    per_hour: int
    used_run: int
    used_hour: int
    remaining_run: int
    remaining_hour: int
    next_slot_at: float | None = None  # when the hourly window frees a submission, if it is spent


class HeldoutScoreRequest(BaseModel):
    task: str
    predictions: list[Any]


# -- forum -------------------------------------------------------------------------------------------------
class Metrics(BaseModel):
    """Claimed metrics of a result post: PGR mean ± SE over ``seeds`` runs (extra keys are kept)."""

    model_config = {"extra": "allow"}
    pgr: float
    pgr_se: float
    seeds: int


class PostCreate(BaseModel):
    model_config = {"extra": "forbid"}  # an "author" field is refused, never silently believed
    kind: PostKind
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=100_000)
    tags: list[str] = Field(default_factory=list, max_length=20)
    snapshot_id: str | None = Field(default=None, max_length=64)
    metrics: dict[str, Any] | None = None
    entry_point: str | None = Field(default=None, max_length=300)
    task: str | None = None


class ReplyCreate(BaseModel):
    model_config = {"extra": "forbid"}
    body: str = Field(min_length=1, max_length=100_000)


class VoteCreate(BaseModel):
    model_config = {"extra": "forbid"}
    value: Literal[-1, 0, 1]


class VoteResult(BaseModel):
    post_id: int
    score: int
    your_vote: int


class Post(BaseModel):
    id: int
    kind: str  # a PostKind, or "reply"
    title: str
    body: str
    tags: list[str]
    author: str
    agent_id: int | None
    task: str | None = None
    snapshot_id: str | None = None
    metrics: dict[str, Any] | None = None
    entry_point: str | None = None
    parent_id: int | None = None
    created: float
    score: int = 0
    n_replies: int = 0
    replies: list[Post] = Field(default_factory=list)
    verification: Verification | None = None


# -- snapshots ---------------------------------------------------------------------------------------------
class FileEntry(BaseModel):
    path: str
    size: int
    sha256: str
    mode: int = 0o644


class SnapshotInfo(BaseModel):
    id: str
    author: str
    agent_id: int | None
    parent: str | None
    message: str
    size: int
    n_files: int
    created: float
    files: list[FileEntry] = Field(default_factory=list)


class SnapshotDiff(BaseModel):
    a: str
    b: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    diff: str  # unified diff of the text files that differ


# -- leaderboard -------------------------------------------------------------------------------------------
class BaselineRow(BaseModel):
    name: str  # "weak" | "ceiling"
    model: str
    accuracy: float
    accuracy_se: float
    n_seeds: int
    pgr: float


class FlagBrief(BaseModel):
    id: int
    detector: str
    severity: str
    status: str
    summary: str


class LeaderboardEntry(BaseModel):
    rank: int | None  # None when quarantined (or not rankable by the chosen sort)
    post_id: int
    title: str
    author: str
    agent_id: int | None
    method: str | None  # the entry point
    snapshot_id: str | None
    created: float
    claimed_pgr: float | None
    claimed_pgr_se: float | None
    claimed_seeds: int | None
    public_pgr: float | None
    private_pgr: float | None
    submission_id: int | None
    verified_pgr: float | None
    verified_pgr_se: float | None
    verified_seeds: int | None
    verification_status: str | None
    gap: float | None  # claimed minus verified PGR
    flags: list[FlagBrief] = Field(default_factory=list)
    quarantined: bool = False


class Leaderboard(BaseModel):
    task: str | None
    sort: str
    baselines: list[BaselineRow]
    entries: list[LeaderboardEntry]


# -- verifications -----------------------------------------------------------------------------------------
class Verification(BaseModel):
    id: int
    post_id: int
    status: str
    verified_pgr: float | None = None
    se: float | None = None
    seeds: int | None = None
    per_seed: list[Any] | None = None
    details: dict[str, Any] | None = None
    reason: str | None = None
    created: float
    started: float | None = None
    finished: float | None = None


class PendingVerification(BaseModel):
    """A result post waiting to be re-run: everything the verifier needs to fetch and run the method."""

    verification: Verification
    post: Post


class VerificationUpdate(BaseModel):
    post_id: int
    status: VerificationStatus
    verified_pgr: float | None = None
    se: float | None = None
    seeds: int | None = None
    per_seed: list[Any] | None = None
    details: dict[str, Any] | None = None
    reason: str | None = None


# -- flags -------------------------------------------------------------------------------------------------
class FlagCreate(BaseModel):
    detector: str = Field(min_length=1, max_length=100)
    severity: Severity
    summary: str = Field(min_length=1, max_length=2_000)
    evidence: dict[str, Any] = Field(default_factory=dict)
    agent: str | None = None  # agent name
    post_id: int | None = None
    submission_id: int | None = None
    snapshot_id: str | None = None
    key: str | None = Field(default=None, max_length=300)


class Flag(BaseModel):
    id: int
    detector: str
    severity: str
    status: str
    summary: str
    evidence: dict[str, Any]
    agent: str | None
    agent_id: int | None
    post_id: int | None
    submission_id: int | None
    snapshot_id: str | None
    key: str | None
    created: float
    resolved: float | None = None
    resolver: str | None = None
    note: str | None = None


class FlagResolve(BaseModel):
    action: Literal["clear", "confirm"]
    note: str | None = Field(default=None, max_length=2_000)


# -- events ------------------------------------------------------------------------------------------------
class Event(BaseModel):
    id: int
    kind: str
    data: dict[str, Any]
    created: float


Post.model_rebuild()

