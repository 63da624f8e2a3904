"""``LabClient``: the typed Python client of the lab server; every other package talks to the lab through it.

    client = LabClient("http://127.0.0.1:8321", token)
    result = client.submit("sst2", predictions, snapshot_id=snap.id)
    print(result.public_pgr, result.remaining_run)

Errors come back as :class:`LabError` carrying the server's status and message (a ``UserError``, so the CLI
prints it as one line and an agent's tool returns it to the model). Idempotent calls (GETs) are retried
on connection errors; writes are not, so a submission is never counted twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from aarlab.errors import UserError
from aarlab.server.schemas import (
    AgentCredentials,
    AgentInfo,
    Budget,
    Event,
    Flag,
    Health,
    Leaderboard,
    PendingVerification,
    Post,
    Score,
    SnapshotDiff,
    SnapshotInfo,
    SubmissionRecord,
    SubmissionResult,
    SubmissionSummary,
    TaskSummary,
    Verification,
    VoteResult,
)


class LabError(UserError):
    """The lab server refused a request (``status`` is the HTTP status, 0 when the server was unreachable)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"lab server: {message} (HTTP {status})" if status else f"lab server: {message}")
        self.status = status
        self.message = message


def _error_message(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in detail)
    return str(detail)


class LabClient:
    """A client bound to one lab server and one token (agent, admin or viewer)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0, retries: int = 3):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabClient({self.base_url!r})"

    # -- plumbing ------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw) -> httpx.Response:
        attempts = self.retries + 1 if method in ("GET", "HEAD", "PUT", "DELETE") else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, **kw)
                break
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if attempt + 1 >= attempts:
                    raise LabError(0, f"cannot reach {self.base_url}: {exc}") from None
                time.sleep(0.2 * 2**attempt)
            except httpx.TimeoutException as exc:
                raise LabError(0, f"{method} {path} timed out: {exc}") from None
        if response.status_code >= 400:
            raise LabError(response.status_code, _error_message(response))
        return response

    def _get(self, path: str, params: dict | None = None) -> Any:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        return self._request("GET", path, params=params).json()

    def _post(self, path: str, body: Any = None, params: dict | None = None) -> Any:
        # Encoded here rather than by httpx, which refuses NaN: the server then names the bad item.
        content = json.dumps(body, separators=(",", ":")).encode()
        return self._request("POST", path, content=content, params=params,
                             headers={"Content-Type": "application/json"}).json()

    # -- anyone --------------------------------------------------------------------------------------------
    def health(self) -> Health:
        return Health.model_validate(self._get("/api/health"))

    # -- admin ---------------------------------------------------------------------------------------------
    def create_agent(self, name: str, direction: str = "", token_ttl_s: float | None = None) -> AgentCredentials:
        """A new agent and its token (shown once); with ``token_ttl_s`` the token expires after that many seconds."""
        body = {"name": name, "direction": direction, **({"token_ttl_s": token_ttl_s} if token_ttl_s else {})}
        return AgentCredentials.model_validate(self._post("/api/admin/agents", body))

    def agents(self) -> list[AgentInfo]:
        return [AgentInfo.model_validate(a) for a in self._get("/api/admin/agents")]

    def revoke_agent(self, name: str) -> AgentInfo:
        """Revoke the agent's token: every later request with it is refused (401)."""
        return AgentInfo.model_validate(self._post(f"/api/admin/agents/{name}/revoke"))

    def new_agent_token(self, name: str, token_ttl_s: float | None = None) -> AgentCredentials:
        """Issue the agent a fresh token (optionally expiring after ``token_ttl_s``); the old one stops working."""
        params = {"token_ttl_s": token_ttl_s} if token_ttl_s else None
        return AgentCredentials.model_validate(self._post(f"/api/admin/agents/{name}/token", params=params))

    def register_task(self, task_dir: str | Path, name: str | None = None) -> TaskSummary:
        body = {"task_dir": str(Path(task_dir).resolve()), "name": name}
        return TaskSummary.model_validate(self._post("/api/admin/tasks", body))

    def submissions(self, since_id: int = 0, task: str | None = None, limit: int = 1000) -> list[SubmissionRecord]:
        data = self._get("/api/admin/submissions", {"since_id": since_id, "task": task, "limit": limit})
        return [SubmissionRecord.model_validate(s) for s in data]

    def score_heldout(self, task: str, predictions: Sequence[int], split: str = "heldout") -> Score:
        """Admin: score re-run predictions on the held-out test, or (``split="public"``) on the main split's
        public part, predictions covering the whole main test."""
        body = {"task": task, "predictions": list(predictions), "split": split}
        return Score.model_validate(self._post("/api/admin/score", body))

    def pending_verifications(self) -> list[PendingVerification]:
        return [PendingVerification.model_validate(v) for v in self._get("/api/admin/verifications", {"status": "pending"})]

    def verifications(self, status: str | None = None, post_id: int | None = None) -> list[Verification]:
        data = self._get("/api/admin/verifications", {"status": status, "post_id": post_id})
        return [Verification.model_validate(v["verification"]) for v in data]

    def record_verification(self, post_id: int, status: str, verified_pgr: float | None = None,
                            se: float | None = None, seeds: int | None = None, per_seed: list | None = None,
                            reason: str | None = None, details: dict | None = None) -> Verification:
        """Set a result post's verification: ``running`` when starting, ``done``/``failed`` with the numbers."""
        body = {"post_id": post_id, "status": status, "verified_pgr": verified_pgr, "se": se, "seeds": seeds,
                "per_seed": per_seed, "reason": reason, "details": details}
        return Verification.model_validate(self._post("/api/admin/verifications", body))

    def add_flag(self, detector: str, severity: str, summary: str, evidence: dict | None = None,
                 agent: str | None = None, post_id: int | None = None, submission_id: int | None = None,
                 snapshot_id: str | None = None, key: str | None = None) -> Flag:
        """Raise a flag; with ``key``, the same (detector, key) is stored once and returned again."""
        body = {"detector": detector, "severity": severity, "summary": summary, "evidence": evidence or {},
                "agent": agent, "post_id": post_id, "submission_id": submission_id, "snapshot_id": snapshot_id,
                "key": key}
        return Flag.model_validate(self._post("/api/admin/flags", body))

    def resolve_flag(self, flag_id: int, action: str, note: str | None = None) -> Flag:
        return Flag.model_validate(self._post(f"/api/admin/flags/{flag_id}/resolve", {"action": action, "note": note}))

    # -- viewers and agents --------------------------------------------------------------------------------
    def flags(self, status: str | None = None, agent: str | None = None, severity: str | None = None,
              detector: str | None = None) -> list[Flag]:
        data = self._get("/api/flags", {"status": status, "agent": agent, "severity": severity, "detector": detector})
        return [Flag.model_validate(f) for f in data]

    def tasks(self) -> list[TaskSummary]:
        return [TaskSummary.model_validate(t) for t in self._get("/api/eval/tasks")]

    def leaderboard(self, task: str | None = None, sort: str = "final") -> Leaderboard:
        return Leaderboard.model_validate(self._get("/api/leaderboard", {"task": task, "sort": sort}))

    # -- evaluation (agents) -------------------------------------------------------------------------------
    def submit(self, task: str, predictions: Sequence[int] | Sequence[Sequence[int]], snapshot_id: str | None = None,
               method: str | None = None) -> SubmissionResult:
        """Submit one seed's predictions (a list of label indices), or several seeds' (a list of such lists,
        1 to 10): the reply is the coarse public mean over the seeds with its seed SE and test SE."""
        runs = list(predictions)
        if runs and all(isinstance(run, list | tuple) for run in runs):
            body = {"task": task, "seed_predictions": [list(run) for run in runs]}
        else:
            body = {"task": task, "predictions": runs}
        body.update(snapshot_id=snapshot_id, method=method)
        return SubmissionResult.model_validate(self._post("/api/eval/submissions", body))

    def budget(self, task: str) -> Budget:
        return Budget.model_validate(self._get("/api/eval/budget", {"task": task}))

    def my_submissions(self, task: str | None = None) -> list[SubmissionSummary]:
        return [SubmissionSummary.model_validate(s) for s in self._get("/api/eval/submissions", {"task": task})]

    def submission(self, submission_id: int) -> SubmissionSummary:
        return SubmissionSummary.model_validate(self._get(f"/api/eval/submissions/{submission_id}"))

    # -- forum ---------------------------------------------------------------------------------------------
    def post(self, kind: str, title: str, body: str, tags: Sequence[str] = (), snapshot_id: str | None = None,
             metrics: dict | None = None, entry_point: str | None = None, task: str | None = None,
             submission_id: int | None = None) -> Post:
        """A forum post; a result names its ``snapshot_id``, ``entry_point``, ``metrics`` and, so that the
        leaderboard shows its own scores, the ``submission_id`` of the submission it reports."""
        payload = {"kind": kind, "title": title, "body": body, "tags": list(tags), "snapshot_id": snapshot_id,
                   "metrics": metrics, "entry_point": entry_point, "task": task}
        if submission_id is not None:
            payload["submission_id"] = submission_id
        return Post.model_validate(self._post("/api/forum/posts", payload))

    def reply(self, post_id: int, body: str) -> Post:
        return Post.model_validate(self._post(f"/api/forum/posts/{post_id}/replies", {"body": body}))

    def vote(self, post_id: int, value: int) -> VoteResult:
        return VoteResult.model_validate(self._post(f"/api/forum/posts/{post_id}/votes", {"value": value}))

    def posts(self, since: float | None = None, kind: str | None = None, tag: str | None = None,
              author: str | None = None, limit: int = 50, offset: int = 0, since_id: int | None = None) -> list[Post]:
        """Top-level posts, newest first; ``since`` (unix time) or ``since_id`` returns only newer ones."""
        params = {"since": since, "since_id": since_id, "kind": kind, "tag": tag, "author": author,
                  "limit": limit, "offset": offset}
        return [Post.model_validate(p) for p in self._get("/api/forum/posts", params)]

    def search(self, query: str, limit: int = 20) -> list[Post]:
        return [Post.model_validate(p) for p in self._get("/api/forum/search", {"q": query, "limit": limit})]

    def get_post(self, post_id: int) -> Post:
        return Post.model_validate(self._get(f"/api/forum/posts/{post_id}"))

    # -- snapshots -----------------------------------------------------------------------------------------
    def publish_snapshot(self, tar_bytes: bytes, message: str, parent: str | None = None) -> SnapshotInfo:
        params = {"message": message, **({"parent": parent} if parent else {})}
        response = self._request("POST", "/api/snapshots", content=tar_bytes, params=params,
                                 headers={"Content-Type": "application/x-tar"})
        return SnapshotInfo.model_validate(response.json())

    def fetch_snapshot(self, snapshot_id: str) -> bytes:
        return self._request("GET", f"/api/snapshots/{snapshot_id}.tar").content

    def snapshot_info(self, snapshot_id: str) -> SnapshotInfo:
        return SnapshotInfo.model_validate(self._get(f"/api/snapshots/{snapshot_id}"))

    def snapshots(self, author: str | None = None, limit: int = 50, offset: int = 0) -> list[SnapshotInfo]:
        data = self._get("/api/snapshots", {"author": author, "limit": limit, "offset": offset})
        return [SnapshotInfo.model_validate(s) for s in data]

    def snapshot_file(self, snapshot_id: str, path: str) -> bytes:
        return self._request("GET", f"/api/snapshots/{snapshot_id}/files/{path}").content

    def diff(self, a: str, b: str) -> SnapshotDiff:
        return SnapshotDiff.model_validate(self._get("/api/snapshots/diff", {"a": a, "b": b}))

    # -- events --------------------------------------------------------------------------------------------
    def events(self, last_event_id: int | None = None, kinds: Sequence[str] | None = None,
               timeout: float | None = None) -> Iterator[Event]:
        """Follow the server-sent event stream (blocking); ``last_event_id`` resumes after that event."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        params = {"kinds": ",".join(kinds)} if kinds else {}
        with self._http.stream("GET", "/api/events", headers=headers, params=params,
                               timeout=httpx.Timeout(timeout, connect=10.0)) as response:
            if response.status_code >= 400:
                response.read()
                raise LabError(response.status_code, _error_message(response))
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if not line:
                    if "data" in fields:
                        yield Event(id=int(fields.get("id", 0)), kind=fields.get("event", "message"),
                                    **_event_payload(fields["data"]))
                    fields = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(":")
                    fields[key] = value[1:] if value.startswith(" ") else value


def _event_payload(data: str) -> dict:
    doc = json.loads(data)
    return {"data": doc.get("data", {}), "created": doc.get("created", 0.0)}


__all__ = ["LabClient", "LabError"]
