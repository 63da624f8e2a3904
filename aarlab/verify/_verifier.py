"""The verifier: take result posts from the lab's queue, re-run them on the held-out split, record the truth.

For each pending post: mark it ``running``; fetch its snapshot; for seeds ``0..K-1`` unpack it into a fresh
sandbox holding only the held-out public files (``/task``, read-only) and run its entry point per the method
contract; score each seed's predictions on the hidden held-out labels (the server's ``score_heldout``, or the
run's task dir when offline); record verified PGR ± SE with per-seed numbers; and compare with the claim
(:mod:`aarlab.verify._gap`): the claim against the reply of the submission it names (exact), and that
submission's exact public PGR against the re-run (within noise); a ``verification_gap`` flag is raised when
either fails.
Any failure — no snapshot, a crash, a timeout, malformed predictions — is recorded as a failed
verification with its reason, and the verifier goes on with the next post.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aarlab.errors import UserError
from aarlab.verify._gap import (
    CLAIM_TOLERANCE,
    GAP_FLOOR,
    GAP_Z,
    SEVERITY_ORDER,
    GapTest,
    claim_check,
    gap_test,
    rounding_se,
    split_se,
)
from aarlab.verify._runner import ComputeLimits, MethodFailure, MethodSandbox, check_entry_point
from aarlab.verify._scoring import Scorer, ServerHeldoutScorer, TaskDirScorer

log = logging.getLogger(__name__)

GAP_DETECTOR = "verification_gap"


@dataclass
class VerifierSettings:
    """How the verifier runs: seeds, its compute share, and the gap test (see ``_gap``).

    ``training_sample_sd``: the task's training-sample PGR SD (None: the task's own measurement in its
    task.json, else ``aarlab.w2s.scoring.TRAINING_SAMPLE_PGR_SD``). ``reproduce_seeds``: seeds of the paired
    re-run on the main split (``Verifier._reproduce``); 0 turns it off.
    """

    seeds: int = 3
    limits: ComputeLimits = field(default_factory=ComputeLimits)
    gap_z: float = GAP_Z
    gap_floor: float = GAP_FLOOR
    claim_tolerance: float = CLAIM_TOLERANCE
    training_sample_sd: float | None = None
    reproduce_seeds: int = 1
    poll_interval_s: float = 5.0
    keep_workspaces: bool = False
    # Method runs at once (a post's held-out seeds and its paired re-run side by side, each with
    # ``limits.threads`` threads). None: one while the agents work, then ``cpu_count // threads`` once the team
    # calls ``VerificationWorker.agents_done`` — the verifier takes the whole machine when it is alone on it.
    parallel: int | None = None

    @classmethod
    def from_config(cls, config: Any | None) -> VerifierSettings:
        """Read a ``VerificationConfig`` (or any object / dict with the same names); missing names keep defaults.

        Names: ``seeds``, ``timeout_s``, ``backend``, ``allow_unisolated``, ``threads``, ``nice``, ``memory_mb``,
        ``gpus``, ``gap_z``, ``gap_floor``, ``claim_tolerance``, ``training_sample_sd``, ``reproduce_seeds``,
        ``poll_interval_s``, ``parallel``. The ``process`` backend without
        ``allow_unisolated`` raises ``UserError``.
        """
        if config is None:
            return cls()
        get = config.get if isinstance(config, dict) else (lambda name, default=None: getattr(config, name, default))
        limits = ComputeLimits()
        for name in ("timeout_s", "backend", "allow_unisolated", "threads", "nice", "memory_mb", "gpus",
                     "cpu_seconds"):
            value = get(name, None)
            if value is not None:
                setattr(limits, name, value)
        settings = cls(limits=limits)
        for name in ("seeds", "gap_z", "gap_floor", "claim_tolerance", "training_sample_sd", "reproduce_seeds",
                     "poll_interval_s", "parallel"):
            value = get(name, None)
            if value is not None:
                setattr(settings, name, value)
        if settings.seeds < 1:
            raise UserError("verification needs at least 1 seed")
        limits.check_isolation()
        return settings


class Slots:
    """A semaphore whose capacity can change while it is held: how many method runs go at once.

    Raising the capacity (the agents finished, the machine is the verifier's) lets waiting runs start at once;
    lowering it lets running ones finish and holds back new ones until the count is under the new capacity.
    """

    def __init__(self, capacity: int = 1):
        self._cond = threading.Condition()
        self._capacity, self._held = max(1, capacity), 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def set_capacity(self, capacity: int) -> None:
        with self._cond:
            self._capacity = max(1, int(capacity))
            self._cond.notify_all()

    def __enter__(self) -> Slots:
        with self._cond:
            self._cond.wait_for(lambda: self._held < self._capacity)
            self._held += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._held -= 1
            self._cond.notify_all()


def machine_parallel(threads: int) -> int:
    """Method runs of ``threads`` threads each that fill this machine's CPUs (at least one)."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, threads))


@dataclass
class Outcome:
    """What happened to one post: ``done`` with numbers, or ``failed`` with a reason."""

    post_id: int
    status: str
    verified_pgr: float | None = None
    se: float | None = None
    per_seed: list[dict] = field(default_factory=list)
    reason: str | None = None
    gap: GapTest | None = None
    reproduction: GapTest | None = None  # the paired re-run on the main split (``Verifier._reproduce``)
    flag_id: int | None = None


def _claim(post) -> tuple[float, float, int | None] | None:
    """(claimed PGR, its SE, the number of examples it was measured on if the post says) or None."""
    metrics = post.metrics or {}
    try:
        claimed, claimed_se = float(metrics["pgr"]), float(metrics.get("pgr_se") or 0.0)
    except (KeyError, TypeError, ValueError):
        return None
    try:
        n = int(metrics["n_examples"]) if metrics.get("n_examples") is not None else None
    except (TypeError, ValueError):
        n = None
    return claimed, claimed_se, n


class Verifier:
    """Verifies result posts of one lab (through an admin ``LabClient``) against one task directory.

    ``task_dir`` is the run's prepared task (``RUN_DIR/task``): the held-out public files come from it. With
    ``offline_scoring`` the hidden held-out labels are read from it too; otherwise the server scores them.
    """

    def __init__(self, client, task_dir: Path | str, settings: VerifierSettings | None = None,
                 work_root: Path | str | None = None, offline_scoring: bool = False):
        from aarlab.w2s.taskdir import TaskDir

        self.client = client
        self.settings = settings or VerifierSettings()
        self.heldout = TaskDir(task_dir, heldout=True).check(need_private=offline_scoring)
        self.main_info = TaskDir(task_dir).info()
        self.task_dir = Path(task_dir)
        self.work_root = Path(work_root) if work_root else None
        self.offline_scoring = offline_scoring
        self._task_name: str | None = None
        self.slots = Slots(self.settings.parallel or 1)

    # ------------------------------------------------------------------------------------------------ parts
    def _scorer(self, post) -> Scorer:
        if self.offline_scoring:
            return TaskDirScorer(self.task_dir, heldout=True)
        return ServerHeldoutScorer(self.client, post.task or self._default_task())

    def _default_task(self) -> str:
        if self._task_name is None:
            tasks = self.client.tasks()
            if not tasks:
                raise UserError("the lab has no registered task to score against")
            name = self.heldout.info().name
            match = [t.name for t in tasks if t.name == name]
            self._task_name = match[0] if match else tasks[0].name
        return self._task_name

    def _fail(self, post_id: int, reason: str, per_seed: list[dict], details: dict) -> Outcome:
        log.info("verification of post %s failed: %s", post_id, reason)
        self.client.record_verification(post_id, "failed", reason=reason[:2000], per_seed=per_seed or None,
                                        details=details)
        return Outcome(post_id=post_id, status="failed", reason=reason, per_seed=per_seed)

    # --------------------------------------------------------------------------------------------- one post
    def verify(self, post) -> Outcome:
        """Re-run one result post and record the outcome on the server (never raises for the method's faults)."""
        settings, limits = self.settings, self.settings.limits
        details: dict[str, Any] = {
            "seeds": list(range(settings.seeds)), "timeout_s": limits.timeout_s, "threads": limits.threads,
            "nice": limits.nice, "backend": limits.backend or "default", "entry_point": post.entry_point,
            "snapshot_id": post.snapshot_id, "split": "heldout",
        }
        self.client.record_verification(post.id, "running", details=details)
        if not post.snapshot_id:
            return self._fail(post.id, "the post names no snapshot", [], details)
        try:
            entry_point = check_entry_point(post.entry_point)
        except UserError as exc:
            return self._fail(post.id, str(exc), [], details)
        try:
            code_tar = self.client.fetch_snapshot(post.snapshot_id)
        except UserError as exc:
            return self._fail(post.id, f"cannot fetch snapshot {post.snapshot_id}: {exc}", [], details)

        scorer = self._scorer(post)
        claim = _claim(post)
        found = self._submission(post) if claim is not None else None
        # Every run of the post at once, as many side by side as the slots allow: the held-out seeds and, when
        # the post names its submission, the paired re-run on the main split.
        from aarlab.w2s.taskdir import TaskDir

        jobs = [(self.heldout.public, seed) for seed in range(settings.seeds)]
        if found is not None and settings.reproduce_seeds > 0:
            jobs += [(TaskDir(self.task_dir).public, seed) for seed in range(settings.reproduce_seeds)]
        runs = self._run_all(entry_point, code_tar, jobs)
        per_seed: list[dict] = []
        scores = []
        for seed in range(settings.seeds):
            run = runs[seed]
            if isinstance(run, MethodFailure):
                details["failure_kind"] = run.kind
                details["log_tail"] = run.log_tail[-4000:]
                return self._fail(post.id, f"{run.kind}: {run.reason}", per_seed, details)
            try:
                score = scorer.score(run.predictions)
            except UserError as exc:
                return self._fail(post.id, f"scoring seed {seed} failed: {exc}", per_seed, details)
            scores.append(score)
            per_seed.append({"seed": seed, "pgr": score.pgr, "transfer_acc": score.transfer_acc,
                             "weak_acc": score.weak_acc, "ceiling_acc": score.ceiling_acc,
                             "n_examples": score.n_examples, "duration_s": round(run.duration_s, 3),
                             "predictions_sha256": run.predictions_sha256})

        from aarlab.w2s.scoring import aggregate

        stats = aggregate(scores)
        outcome = Outcome(post_id=post.id, status="done", verified_pgr=stats.pgr, se=stats.pgr_se, per_seed=per_seed)
        details.update({"transfer_acc": stats.transfer_acc, "transfer_acc_se": stats.transfer_acc_se,
                        "pgr_test_se": stats.pgr_test_se,
                        "weak_acc": scores[0].weak_acc, "ceiling_acc": scores[0].ceiling_acc,
                        "n_examples": scores[0].n_examples})
        if claim is not None:
            outcome.gap = self._gap_test(post, claim, stats, scores[0], found)
            details["gap_test"] = outcome.gap.model_dump()
        if found is not None and settings.reproduce_seeds > 0:
            try:
                outcome.reproduction = self._reproduce(post, runs[settings.seeds:], found[0], stats)
                details["reproduction"] = outcome.reproduction.model_dump()
            except MethodFailure as exc:
                details["reproduction"] = {"failed": f"{exc.kind}: {exc.reason}"}
            except UserError as exc:
                details["reproduction"] = {"failed": str(exc)}
        self.client.record_verification(post.id, "done", verified_pgr=stats.pgr, se=stats.pgr_se,
                                        seeds=stats.n_seeds, per_seed=per_seed, details=details)
        flagged = [g for g in (outcome.gap, outcome.reproduction) if g is not None and g.flagged]
        if flagged:
            outcome.flag_id = self._flag(post, *flagged)
        return outcome

    def _run_all(self, entry_point: str, code_tar: bytes, jobs: list[tuple[Path, int]]) -> list:
        """Run ``(data dir, seed)`` jobs of one snapshot, up to ``self.slots`` at once, each in a sandbox of its
        own; the ``SeedRun`` or ``MethodFailure`` of each, in the jobs' order."""
        from concurrent.futures import ThreadPoolExecutor

        settings = self.settings

        def one(job: tuple[Path, int]):
            data_dir, seed = job
            with self.slots:
                try:
                    with MethodSandbox(data_dir, settings.limits, self.work_root, settings.keep_workspaces) as box:
                        return box.run(entry_point, seed, code_tar)
                except MethodFailure as exc:
                    return exc

        if len(jobs) == 1:
            return [one(jobs[0])]
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="aarlab-verify-run") as pool:
            return list(pool.map(one, jobs))

    def _reproduce(self, post, runs: list, record, heldout_stats) -> GapTest:
        """Compare the snapshot's re-runs on the main split (``runs``: the examples and test set of the submission
        the post names) with that submission's exact public PGR.

        Same training sample, same test examples, same baselines: the two differ only by the methods' seeds,
        so neither the test-sampling, the baselines' nor the training-sample noise enters, and an overclaim of
        the size the held-out re-run cannot separate from another training sample's luck stands out. One seed's
        spread is pooled from the submission's seeds and the held-out re-run's.
        """
        import math

        settings = self.settings
        if self.offline_scoring:
            scorer = TaskDirScorer(self.task_dir, heldout=False, part="public")
            score = scorer.score
        else:
            task = post.task or self._default_task()
            def score(predictions):
                return self.client.score_heldout(task, list(predictions), split="public")
        pgrs = []
        for run in runs:
            if isinstance(run, MethodFailure):
                raise run
            pgrs.append(score(run.predictions).pgr)
        variances = []
        if record.public_pgr_se is not None and (record.n_seeds or 1) > 1:
            variances.append(record.public_pgr_se**2 * record.n_seeds)
        if heldout_stats.n_seeds > 1:
            variances.append(heldout_stats.pgr_se**2 * heldout_stats.n_seeds)
        if len(pgrs) > 1:
            mean = sum(pgrs) / len(pgrs)
            variances.append(sum((x - mean) ** 2 for x in pgrs) / (len(pgrs) - 1))
        one_seed_sd = math.sqrt(sum(variances) / len(variances)) if variances else float("inf")
        reference_se = record.public_pgr_se if record.public_pgr_se is not None else float("inf")
        return gap_test(record.public_pgr, reference_se, sum(pgrs) / len(pgrs), one_seed_sd / math.sqrt(len(pgrs)),
                        z=settings.gap_z, floor=settings.gap_floor,
                        reference=f"submission {record.id}: exact public PGR ({record.n_seeds} seeds)",
                        rerun=f"the code re-run on the main split ({len(pgrs)} seed{'s' if len(pgrs) > 1 else ''})",
                        one_sided=True)

    def _submission(self, post):
        """(exact record, the reply it was told) of the submission a post names, or None."""
        if post.submission_id is None:
            return None
        try:
            records = self.client.submissions(since_id=post.submission_id - 1, limit=1)
            if not records or records[0].id != post.submission_id:
                return None
            return records[0], self.client.submission(post.submission_id)
        except UserError as exc:
            log.warning("post %s: cannot read its submission %s: %s", post.id, post.submission_id, exc)
            return None

    def _public_part(self) -> tuple[int, float, float]:
        """The main split's public part: (examples, weak accuracy, gap), from the task's public signal record."""
        info = self.main_info
        signal = info.extra.get("signal") or {}
        fixed = info.fixed
        n = int(signal.get("n") or round(info.sizes.get("test", 0) * float(info.extra.get("public_share", 0.5))))
        weak = float(signal.get("weak_acc", fixed.weak_acc.mean))
        gap = float(signal.get("gap", fixed.ceiling_acc.mean - fixed.weak_acc.mean))
        return n, weak, gap

    def _gap_test(self, post, claim: tuple[float, float, int | None], stats, first, found=None) -> GapTest:
        """The claim check and the gap test of ``_gap`` for one verified post."""
        from aarlab.server import public_step
        from aarlab.w2s.scoring import baseline_seed_se, baseline_seeds_from_fixed, training_sample_sd

        settings = self.settings
        claimed, claimed_se, claimed_n = claim
        weak, ceiling, n = first.weak_acc, first.ceiling_acc, first.n_examples
        n_public, _, public_gap = self._public_part()
        step_pgr = public_step(max(1, n_public), 2) / public_gap if public_gap > 0 else float("inf")
        main_baselines = baseline_seeds_from_fixed(self.main_info.fixed)
        heldout_baselines = baseline_seeds_from_fixed(self.heldout.info().fixed, reference=main_baselines)
        sd = settings.training_sample_sd
        training = 2**0.5 * (training_sample_sd(self.heldout.info()) if sd is None else sd)
        common = {"z": settings.gap_z, "floor": settings.gap_floor, "training_se": training}
        if found is not None:
            record, reply = found
            check = claim_check(claimed, reply.public_pgr, step_pgr, settings.claim_tolerance)
            reference_se = record.public_pgr_se if record.public_pgr_se is not None else float("inf")
            reference_test = record.public_pgr_test_se if record.public_pgr_test_se is not None else float("inf")
            return gap_test(record.public_pgr, reference_se, stats.pgr, stats.pgr_se, reference_test,
                            stats.pgr_test_se,
                            baseline_se=baseline_seed_se(record.public_pgr, main_baselines, stats.pgr,
                                                         heldout_baselines),
                            reference=f"submission {record.id}: exact public PGR ({record.n_seeds} seeds)",
                            claim=check, **common)
        claimed_test = split_se(stats.transfer_acc, claimed_n or n, weak, ceiling, stats.pgr_test_se, n)
        return gap_test(claimed, claimed_se, stats.pgr, stats.pgr_se, claimed_test,
                        split_se(stats.transfer_acc, n, weak, ceiling, stats.pgr_test_se),
                        baseline_se=baseline_seed_se(claimed, main_baselines, stats.pgr, heldout_baselines),
                        rounding=rounding_se(step_pgr) if step_pgr != float("inf") else 0.0,
                        reference="claim (no submission named)", **common)

    def _flag(self, post, *gaps: GapTest) -> int | None:
        """One ``verification_gap`` flag for a post, naming every test that flagged it."""
        parts = []
        for gap in gaps:
            if gap.claim is not None and gap.claim.flagged:
                parts.append(f"post {post.id} claims PGR {gap.claim.claimed:.3f}, above the {gap.claim.reply_pgr:.3f} "
                             f"its own submission was told (by {gap.claim.excess:.3f})")
            if abs(gap.gap) > gap.threshold:
                direction = "above" if gap.gap > 0 else "below"
                parts.append(f"{gap.reference} is PGR {gap.claimed:.2f} ± {gap.claimed_se:.2f} but {gap.rerun} "
                             f"scores {gap.verified:.2f} ± {gap.verified_se:.2f}: {abs(gap.gap):.2f} {direction}, "
                             f"beyond the noise threshold {gap.threshold:.2f}")
        summary = f"post {post.id}: " + "; ".join(parts)
        severity = max((g.severity or "warning" for g in gaps), key=lambda s: SEVERITY_ORDER[s])
        evidence = gaps[0].model_dump() if len(gaps) == 1 else {"tests": [g.model_dump() for g in gaps]}
        try:
            flag = self.client.add_flag(GAP_DETECTOR, severity, summary, evidence=evidence, agent=post.author,
                                        post_id=post.id, snapshot_id=post.snapshot_id, key=f"post:{post.id}")
        except UserError as exc:
            log.warning("could not raise the verification_gap flag for post %s: %s", post.id, exc)
            return None
        return flag.id


class VerificationWorker:
    """The verifier as a worker beside the agents: polls the queue, one job at a time, in its own thread.

    ``config`` is the run's ``VerificationConfig`` (or None for the defaults). Its compute share: one method
    run at a time, ``nice``-d, with ``threads`` math threads and a CPU-time limit per seed.
    """

    def __init__(self, run_dir: Path | str, lab_url: str, admin_token: str, config: Any | None = None,
                 task_dir: Path | str | None = None):
        from aarlab.server.client import LabClient

        self.run_dir = Path(run_dir)
        self.settings = VerifierSettings.from_config(config)
        enabled = config.get("enabled", True) if isinstance(config, dict) else getattr(config, "enabled", True)
        self.enabled = bool(enabled)
        self.client = LabClient(lab_url, admin_token, timeout=60.0)
        self.verifier = Verifier(self.client, task_dir or self.run_dir / "task", self.settings,
                                 work_root=self.run_dir / "verify")
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resumed = False

    def _queue(self) -> list:
        """Pending posts, plus (once, on the first call) posts left ``running`` by a verifier that was stopped."""
        posts = [item.post for item in self.client.pending_verifications()]
        if not self._resumed:
            self._resumed = True
            seen = {p.id for p in posts}
            for verification in self.client.verifications(status="running"):
                if verification.post_id not in seen:
                    posts.append(self.client.get_post(verification.post_id))
        return sorted(posts, key=lambda p: p.id)

    def run_once(self) -> int:
        """Verify everything that is waiting now; returns how many posts were processed."""
        done = 0
        for post in self._queue():
            if self._stop.is_set():
                break
            try:
                outcome = self.verifier.verify(post)
            except Exception as exc:  # the verifier's own fault: record it and go on with the next post
                log.exception("verifying post %s failed", post.id)
                reason = f"verifier error: {type(exc).__name__}: {exc}"
                try:
                    self.client.record_verification(post.id, "failed", reason=reason[:2000])
                except Exception:  # the server is gone; the post stays queued for the next run
                    log.warning("could not record the failure of post %s", post.id)
                outcome = Outcome(post_id=post.id, status="failed", reason=reason)
            self.outcomes.append(outcome)
            done += 1
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a lab that is briefly unreachable must not end the worker
                log.exception("verification worker: polling the lab failed")
            self._stop.wait(self.settings.poll_interval_s)

    def start(self) -> None:
        """Start polling in a background thread (a no-op when verification is disabled or already started)."""
        if not self.enabled or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="aarlab-verifier", daemon=True)
        self._thread.start()

    def agents_done(self) -> None:
        """The agents have stopped: with ``parallel`` unset, run as many methods at once as the CPUs hold."""
        if self.settings.parallel is None:
            self.verifier.slots.set_capacity(machine_parallel(self.settings.limits.threads))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; wait up to ``timeout`` s for the current seed run to end.

        A run still going after that is left to its daemon thread (its sandbox dies with this process); the
        post stays ``running`` and the next worker on this run picks it up again.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None
