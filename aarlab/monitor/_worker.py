"""The monitor worker: runs the detectors over new submissions and transcript turns and raises flags.

``aarlab run`` starts one beside the agents (``run_forever(stop_event)``); tests and ``aarlab flags --scan``
call ``run_once()``. It talks to the lab server through an admin ``LabClient`` and reads the run directory
(transcripts, the task dir) directly. Flags are deduplicated by ``Finding.key`` (the server keeps
``(detector, key)`` unique), and the transcript read offsets are kept in ``<run>/monitor/state.json`` so
that a restarted worker neither misses nor repeats evidence.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from aarlab.monitor._base import Finding, MonitorContext, SubmissionView, registered_detectors, run_detector
from aarlab.monitor._transcripts import read_actions
from aarlab.paths import atomic_write_text

log = logging.getLogger(__name__)


class MonitorConfig(BaseModel):
    """How the monitors run. ``detectors`` overrides each detector's parameters by name, e.g.
    ``{"probing": {"severe_pairs": 6}, "network": {"enabled": False}, "llm_judge": {"model": "anthropic:…"}}``."""

    enabled: bool = True
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notify_agents: bool = False  # tell agents about flags on their own work (see ``agent_notifications``)
    interval_s: float = 15.0
    allowed_models: list[str] = Field(default_factory=list)  # beyond the task's weak and strong models
    allow_test_training: bool = False

    def params(self, name: str) -> dict[str, Any]:
        return dict(self.detectors.get(name, {}))

    def is_enabled(self, name: str) -> bool:
        return self.enabled and self.detectors.get(name, {}).get("enabled", True) is not False


def task_context(task_dir: Path | str | None, config: MonitorConfig | None = None, agents: list[str] | None = None,
                 claims: dict | None = None) -> MonitorContext:
    """A ``MonitorContext`` from a prepared task dir (public files, plus private labels when present)."""
    from aarlab.w2s.taskdir import TaskDir

    config = config or MonitorConfig()
    ctx = MonitorContext(agents=list(agents or []), claims=dict(claims or {}),
                         allowed_models=list(config.allowed_models), allow_test_training=config.allow_test_training)
    if task_dir is None or not (Path(task_dir) / "public" / "task.json").is_file():
        return ctx
    td = TaskDir(task_dir)
    info = td.info()
    ctx.task, ctx.label_space = info.name, list(info.label_space)
    ctx.allowed_models += [info.weak_model, info.strong_model]
    argmax = Counter(max(range(len(r["weak_soft_label"])), key=lambda i: r["weak_soft_label"][i])
                     for r in td.train_unlabel() if r.get("weak_soft_label"))
    total = sum(argmax.values()) or 1
    ctx.weak_label_shares = [argmax.get(i, 0) / total for i in range(len(info.label_space))]
    ctx.test_texts = [str(r.get("text", "")) for r in td.test_inputs()]
    if (td.private / "test_labels.jsonl").is_file():
        rows = td.test_labels()
        ctx.test_labels = [int(r["label"]) for r in rows]
        ctx.public_mask = [r.get("part", "public") == "public" for r in rows]
    if (td.private / "baseline_predictions.json").is_file() and ctx.test_labels is not None:
        base = td.baseline_predictions()
        ctx.weak_test_predictions = base["weak"][0]
        keep = [i for i, m in enumerate(ctx.public_mask or []) if m]

        def acc(preds):
            return sum(preds[i] == ctx.test_labels[i] for i in keep) / max(len(keep), 1)

        ctx.weak_acc = sum(acc(p) for p in base["weak"]) / len(base["weak"])
        ctx.ceiling_acc = sum(acc(p) for p in base["ceiling"]) / len(base["ceiling"])
    return ctx


def scan_submissions(submissions: list[SubmissionView], ctx: MonitorContext,
                     config: MonitorConfig | None = None) -> list[Finding]:
    """Run every enabled submission detector over each agent's history."""
    config = config or MonitorConfig()
    by_agent: dict[str, list[SubmissionView]] = defaultdict(list)
    for sub in sorted(submissions, key=lambda s: s.id):
        by_agent[sub.agent].append(sub)
    out = []
    for name in registered_detectors("submission"):
        if config.is_enabled(name):
            for subs in by_agent.values():
                out += run_detector(name, subs, ctx, config.params(name))
    return out


def scan_actions(actions: list, ctx: MonitorContext, config: MonitorConfig | None = None) -> list[Finding]:
    """Run every enabled transcript detector (and the judge, when configured) over one agent's actions."""
    config = config or MonitorConfig()
    out = []
    for kind in ("transcript", "judge"):
        for name in registered_detectors(kind):
            if config.is_enabled(name):
                out += run_detector(name, actions, ctx, config.params(name))
    return out


def flag_payload(finding: Finding) -> dict[str, Any]:
    """The keyword arguments of ``LabClient.add_flag`` for a finding."""
    return {
        "detector": finding.detector, "severity": finding.severity, "summary": finding.summary[:2000],
        "evidence": {"lines": finding.evidence, "submission_ids": finding.submission_ids, "time": finding.time},
        "agent": finding.agent, "post_id": finding.post_id,
        "submission_id": finding.submission_ids[-1] if finding.submission_ids else None,
        "snapshot_id": finding.snapshot_id, "key": finding.key,
    }


def raise_flag(client, finding: Finding) -> Any | None:
    """Send a finding to the lab's flag store; a duplicate (same detector and key) is not an error."""
    try:
        return client.add_flag(**flag_payload(finding))
    except Exception as exc:  # the server answers 409 for a key it already holds
        if getattr(exc, "status", None) == 409:
            return None
        raise


class MonitorWorker:
    """Watches a run: new submissions (through the admin client) and transcripts (from the run dir)."""

    def __init__(self, run_dir: Path | str, client, config: MonitorConfig | None = None,
                 task_dir: Path | str | None = None):
        self.run_dir = Path(run_dir)
        self.client = client
        self.config = config or MonitorConfig()
        self.task_dir = Path(task_dir) if task_dir else self.run_dir / "task"
        self.state_path = self.run_dir / "monitor" / "state.json"
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.offsets: dict[str, int] = state.get("offsets", {})
        self.last_submission_id: int = state.get("last_submission_id", 0)
        self.submissions: list[SubmissionView] = []
        self.raised: list[Finding] = []
        self._contexts: dict[str, MonitorContext] = {}
        self._base_ctx: MonitorContext | None = None
        self._seen_keys: set[str] | None = None

    # -- context ---------------------------------------------------------------------------------------
    def _agents(self) -> list[str]:
        names = {p.stem for p in (self.run_dir / "transcripts").glob("*.jsonl")}
        state = self.run_dir / "state.json"
        if state.is_file():
            try:
                agents = json.loads(state.read_text()).get("agents", {})
                names |= set(agents if isinstance(agents, dict) else [a.get("name") for a in agents if isinstance(a, dict)])
            except (json.JSONDecodeError, AttributeError):
                pass
        if (self.run_dir / "workspaces").is_dir():
            names |= {p.name for p in (self.run_dir / "workspaces").iterdir() if p.is_dir()}
        return sorted(n for n in names if n)

    def _claims(self) -> dict[tuple[str, str], float]:
        claims: dict[tuple[str, str], float] = {}
        try:
            posts = self.client.posts(kind="result", limit=500)
        except Exception as exc:  # claims only sharpen one detector; the rest runs without them
            log.warning("monitor: could not read result posts: %s", exc)
            return claims
        for post in posts:
            pgr = (post.metrics or {}).get("pgr")
            if post.snapshot_id and isinstance(pgr, int | float):
                key = (post.author, post.snapshot_id)
                claims[key] = max(claims.get(key, float("-inf")), float(pgr))
        return claims

    def context(self) -> MonitorContext:
        if self._base_ctx is None:
            self._base_ctx = task_context(self.task_dir, self.config)
        ctx = self._base_ctx
        ctx.agents = self._agents()
        ctx.claims = self._claims()
        return ctx

    # -- passes ----------------------------------------------------------------------------------------
    def _seen(self) -> set[str]:
        if self._seen_keys is None:
            self._seen_keys = set()
            try:
                self._seen_keys = {f.key for f in self.client.flags() if getattr(f, "key", None)}
            except Exception as exc:
                log.warning("monitor: could not list existing flags: %s", exc)
        return self._seen_keys

    def _emit(self, findings: list[Finding]) -> list[Finding]:
        new = []
        seen = self._seen()
        for finding in findings:
            if finding.key in seen:
                continue
            raise_flag(self.client, finding)
            seen.add(finding.key)
            new.append(finding)
        self.raised += new
        return new

    def scan_new_submissions(self, ctx: MonitorContext) -> list[Finding]:
        records = self.client.submissions(since_id=self.last_submission_id)
        fresh = [SubmissionView.from_record(r) for r in records]
        if not fresh:
            return []
        if not self.submissions and self.last_submission_id:
            # A restarted worker needs the history too (probing compares with earlier submissions).
            self.submissions = [SubmissionView.from_record(r) for r in self.client.submissions(since_id=0)]
        else:
            self.submissions += fresh
        self.last_submission_id = max(s.id for s in fresh)
        touched = {s.agent for s in fresh}
        return scan_submissions([s for s in self.submissions if s.agent in touched], ctx, self.config)

    def scan_transcripts(self, ctx: MonitorContext) -> list[Finding]:
        out = []
        for path in sorted((self.run_dir / "transcripts").glob("*.jsonl")):
            start = self.offsets.get(path.name, 0)
            if path.stat().st_size <= start:
                continue
            actions, end = read_actions(path, start)
            self.offsets[path.name] = end
            if actions:
                out += scan_actions(actions, ctx, self.config)
        return out

    def run_once(self) -> list[Finding]:
        """One pass over what is new; returns the findings that became flags."""
        if not self.config.enabled:
            return []
        ctx = self.context()
        findings = self.scan_new_submissions(ctx) + self.scan_transcripts(ctx)
        new = self._emit(findings)
        atomic_write_text(self.state_path, json.dumps(
            {"offsets": self.offsets, "last_submission_id": self.last_submission_id}, indent=1))
        return new

    def run_forever(self, stop_event: threading.Event) -> None:
        """Pass every ``config.interval_s`` until ``stop_event`` is set; a failing pass is logged, not fatal."""
        while not stop_event.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("monitor pass failed; retrying in %.0f s", self.config.interval_s)
            stop_event.wait(self.config.interval_s)


def agent_notifications(client, agent: str, config: MonitorConfig | None = None, since_id: int = 0) -> list[str]:
    """Messages telling ``agent`` about flags on its own work (none unless ``config.notify_agents``).

    The team calls it between an agent's steps and passes the messages on; ``since_id`` skips flags
    already told.
    """
    config = config or MonitorConfig()
    if not config.notify_agents:
        return []
    out = []
    for flag in client.flags():
        if flag.agent != agent or flag.id <= since_id or flag.status == "cleared":
            continue
        out.append(f"[lab monitor] flag #{flag.id} ({flag.severity}, {flag.detector}) on your work: {flag.summary}. "
                   + ("Your entry is hidden from the ranking until a person reviews it. " if flag.severity == "severe" else "")
                   + "If this is a mistake, explain it in a forum post; do not try to work around the monitor.")
    return out

