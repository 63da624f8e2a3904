"""The monitor worker: runs the detectors over new submissions and transcript turns and raises flags.

``aarlab run`` starts one beside the agents::

    worker = MonitorWorker(run_dir, lab_url, admin_token, run_config.monitors)
    worker.start()          # a background thread, one pass every ``interval_s``
    ...
    worker.stop()

Tests call ``run_once()``. The worker talks to the lab server through an admin ``LabClient`` (submissions,
result posts, flags) and reads the run directory directly (transcripts, the task dir). Flags are
deduplicated by ``Finding.key`` (the server keeps ``(detector, key)`` unique), and the progress — the byte
offset read in each transcript, the last submission id — is kept in ``<run>/monitor/state.json`` so that a
restarted worker neither misses evidence nor flags the same thing twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aarlab.monitor._base import Finding, MonitorContext, SubmissionView, registered_detectors, run_detector
from aarlab.monitor._transcripts import read_actions, read_transcript_tail, snapshot_actions
from aarlab.paths import atomic_write_text

log = logging.getLogger(__name__)

POST_PAGE = 200  # the forum route's largest page
MAX_POST_PAGES = 50


class MonitorConfig(BaseModel):
    """How the monitors run (a superset of ``aarlab.config.MonitorsConfig``; see ``MonitorConfig.of``).

    ``detectors`` overrides each detector's parameters by name, e.g. ``{"probing": {"severe_pairs": 6},
    "network": {"enabled": False}}``; ``judge_model`` turns the LLM judge on (``"anthropic:…"``).
    """

    model_config = ConfigDict(extra="ignore")

    enabled: bool = True
    notify_agents: bool = False  # tell agents about flags on their own work (see ``agent_notifications``)
    judge_model: str | None = None
    interval_s: float = Field(15.0, gt=0)
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    allowed_models: list[str] = Field(default_factory=list)  # beyond the task's weak and strong models
    allow_test_training: bool = False

    @classmethod
    def of(cls, config: Any) -> MonitorConfig:
        """Accept ``None``, a ``MonitorConfig``, the run config's ``MonitorsConfig`` or a mapping.

        Fields the given config does not have keep their defaults, so a run config with fewer monitor
        settings still works.
        """
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        data = config.model_dump() if isinstance(config, BaseModel) else dict(config)
        return cls.model_validate({k: v for k, v in data.items() if v is not None})

    def params(self, name: str) -> dict[str, Any]:
        params = dict(self.detectors.get(name, {}))
        if name == "llm_judge" and self.judge_model and "model" not in params:
            params["model"] = self.judge_model
        return params

    def is_enabled(self, name: str) -> bool:
        return self.enabled and self.detectors.get(name, {}).get("enabled", True) is not False


def task_context(task_dir: Path | str | None, config: MonitorConfig | None = None, agents: list[str] | None = None,
                 claims: dict | None = None) -> MonitorContext:
    """A ``MonitorContext`` from a prepared task dir (public files, plus private labels when present)."""
    from aarlab.w2s.taskdir import TaskDir

    config = MonitorConfig.of(config)
    ctx = MonitorContext(agents=list(agents or []), claims=dict(claims or {}),
                         allowed_models=list(config.allowed_models), allow_test_training=config.allow_test_training)
    if task_dir is None or not (Path(task_dir) / "public" / "task.json").is_file():
        return ctx
    td = TaskDir(task_dir)
    info = td.info()
    ctx.task, ctx.label_space = info.name, list(info.label_space)
    ctx.allowed_models += [m.removeprefix("hf:") for m in (info.weak_model, info.strong_model)]
    ctx.allowed_models += _intermediate_models(info)
    if info.extra.get("allow_test_training"):
        ctx.allow_test_training = True
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


def _intermediate_models(info) -> list[str]:
    """The model bootstrapping goes through, when the task names one (it belongs to the known methods).

    Read from ``task.json`` only: asking the model registry would import torch into the monitor.
    """
    name = info.extra.get("intermediate_model")
    return [str(name).removeprefix("hf:")] if name else []


def scan_submissions(submissions: list[SubmissionView], ctx: MonitorContext,
                     config: MonitorConfig | None = None) -> list[Finding]:
    """Run every enabled submission detector over each agent's history on each task."""
    config = MonitorConfig.of(config)
    histories: dict[tuple[str, str], list[SubmissionView]] = defaultdict(list)
    for sub in sorted(submissions, key=lambda s: s.id):
        histories[(sub.agent, sub.task)].append(sub)
    out = []
    for name in registered_detectors("submission"):
        if config.is_enabled(name):
            for subs in histories.values():
                out += run_detector(name, subs, ctx, config.params(name))
    return out


# What reads code: a snapshot's files have no sandbox answers (sandbox_blocked) and are not a conversation.
SNAPSHOT_DETECTORS = ("private_files", "escape_attempt", "network", "disallowed_model", "hand_labels",
                      "baseline_tampering", "test_training")


def scan_actions(actions: list, ctx: MonitorContext, config: MonitorConfig | None = None,
                 only: tuple[str, ...] | None = None) -> list[Finding]:
    """Run every enabled transcript detector (and the judge, when configured) over one agent's actions.

    ``only`` restricts the pass to the named detectors.
    """
    config = MonitorConfig.of(config)
    out = []
    for kind in ("transcript", "judge"):
        for name in registered_detectors(kind):
            if config.is_enabled(name) and (only is None or name in only):
                out += run_detector(name, actions, ctx, config.params(name))
    return out


def flag_payload(finding: Finding) -> dict[str, Any]:
    """The keyword arguments of ``LabClient.add_flag`` for a finding.

    What a flag is attached to decides which leaderboard entries it quarantines: a finding about one
    submission or one snapshot names it, so it marks the entries built on that submission or snapshot; a
    pattern over several submissions (probing, bursts) or a transcript's tool calls name only the agent,
    so they mark every entry of that agent.
    """
    pattern = len(finding.submission_ids) > 1
    return {
        "detector": finding.detector, "severity": finding.severity, "summary": finding.summary[:2000],
        "evidence": {"lines": finding.evidence, "submission_ids": finding.submission_ids, "time": finding.time},
        "agent": finding.agent, "post_id": finding.post_id,
        "submission_id": finding.submission_ids[0] if len(finding.submission_ids) == 1 else None,
        "snapshot_id": None if pattern else finding.snapshot_id, "key": finding.key,
    }


def raise_flag(client, finding: Finding) -> Any:
    """Store a finding as a flag; the server returns the existing flag for a (detector, key) it holds.

    A transcript of an agent the server does not know (copied in, or a renamed agent) still gets its flag,
    with the name in the summary instead of the agent field.
    """
    payload = flag_payload(finding)
    try:
        return client.add_flag(**payload)
    except Exception as exc:
        if getattr(exc, "status", None) != 404 or not payload["agent"] or "agent" not in str(exc):
            raise
        payload["summary"] = f"[agent {payload['agent']}] {payload['summary']}"[:2000]
        payload["agent"] = None
        return client.add_flag(**payload)


class MonitorWorker:
    """Watches one run: new submissions (through the admin API) and new transcript turns (from the run dir).

    Args:
        run_dir: the run directory (``transcripts/``, ``task/``, ``state.json``; progress goes to ``monitor/``).
        lab_url: the lab server's base URL.
        admin_token: the admin bearer token.
        config: the run config's ``monitors`` section, a ``MonitorConfig``, a mapping, or ``None``.
        task_dir: the prepared task dir (default ``<run_dir>/task``).
        client: an admin ``LabClient`` to use instead of making one from ``lab_url``/``admin_token``.
    """

    def __init__(self, run_dir: Path | str, lab_url: str | None = None, admin_token: str | None = None,
                 config: Any = None, task_dir: Path | str | None = None, client=None):
        if client is None:
            from aarlab.server.client import LabClient

            if not lab_url:
                raise ValueError("MonitorWorker needs lab_url and admin_token (or a client)")
            client = LabClient(lab_url, admin_token)
        self.run_dir = Path(run_dir)
        self.client = client
        self.config = MonitorConfig.of(config)
        self.task_dir = Path(task_dir) if task_dir else self.run_dir / "task"
        self.state_path = self.run_dir / "monitor" / "state.json"
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.offsets: dict[str, int] = dict(state.get("offsets", {}))
        self.last_submission_id: int = int(state.get("last_submission_id", 0))
        self.scanned_snapshots: set[str] = set(state.get("scanned_snapshots", []))
        self.judge_offsets: dict[str, int] = dict(state.get("judge_offsets", {}))
        self.blocked_counts: dict[str, int] = dict(state.get("blocked_counts", {}))
        self.raised: list[Finding] = []  # findings this worker turned into flags (for tests and logs)
        self._history: list[SubmissionView] | None = None  # every submission, loaded on the first pass
        self._claims: dict[tuple[str, str], float] = {}
        self._base_ctx: MonitorContext | None = None
        self._seen_keys: set[tuple[str, str]] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> MonitorWorker:
        """Run passes in a background thread every ``config.interval_s`` until ``stop()``."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="aarlab-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread after its current pass, then run one last pass so nothing written is missed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.config.enabled:
            try:
                self.run_once(flush=True)
            except Exception:
                log.exception("monitor: final pass failed")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failing pass (server restarting, say) is logged and retried, not fatal
                log.exception("monitor pass failed; retrying in %.0f s", self.config.interval_s)
            self._stop.wait(self.config.interval_s)

    # -- context ---------------------------------------------------------------------------------------
    def _agents(self) -> list[str]:
        names = {p.stem for p in (self.run_dir / "transcripts").glob("*.jsonl")}
        state = self.run_dir / "state.json"
        if state.is_file():
            try:
                agents = json.loads(state.read_text()).get("agents", {})
                if isinstance(agents, dict):
                    names |= set(agents)
                else:
                    names |= {a.get("name") for a in agents if isinstance(a, dict)}
            except (json.JSONDecodeError, AttributeError, OSError):
                pass
        if (self.run_dir / "workspaces").is_dir():
            names |= {p.name for p in (self.run_dir / "workspaces").iterdir() if p.is_dir()}
        return sorted(n for n in names if n)

    def _read_claims(self) -> dict[tuple[str, str], float]:
        claims: dict[tuple[str, str], float] = {}
        posts: list = []
        try:
            for page in range(MAX_POST_PAGES):
                batch = self.client.posts(kind="result", limit=POST_PAGE, offset=page * POST_PAGE)
                posts += batch
                if len(batch) < POST_PAGE:
                    break
        except Exception as exc:  # claims only sharpen one detector; the rest runs without them
            log.warning("monitor: could not read result posts: %s", exc)
            return self._claims
        for post in posts:
            pgr = (post.metrics or {}).get("pgr")
            if post.snapshot_id and isinstance(pgr, int | float):
                key = (post.author, post.snapshot_id)
                claims[key] = max(claims.get(key, float("-inf")), float(pgr))
        return claims

    def context(self) -> MonitorContext:
        """The task's context (read once) with the current agents and result claims."""
        if self._base_ctx is None:
            self._base_ctx = task_context(self.task_dir, self.config)
        ctx = self._base_ctx
        ctx.agents = self._agents()
        ctx.claims = self._claims
        return ctx

    # -- passes ----------------------------------------------------------------------------------------
    def _seen(self) -> set[tuple[str, str]]:
        if self._seen_keys is None:
            self._seen_keys = set()
            try:
                self._seen_keys = {(f.detector, f.key) for f in self.client.flags() if f.key}
            except Exception as exc:
                log.warning("monitor: could not list existing flags: %s", exc)
        return self._seen_keys

    def _emit(self, findings: list[Finding]) -> list[Finding]:
        new = []
        seen = self._seen()
        for finding in findings:
            if (finding.detector, finding.key) in seen:
                continue
            raise_flag(self.client, finding)
            seen.add((finding.detector, finding.key))
            new.append(finding)
        self.raised += new
        return new

    def _fetch_submissions(self, since_id: int) -> list[SubmissionView]:
        out: list[SubmissionView] = []
        while True:  # the admin route pages by id; bounded by the run's submission count
            page = self.client.submissions(since_id=since_id)
            if not page:
                return out
            out += [SubmissionView.from_record(r) for r in page]
            if max(r.id for r in page) <= since_id:  # a server that ignores since_id must not loop us
                return out
            since_id = max(r.id for r in page)

    def scan_new_submissions(self, ctx: MonitorContext) -> tuple[int, list[Finding]]:
        """Detectors over the histories of agents with new submissions or new claims.

        Returns how many submissions were new, and the findings.
        """
        if self._history is None:
            # The whole history, also after a restart: probing compares with earlier submissions.
            self._history = self._fetch_submissions(0)
            fresh = [s for s in self._history if s.id > self.last_submission_id]
        else:
            fresh = self._fetch_submissions(self.last_submission_id)
            self._history += fresh
        claims = self._read_claims()
        changed_claims = {agent for (agent, snap), pgr in claims.items() if self._claims.get((agent, snap)) != pgr}
        self._claims = claims
        ctx.claims = claims
        if fresh:
            self.last_submission_id = max(s.id for s in fresh)
        touched = {s.agent for s in fresh} | changed_claims
        if not touched:
            return len(fresh), []
        return len(fresh), scan_submissions([s for s in self._history if s.agent in touched], ctx, self.config)

    def scan_transcripts(self, ctx: MonitorContext, flush: bool = False) -> tuple[int, list[Finding]]:
        """Transcript detectors over the tool calls appended since the last pass. Returns (actions, findings).

        The LLM judge (when configured) reads in windows: it waits until ``window_actions`` tool calls have
        gathered, the agent stopped, or ``flush`` (the worker's last pass), so that it reads turns in
        context and is not called for every pass's handful of new lines.
        """
        patterns = tuple(registered_detectors("transcript"))
        judge_params = self.config.params("llm_judge")
        judge_on = self.config.is_enabled("llm_judge") and bool(judge_params.get("model"))
        window = int(judge_params.get("window_actions", 20))
        n, out = 0, []
        for path in sorted((self.run_dir / "transcripts").glob("*.jsonl")):
            start = self.offsets.get(path.name, 0)
            size = path.stat().st_size
            if size < start:  # rewritten, not appended: read it again (flag keys keep findings unique)
                start = 0
                self.judge_offsets.pop(path.name, None)
            if size > start:
                actions, end = read_actions(path, start)
                self.offsets[path.name] = end
                n += len(actions)
                if actions:
                    out += self._count_refusals(scan_actions(actions, ctx, self.config, only=patterns))
            judged = self.judge_offsets.get(path.name, 0)
            if judge_on and judged < self.offsets.get(path.name, 0):
                pending, end, stopped = read_transcript_tail(path, judged)
                if len(pending) >= window or stopped or flush:
                    out += run_detector("llm_judge", pending, ctx, judge_params) if pending else []
                    self.judge_offsets[path.name] = end
        return n, out

    def _count_refusals(self, findings: list[Finding]) -> list[Finding]:
        """Escalate ``sandbox_blocked`` by the agent's refusals over all passes, not this pass's alone."""
        warn_count = int(self.config.params("sandbox_blocked").get("warn_count", 3))
        for finding in findings:
            if finding.detector == "sandbox_blocked" and finding.agent:
                total = self.blocked_counts.get(finding.agent, 0) + finding.count
                self.blocked_counts[finding.agent] = total
                if total >= warn_count and finding.severity == "info":
                    finding.severity = "warning"
                    finding.summary += f"; {total} refusals in this transcript so far"
        return findings

    def scan_snapshots(self, ctx: MonitorContext) -> tuple[int, list[Finding]]:
        """The code of every snapshot named by a submission or a result post, once each.

        Returns (snapshots read, findings); a finding names the snapshot, so it marks the entries built on it.
        """
        named = {(s.agent, s.snapshot_id) for s in self._history or [] if s.snapshot_id}
        named |= set(self._claims)
        out, n = [], 0
        for agent, snapshot_id in sorted(named):
            if snapshot_id in self.scanned_snapshots:
                continue
            try:
                tar = self.client.fetch_snapshot(snapshot_id)
            except Exception as exc:  # retried on the next pass
                log.warning("monitor: could not fetch snapshot %s: %s", snapshot_id, exc)
                continue
            findings = scan_actions(snapshot_actions(tar, agent, snapshot_id), ctx, self.config, SNAPSHOT_DETECTORS)
            for finding in findings:
                finding.snapshot_id = snapshot_id
                finding.key = f"{finding.detector}:snapshot:{snapshot_id}"
            out += findings
            self.scanned_snapshots.add(snapshot_id)
            n += 1
        return n, out

    def run_once(self, flush: bool = False) -> int:
        """One pass over what is new: returns how many items (submissions, tool calls, snapshots) it read.

        Flags it raised are appended to ``self.raised``. ``flush`` makes the LLM judge read what it has not
        read yet even if no full window has gathered (``stop()`` passes it).
        """
        if not self.config.enabled:
            return 0
        with self._lock:
            saved = self._progress()
            try:
                ctx = self.context()
                n_subs, sub_findings = self.scan_new_submissions(ctx)
                n_actions, action_findings = self.scan_transcripts(ctx, flush=flush)
                self._emit(sub_findings + action_findings)
                n_snapshots, snapshot_findings = self.scan_snapshots(ctx)
                self._emit(snapshot_findings)
            except BaseException:
                # Nothing read in a failed pass counts as read: the next pass reads it again, and the flags
                # this one did raise are not raised twice (their keys are known).
                self._restore(saved)
                raise
            progress = {k: v for k, v in self._progress().items() if k not in ("history_length", "claims")}
            atomic_write_text(self.state_path, json.dumps(progress, indent=1))
            return n_subs + n_actions + n_snapshots

    def _progress(self) -> dict[str, Any]:
        return {"offsets": dict(self.offsets), "last_submission_id": self.last_submission_id,
                "scanned_snapshots": sorted(self.scanned_snapshots), "judge_offsets": dict(self.judge_offsets),
                "blocked_counts": dict(self.blocked_counts),
                "history_length": len(self._history) if self._history is not None else None,
                "claims": dict(self._claims)}

    def _restore(self, saved: dict[str, Any]) -> None:
        self.offsets = saved["offsets"]
        self.last_submission_id = saved["last_submission_id"]
        self.scanned_snapshots = set(saved["scanned_snapshots"])
        self.judge_offsets = saved["judge_offsets"]
        self.blocked_counts = saved["blocked_counts"]
        self._claims = saved["claims"]
        if saved["history_length"] is None:
            self._history = None
        elif self._history is not None:
            del self._history[saved["history_length"]:]


def agent_notifications(client, agent: str, config: Any = None, since_id: int = 0) -> list[str]:
    """Messages telling ``agent`` about flags on its own work (none unless ``config.notify_agents``).

    ``client`` is an admin (or viewer) client. The team calls it between an agent's steps and passes the
    messages on; ``since_id`` skips flags already told (pass the largest flag id told so far).
    """
    config = MonitorConfig.of(config)
    if not config.notify_agents:
        return []
    out = []
    for flag in sorted(client.flags(agent=agent), key=lambda f: f.id):
        if flag.agent != agent or flag.id <= since_id or flag.status == "cleared" or flag.severity == "info":
            continue
        out.append(f"[lab monitor] flag #{flag.id} ({flag.severity}, {flag.detector}) on your work: {flag.summary}. "
                   + ("Your entry is hidden from the ranking until a person reviews it. " if flag.severity == "severe" else "")
                   + "If this is a mistake, explain it in a forum post; do not try to work around the monitor.")
    return out
