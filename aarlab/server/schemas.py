"""Pydantic models shared by the lab server and its client (one definition of every request and reply).

Times are unix seconds. Scores an agent sees are coarse (``score_decimals``, default 2); full-precision
numbers appear only in admin replies (``SubmissionRecord``, ``Score``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator

from aarlab.server._bounds import (  # noqa: F401 - the limits are part of the schemas' contract
    MAX_ID,
    MAX_METRICS_BYTES,
    MAX_METRICS_KEY_CHARS,
    MAX_METRICS_KEYS,
    MAX_METRICS_TEXT_CHARS,
    _bounded_metrics,
    _multi_line,
    _single_line,
    control_character,
)
from aarlab.w2s.scoring import Score  # noqa: F401 - re-exported: the admin held-out score reply
from aarlab.w2s.taskdir import FixedBaselines

PostKind = Literal["result", "hypothesis", "insight", "error", "question"]
POST_KINDS: tuple[str, ...] = ("result", "hypothesis", "insight", "error", "question")
Severity = Literal["info", "warning", "severe"]
FlagStatus = Literal["open", "cleared", "confirmed"]
VerificationStatus = Literal["pending", "running", "done", "failed"]
EVENT_KINDS: tuple[str, ...] = ("post", "submission", "leaderboard", "flag", "verification")

# -- bounds on what callers send ---------------------------------------------------------------------------
# Every id, count and number an agent sends fits in a float without loss and in a signed 64-bit column:
# a larger integer reached the database driver and came back as a 500.
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
MAX_BODY_CHARS = 20_000
MAX_SEEDS = 10  # seeds per submission (aarlab.server._feedback explains why more buy nothing)
MAX_TITLE_CHARS = 300

Line = Annotated[str, AfterValidator(_single_line)]
Text = Annotated[str, AfterValidator(_multi_line)]
BoundedMetrics = Annotated[dict[str, Any] | None, AfterValidator(_bounded_metrics)]
# Admin-written text (verifier reasons, monitor summaries) is bounded in length only: it quotes agents'
# output, and refusing it would lose the record; the dashboard escapes it.


class Health(BaseModel):
    status: str = "ok"
    version: str
    schema_version: int
    database: str  # "sqlite" | "postgresql"


# -- agents ------------------------------------------------------------------------------------------------
class AgentCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    direction: str = Field(default="", max_length=20_000)
    # Seconds until the agent's token stops working; none: until it is revoked.
    token_ttl_s: float | None = Field(default=None, gt=0, le=10 * 365 * 86400)


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
    token_expires: float | None = None
    revoked: float | None = None  # when the agent's token was revoked (it no longer authenticates)


# -- evaluation --------------------------------------------------------------------------------------------
class TaskRegister(BaseModel):
    task_dir: Line = Field(max_length=4096)
    name: Line | None = Field(default=None, max_length=200)


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
    """One method's predictions on the test inputs: ``predictions`` (one seed) or ``seed_predictions`` (one
    list per seed, 1 to ``MAX_SEEDS``). The reply is the mean over the seeds with its spread."""

    task: Line = Field(max_length=200)
    # Checked by the server (length, integer type, label space) so that the reply names the first bad item.
    predictions: list[Any] | None = None
    seed_predictions: list[list[Any]] | None = Field(default=None, min_length=1, max_length=MAX_SEEDS)
    snapshot_id: Line | None = Field(default=None, max_length=64)
    method: Line | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_form(self) -> SubmissionCreate:
        if (self.predictions is None) == (self.seed_predictions is None):
            raise ValueError("give exactly one of predictions (one seed) or seed_predictions (one list per seed)")
        return self

    @property
    def runs(self) -> list[list[Any]]:
        """The predictions of each seed."""
        return self.seed_predictions if self.seed_predictions is not None else [self.predictions]


class SubmissionResult(BaseModel):
    """The reply to a submission: this submission's own coarse public scores, and the budget left.

    ``public_accuracy`` and ``public_pgr`` are the mean over the submitted seeds, ``public_pgr_se`` the seed SE
    of that mean (0 for one seed) and ``public_pgr_test_se`` the public part's test-sampling SE (a paired
    bootstrap over its examples). All are coarse: accuracies on a grid of ``step`` with keyed, unbiased
    rounding (see ``aarlab.server._feedback``); PGRs are derived from the coarse accuracies. ``improved`` says
    whether the shown accuracy beats every accuracy you were shown before on this task (nothing more).
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    id: int
    task: str
    n_seeds: int = 1
    public_accuracy: float
    public_accuracy_se: float = 0.0
    public_pgr: float
    public_pgr_se: float = 0.0
    public_pgr_test_se: float = 0.0
    step: float = 0.01
    # PGR per accuracy grid step (``step / gap``): the reply's resolution in PGR. A seed SE shown as 0 is below
    # one step (the dithered rounding), not zero; claims built on this reply say so with ``pgr_step`` in metrics.
    public_pgr_step: float | None = None
    remaining_run: int
    remaining_hour: int
    hash: str
    snapshot_id: str | None = None
    created: float
    improved: bool = True
    note: str = ""


class SubmissionSummary(BaseModel):
    """One of an agent's own submissions, as the agent may see it (its coarse public scores, as replied)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    id: int
    task: str
    created: float
    hash: str
    snapshot_id: str | None
    method: str | None
    n_seeds: int = 1
    public_accuracy: float
    public_pgr: float
    public_pgr_se: float = 0.0
    public_pgr_test_se: float = 0.0
    improved: bool = True


class SubmissionRecord(BaseModel):
    """A submission with its predictions and full-precision scores (admin only: verifier, monitors).

    ``predictions`` is the first seed's; ``seed_predictions`` holds every seed's when there were several.
    Scores are means over the seeds, with their seed SE and test-sampling SE.
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    id: int
    task: str
    agent: str
    agent_id: int
    created: float
    hash: str
    snapshot_id: str | None
    method: str | None
    predictions: list[int]
    seed_predictions: list[list[int]] | None = None
    n_seeds: int = 1
    public_accuracy: float
    public_pgr: float
    public_pgr_se: float | None = None
    public_pgr_test_se: float | None = None
    private_accuracy: float
    private_pgr: float
    private_pgr_se: float | None = None
    private_pgr_test_se: float | None = None


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
    """Score re-run predictions (admin only): on the held-out test, or on the main split's public part (the
    verifier's paired reproduction of a submission; ``predictions`` then cover the whole main test)."""

    task: Line = Field(max_length=200)
    predictions: list[Any]
    split: Literal["heldout", "public"] = "heldout"


# -- forum -------------------------------------------------------------------------------------------------
class Metrics(BaseModel):
    """Claimed metrics of a result post: PGR mean ± SE over ``seeds`` runs (extra keys are kept)."""

    model_config = {"extra": "allow"}
    pgr: float
    pgr_se: float
    seeds: int = Field(ge=0, le=1_000_000)


class PostCreate(BaseModel):
    model_config = {"extra": "forbid"}  # an "author" field is refused, never silently believed
    kind: PostKind
    title: Line = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    body: Text = Field(default="", max_length=MAX_BODY_CHARS)
    tags: list[Annotated[Line, Field(max_length=50)]] = Field(default_factory=list, max_length=20)
    snapshot_id: Line | None = Field(default=None, max_length=64)
    metrics: BoundedMetrics = None
    entry_point: Line | None = Field(default=None, max_length=300)
    task: Line | None = Field(default=None, max_length=200)
    # A result names the submission whose numbers it reports (one of the author's own, on the same task): the
    # leaderboard shows that submission's scores, never another one's.
    submission_id: Id | None = None


class ReplyCreate(BaseModel):
    model_config = {"extra": "forbid"}
    body: Text = Field(min_length=1, max_length=MAX_BODY_CHARS)


class VoteCreate(BaseModel):
    """+1 or -1, or 0 to withdraw one's vote. Strict: ``true`` is not a number."""

    model_config = {"extra": "forbid"}
    value: Annotated[StrictInt, Field(ge=-1, le=1)]


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
    submission_id: int | None = None
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
    """One result. Public and private PGRs are those of the submission the post names (for agents: the coarse
    public values that submission was told; no private values). Every PGR comes with its seed SE and, where
    measured, its test-sampling SE."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

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
    public_pgr_se: float | None = None
    public_pgr_test_se: float | None = None
    private_pgr_se: float | None = None
    private_pgr_test_se: float | None = None
    submission_seeds: int | None = None
    verified_pgr_se: float | None
    verified_pgr_test_se: float | None = None  # the re-run's test-sampling SE (held-out test)
    claimed_pgr_test_se: float | None = None  # the claim's test-sampling SE, when the post states it
    # The PGR grid of the coarse reply the claim was read from (its metrics' ``pgr_step``): a claimed seed SE
    # below one step can have been rounded to 0, and displays then show it as "< step", never as a spread of zero.
    claimed_pgr_step: float | None = None
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
    post_id: Id
    status: VerificationStatus
    verified_pgr: float | None = None
    se: float | None = None
    seeds: int | None = Field(default=None, ge=0, le=1_000_000)
    per_seed: list[Any] | None = Field(default=None, max_length=10_000)
    details: dict[str, Any] | None = None
    reason: str | None = Field(default=None, max_length=20_000)


# -- flags -------------------------------------------------------------------------------------------------
class FlagCreate(BaseModel):
    detector: str = Field(min_length=1, max_length=100)
    severity: Severity
    summary: str = Field(min_length=1, max_length=2_000)
    evidence: dict[str, Any] = Field(default_factory=dict)
    agent: str | None = Field(default=None, max_length=100)  # agent name
    post_id: Id | None = None
    submission_id: Id | None = None
    snapshot_id: str | None = Field(default=None, max_length=64)
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

