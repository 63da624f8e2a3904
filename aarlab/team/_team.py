"""One session of a team run: the lab server, the workers, and N supervised researchers.

``TeamSession(run_dir).run()`` is what ``aarlab run`` and ``aarlab resume`` both do after the run dir exists:

1. start the lab server on the run's database (embedded, 127.0.0.1) and, on a new run, register the task and
   create the agents' identities (their tokens go to ``state.json``);
2. start the verification and monitor workers beside the agents when their packages are importable;
3. run every unfinished agent in its own thread, each in its own sandbox, with a budget that is a child of the
   team's global budget (dollars, tokens, wall-clock across sessions): when the global budget is spent every
   agent stops within one model call;
4. supervise: an agent whose harness fails is restarted from its transcript (with a short back-off) up to
   ``team.max_restarts`` times, then marked ``failed`` with the reason;
5. stop cleanly on Ctrl-C or SIGTERM (agents finish their current step and record an ``interrupted`` stop;
   ``aarlab resume`` continues them), and at the end drain the verifier's queue, so the final leaderboard
   holds verified numbers.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aarlab.config import RunConfig, is_demo_model
from aarlab.errors import UserError
from aarlab.rundir import RunLocked, hold_session_lock, job_table_path
from aarlab.team._notify import attach_flag_notes
from aarlab.team._rundir import (
    ADMIN_TOKEN_FILE,
    CREATING_MARKER,
    abandon_run,
    dashboard_url,
    ensure_viewer_token,
    finish_creation,
)
from aarlab.team._state import FINAL_AGENT_STATUSES, AgentState, RunState

log = logging.getLogger(__name__)
RESTART_BACKOFF_S = (1.0, 3.0, 10.0)


@dataclass
class Worker:
    """A background worker started beside the agents (verifier, monitors)."""

    name: str
    obj: Any
    stopped: bool = False


class TeamSession:
    """Runs (or resumes) the team of a run directory until it finishes, its budget is spent, or it is stopped."""

    def __init__(self, run_dir: Path | str, config: RunConfig | None = None, *,
                 note: Callable[[str], None] = print, view_factory: Callable[[TeamSession], Any] | None = None):
        self.run_dir = Path(run_dir)
        self.config = config or RunConfig.load(self.run_dir / "config.yaml")
        self.state = RunState.load(self.run_dir)
        self.note = note
        self.view_factory = view_factory
        self.stop_event = threading.Event()
        self.admin_token = (self.run_dir / ADMIN_TOKEN_FILE).read_text().strip()
        self.viewer_token = ensure_viewer_token(self.run_dir)
        self.server: Any = None
        self.url: str | None = None
        self.workers: list[Worker] = []
        self.budget: Any = None
        self.agents: dict[str, Any] = {}  # name -> the running Agent object (for the live view)
        self.threads: dict[str, threading.Thread] = {}
        self._session_start = time.monotonic()
        self._elapsed_before = self.state.elapsed_s
        self.stop_reason = ""
        self.final_lab: Any = None  # the leaderboard and flags at the end of the session
        self.report_path: Path | None = None
        self.unisolated: set[str] = set()  # agents whose sandbox gives no isolation (the `process` backend)

    @property
    def dashboard_url(self) -> str | None:
        """The live dashboard with the run's viewer token (embedded server only: an external lab has its own)."""
        if self.url is None or self.config.server.url:
            return None
        return dashboard_url(self.url, self.viewer_token)

    def _start_server(self) -> None:
        cfg, budget = self.config.server, self.config.budget
        if cfg.url:
            # A lab server run elsewhere (`aarlab serve`); it must see this run's task dir at the same path.
            self.url = cfg.url.rstrip("/")
            with self._client() as admin:
                admin.health()
            return
        from aarlab.server import LabServer, ServerSettings

        settings = ServerSettings(admin_token=self.admin_token, viewer_token=self.viewer_token,
                                  min_result_seeds=cfg.min_result_seeds,
                                  submissions_per_run=budget.submissions_per_run,
                                  submissions_per_hour=budget.submissions_per_hour, run_dir=self.run_dir)
        from aarlab.app import create_lab_app

        self.server = LabServer(run_dir=self.run_dir, settings=settings, host=cfg.host, port=cfg.port,
                                app_factory=create_lab_app)
        self.server.start()
        self.url = self.server.url

    def _client(self, token: str | None = None):
        from aarlab.server.client import LabClient

        return LabClient(self.url, token or self.admin_token)

    def _setup_new_run(self) -> None:
        """Register the task and create the agents on the lab (first session of a run only)."""
        with self._client() as admin:
            summary = admin.register_task(self.run_dir / "task")
            self.state.task = summary.name
            for agent in self.state.agents:
                if agent.token is None:
                    creds = admin.create_agent(agent.name, direction=agent.direction)
                    agent.server_id, agent.token = creds.id, creds.token
            self.state.save(self.run_dir)

    def _start_workers(self) -> None:
        for section, module, cls_name, label in (
            (self.config.verification, "aarlab.verify", "VerificationWorker", "verification"),
            (self.config.monitors, "aarlab.monitor", "MonitorWorker", "monitors"),
        ):
            if not section.enabled:
                continue
            if label == "verification" and section.backend is None:
                section = section.model_copy(update={"backend": self.config.sandbox.backend,
                                                     "allow_unisolated": self.config.sandbox.allow_unisolated})
            try:
                cls = getattr(importlib.import_module(module), cls_name)
            except (ImportError, AttributeError) as exc:
                self.note(f"{label}: not running ({module}.{cls_name} is not available: {exc})")
                continue
            try:
                worker = cls(self.run_dir, self.url, self.admin_token, section)
                worker.start()
            except Exception as exc:  # a broken worker must not take the team down
                self.note(f"{label}: could not start ({type(exc).__name__}: {exc})")
                continue
            self.workers.append(Worker(label, worker))

    def _stop_workers(self) -> None:
        for worker in self.workers:
            if worker.stopped:
                continue
            worker.stopped = True
            try:
                worker.obj.stop()
            except Exception as exc:
                log.warning("%s worker did not stop cleanly: %s", worker.name, exc)

    def final_pass(self, deadline_s: float | None, tick: Callable[[], None] | None = None) -> None:
        """After the agents stopped: one last monitor pass, and wait (bounded) until the verifier's queue is
        empty, so that the final leaderboard holds verified numbers. Ctrl-C skips the wait."""
        for worker in self.workers:
            if worker.name == "monitors":
                try:
                    worker.obj.run_once()
                except Exception as exc:
                    self.note(f"monitors: last pass failed ({type(exc).__name__}: {exc})")
        if not any(w.name == "verification" for w in self.workers):
            return
        for worker in self.workers:
            if worker.name == "verification" and hasattr(worker.obj, "agents_done"):
                worker.obj.agents_done()  # the machine is the verifier's now
        start = time.monotonic()
        with self._client() as admin:
            while not self.stop_event.is_set():
                try:
                    if not admin.pending_verifications() and not admin.verifications(status="running"):
                        return
                except Exception as exc:
                    self.note(f"verification: cannot read the queue ({type(exc).__name__}: {exc})")
                    return
                if deadline_s is not None and time.monotonic() - start > deadline_s:
                    self.note("verification: the team's time is up; what is still queued is verified on resume "
                              "or with `aarlab verify`")
                    return
                if tick is not None:
                    tick()
                self.stop_event.wait(1.0)

    def _global_budget(self):
        from aarlab.agent import Budget, BudgetLimits, Spend
        from aarlab.agent.transcript import read_transcript, replay

        total = self.config.budget.total
        root = Budget(BudgetLimits(max_usd=total.usd, max_tokens=total.tokens,
                                   max_wall_s=total.hours * 3600 if total.hours else None,
                                   max_cpu_hours=total.cpu_hours, max_gpu_hours=total.gpu_hours), name="team")
        root.restore(Spend(wall_s=self._elapsed_before))
        # Every agent's spend so far counts against the team, finished ones included.
        for agent in self.state.agents:
            records = read_transcript(self.transcript_path(agent.name))
            if records:
                r = replay(records)
                root.child(agent.name, self.agent_limits()).restore(
                    Spend(usd=r.cost_usd, tokens=r.usage.total_tokens, steps=r.step, wall_s=r.elapsed_s,
                          cpu_s=r.job_cpu_s, gpu_s=r.job_gpu_s))
        return root

    def agent_limits(self):
        from aarlab.agent import BudgetLimits

        a = self.config.budget.agent
        return BudgetLimits(max_usd=a.usd, max_tokens=a.tokens, max_steps=a.steps,
                            max_wall_s=a.hours * 3600 if a.hours else None, max_cpu_hours=a.cpu_hours,
                            max_gpu_hours=a.gpu_hours)

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_before + (time.monotonic() - self._session_start)

    def transcript_path(self, name: str) -> Path:
        return self.run_dir / "transcripts" / f"{name}.jsonl"

    def _sandbox(self, index: int, agent: AgentState):
        from aarlab.sandbox import Mount, SandboxSpec, create

        sb, cluster = self.config.sandbox, self.config.cluster
        backend = "ray" if cluster != "none" else sb.backend
        share = max(1, (os.cpu_count() or 1) // max(1, len(self.state.agents)))  # this agent's CPUs here
        threads = str(share)
        spec = SandboxSpec(
            workspace=(self.run_dir / "workspaces" / agent.name).resolve(),
            mounts=[Mount(host=(self.run_dir / "task" / "public").resolve(), target=Path("/task"))],
            env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                 "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONDONTWRITEBYTECODE": "1"},
            memory_mb=sb.memory_mb, cpu_seconds=sb.cpu_seconds, default_timeout_s=sb.command_timeout_s,
            allow_weak_limits=sb.allow_weak_limits,
            name=f"{self.state.run_id}-{agent.name}"[-60:],
            gpus=[] if backend == "ray" else list(range(index * int(sb.gpus), (index + 1) * int(sb.gpus))),
            ray_address=None if cluster in ("none", "auto") else cluster,
            num_cpus=sb.num_cpus, num_gpus=float(sb.gpus), resources=dict(sb.resources),
            ray_inner_backend=sb.backend if backend == "ray" else "bwrap",
            ray_snapshot_interval_s=sb.checkpoint_interval_s,
            # a local agent's share of this machine's CPUs; on Ray the actor's num_cpus
            job_slots=sb.job_slots or (None if sb.gpus or backend == "ray" else share),
            # the job table lives in the run dir, out of the agent's reach, so a crash cannot lose or forge it
            job_state=job_table_path(self.run_dir, agent.name).resolve(),
        )
        return create(backend, spec)

    def _agent_config(self, agent: AgentState):
        from aarlab.agent import AgentConfig

        a = self.config.budget.agent
        mountless = self.config.cluster == "none" and self.config.sandbox.backend == "process"
        return AgentConfig(
            name=agent.name, model=agent.model, direction=agent.direction_text, task=self.state.task or None,
            max_usd=a.usd, max_tokens=a.tokens, max_steps=a.steps, max_wall_s=a.hours * 3600 if a.hours else None,
            max_cpu_hours=a.cpu_hours, max_gpu_hours=a.gpu_hours,
            consult_model=self.config.team.consult_model, min_seeds=self.config.server.min_result_seeds,
            tool_timeout_s=self.config.sandbox.command_timeout_s,
            task_dir=str((self.run_dir / "workspaces" / agent.name / "task").resolve()) if mountless else "/task",
        )

    def _model(self, agent: AgentState):
        if is_demo_model(agent.model):
            from aarlab.team._demo import make_demo_model

            return make_demo_model(light=agent.model.split(":", 1)[1] in ("demo-light", "light"))
        options = self.config.model_options(agent.model)
        if options:  # e.g. team.base_url: an OpenAI-compatible server (vLLM, Ollama, llama.cpp)
            from aarlab.llm import get_model

            return get_model(agent.model, **options)
        return None  # the agent builds it from its config

    def _watch_sandbox(self, agent: AgentState, sandbox) -> None:
        """Record what the team must know about an agent's sandbox: no isolation, and node losses (Ray)."""
        if getattr(sandbox, "isolates", True) is False:
            self.unisolated.add(agent.name)
        if hasattr(sandbox, "on_recovery"):
            def recovered(record: dict, name: str = agent.name) -> None:
                with self.state._lock:
                    current = self.state.agent(name)
                    self._set(current, recoveries=[*current.recoveries, dict(record)])
                self.note(f"{name}: its sandbox's node was lost ({record.get('reason', '?')}); recreated from the "
                          f"workspace synced {record.get('lost_s', '?')} s before the loss")

            sandbox.on_recovery = recovered

    def _notifier(self, agent: AgentState, runner) -> Callable[[], None] | None:
        """With ``monitors.notify_agents``: tell the agent about flags on its own work (``_notify``)."""
        if not self.config.monitors.notify_agents:
            return None
        return attach_flag_notes(runner, agent.name, self.config.monitors, self.transcript_path(agent.name),
                                 self._client, self.note)

    def _supervise(self, index: int, agent: AgentState) -> None:
        """Run one agent to its end, restarting it from its transcript after harness failures."""
        from aarlab.agent import Agent

        while True:
            if self.stop_event.is_set():
                self._set(agent, status="interrupted", reason="stopped by the user")
                return
            sandbox = client = close_notifier = None
            try:
                sandbox = self._sandbox(index, agent)
                self._watch_sandbox(agent, sandbox)
                sandbox.start()
                client = self._client(agent.token)
                runner = Agent(self._agent_config(agent), transcript=self.transcript_path(agent.name),
                               sandbox=sandbox, client=client,
                               budget=self.budget.child(agent.name, self.agent_limits()),
                               model=self._model(agent), stop_event=self.stop_event)
                checkpoint = getattr(sandbox, "checkpoint", None)
                if checkpoint is not None:  # a remote sandbox's recovery point follows every publish
                    runner.on_publish = lambda snapshot_id, checkpoint=checkpoint: checkpoint()
                close_notifier = self._notifier(agent, runner)
                self.agents[agent.name] = runner
                self._set(agent, status="running", started_at=agent.started_at or time.time())
                record = runner.run()
                reason, detail = record.reason, record.detail
            except Exception as exc:  # the harness failed (server unreachable, sandbox broken, a bug)
                reason, detail = "error", f"{type(exc).__name__}: {exc}"
                log.warning("%s crashed: %s", agent.name, detail, exc_info=True)
            finally:
                if close_notifier is not None:
                    close_notifier()
                for closer in (client, sandbox):
                    if closer is not None:
                        try:
                            closer.close() if closer is client else closer.stop()
                        except Exception:  # cleanup must not hide the agent's own outcome
                            pass
            if reason in ("done", "budget"):
                self._set(agent, status=reason, reason=detail, stopped_at=time.time())
                return
            if reason == "interrupted" or self.stop_event.is_set():
                self._set(agent, status="interrupted", reason=detail)
                return
            if agent.restarts >= self.config.team.max_restarts:
                self._set(agent, status="failed", reason=f"{detail} (after {agent.restarts} restarts)",
                          stopped_at=time.time())
                self.note(f"{agent.name}: failed for good: {detail}")
                return
            backoff = RESTART_BACKOFF_S[min(agent.restarts, len(RESTART_BACKOFF_S) - 1)]
            self._set(agent, status="restarting", restarts=agent.restarts + 1, reason=detail)
            self.note(f"{agent.name}: harness failed ({detail}); restarting from its transcript in {backoff:.0f} s "
                      f"({agent.restarts}/{self.config.team.max_restarts})")
            if self.stop_event.wait(backoff):
                self._set(agent, status="interrupted", reason="stopped by the user")
                return

    def _set(self, agent: AgentState, **fields) -> None:
        self.state.update_agent(self.run_dir, agent.name, **fields)

    def request_stop(self, reason: str = "stopped by the user") -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    def _lock(self):
        try:
            return hold_session_lock(self.run_dir)
        except RunLocked as exc:
            raise UserError(str(exc)) from None

    def run(self) -> RunState:
        """Run the session to its end; returns the final state. Ctrl-C stops cleanly (resumable)."""
        new_run = (self.run_dir / CREATING_MARKER).exists()
        lock = self._lock()
        previous = _install_sigterm()
        try:
            try:
                self._start_server()
                if new_run:
                    self._setup_new_run()
                    finish_creation(self.run_dir)
            except BaseException:
                if new_run:
                    self._shutdown_server()
                    abandon_run(self.run_dir)
                raise
            self.state.status, self.state.reason = "running", ""
            self.state.sessions += 1
            self.state.lab_url = self.url
            self.state.save(self.run_dir)
            self.budget = self._global_budget()
            if self.dashboard_url:
                self.note(f"dashboard: {self.dashboard_url}")
            if self.config.sandbox.backend == "process":
                from aarlab.sandbox import NOT_ISOLATED_WARNING

                self.note(f"WARNING: NOT ISOLATED: {NOT_ISOLATED_WARNING}")
            self._start_workers()
            self._run_agents()
            return self.state
        finally:
            self._stop_workers()
            self._shutdown_server()
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
            lock.close()

    def _run_agents(self) -> None:
        todo = []
        for index, agent in enumerate(self.state.agents):
            if agent.status == "failed":
                # Resuming is the user's explicit "try again" (e.g. after fixing an API key): fresh retries.
                self.note(f"{agent.name}: failed last time ({agent.reason}); trying again")
                self._set(agent, status="pending", restarts=0)
            elif agent.status == "budget" and self.budget.child(agent.name, self.agent_limits()).exhausted() is None:
                self._set(agent, status="pending")  # its budget was raised in config.yaml since
            if agent.status not in FINAL_AGENT_STATUSES:
                todo.append((index, agent))
        for index, agent in todo:
            thread = threading.Thread(target=self._supervise, args=(index, agent), name=f"agent-{agent.name}",
                                      daemon=True)
            self.threads[agent.name] = thread
            thread.start()
        view = self.view_factory(self) if self.view_factory else None
        last_save = 0.0
        try:
            if view is not None:
                view.__enter__()
            while any(t.is_alive() for t in self.threads.values()):
                try:
                    time.sleep(0.5)
                    if view is not None:
                        view.refresh()
                    if time.monotonic() - last_save > 5:
                        self._save_elapsed()
                        last_save = time.monotonic()
                except KeyboardInterrupt:
                    if self.stop_event.is_set():
                        raise  # a second Ctrl-C: leave now; the state on disk is still resumable
                    self.request_stop()
                    self.note("stopping: each agent finishes its current step (Ctrl-C again to leave at once)")
            self._finish(view)
        finally:
            self._save_elapsed()
            if view is not None:
                view.__exit__(None, None, None)

    def _finish(self, view) -> None:
        if not self.stop_event.is_set() and self.workers:
            if view is not None:
                view.status_line = "verifying the last results"
                view.refresh()
            try:
                self.final_pass(deadline_s=self.budget.remaining_wall_s(), tick=view.refresh if view else None)
            except KeyboardInterrupt:
                self.request_stop("stopped by the user while verifying")
        self._stop_workers()
        statuses = {a.status for a in self.state.agents}
        if self.stop_event.is_set() or statuses & {"interrupted", "running", "restarting", "pending"}:
            self.state.status, self.state.reason = "stopped", self.stop_reason or "stopped"
        elif self.budget.exhausted() and "budget" in statuses:
            self.state.status, self.state.reason = "budget", self.budget.exhausted() or ""
        else:
            self.state.status, self.state.reason = "finished", ""
        self.state.save(self.run_dir)
        from aarlab.team._view import fetch_lab

        self.final_lab = fetch_lab(self.url, self.admin_token, self.state.task)
        if self.state.status != "stopped":
            self.report_path = self._write_report()

    def _write_report(self) -> Path | None:
        """The run's report (a convenience: when it cannot be written, a note says why; the run has succeeded)."""
        if not self.config.report:
            return None
        try:
            from aarlab.dashboard import build_report

            return Path(build_report(self.run_dir).html)
        except Exception as exc:
            self.note(f"report: not written ({type(exc).__name__}: {exc})")
            return None

    def _save_elapsed(self) -> None:
        with self.state._lock:
            self.state.elapsed_s = self.elapsed_s
        self.state.save(self.run_dir)

    def _shutdown_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()


def _install_sigterm():
    """SIGTERM stops a run like Ctrl-C does (a clean, resumable stop), in the main thread only."""
    def _raise(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _raise)
    return signal.getsignal(signal.SIGTERM)
