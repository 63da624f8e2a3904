"""The researcher loop: ``step()`` asks the model, runs its tool calls and appends the turn; ``run()`` repeats.

Everything a step does is written to the transcript before the next begins (see ``transcript.py``), so the
conversation, the spend and the tools' state can be rebuilt after a crash. Stopping is an exception
(``AgentStop``) raised anywhere inside ``step()`` and recorded once, in ``run()``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from aarlab.agent._budget import Budget, Spend
from aarlab.agent._compaction import Compactor
from aarlab.agent._config import AgentConfig
from aarlab.agent._prompts import IDLE_NUDGE, first_message, render_system_prompt
from aarlab.agent._stops import AgentDone, AgentStop, HarnessError, Interrupted
from aarlab.agent.tools import Tool, ToolContext, ToolError, get_tools
from aarlab.agent.tools._registry import AgentLabClient, AgentSandbox, LoopSignals
from aarlab.agent.transcript import TranscriptWriter, read_transcript, replay, turn_messages
from aarlab.llm import (
    ContextWindowExceeded,
    Message,
    Model,
    ModelOutput,
    ToolCall,
    Usage,
    capabilities_of,
    estimate_tokens,
    get_model,
)

log = logging.getLogger(__name__)
INTERRUPTED_CALL = "This tool call was interrupted by a restart of your harness; it was not run again. " \
                   "Check its effects (files, forum, submissions) before repeating it."


class StopRecord(BaseModel):
    """Why and when an agent's loop ended (the transcript's ``stop`` record)."""

    reason: str  # "done" | "budget" | "interrupted" | "error"
    detail: str = ""
    step: int = 0


def _cut_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}\n[... {len(text) - head - tail:,} characters cut ...]\n{text[-tail:]}"


class Agent:
    """One researcher: a model, its tools (sandbox, lab, advisor) and its transcript. See ``aarlab.agent``."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        transcript: str | Path,
        sandbox: AgentSandbox | None = None,
        client: AgentLabClient | None = None,
        budget: Budget | None = None,
        task_info: Any = None,
        model: Model | None = None,
        consult_model: Model | None = None,
        stop_event: threading.Event | None = None,
        tools: list[str] | None = None,
    ):
        self.config = config
        self.sandbox = sandbox
        self.client = client
        self.model = model or get_model(config.model)
        self.budget = budget or Budget(config.limits, name=config.name)
        self.stop_event = stop_event or threading.Event()
        self.consult_model = consult_model
        if self.consult_model is None and config.consult_model:
            self.consult_model = get_model(config.consult_model)
        elif self.consult_model is None and capabilities_of(self.model).answers_prompts:
            self.consult_model = self.model  # a separate call with its own prompt; a script cannot advise
        self.task_info = task_info
        self.task = config.task or self._field(task_info, "name")
        # Callables ``(step) -> list[str]`` whose lines join the note after each turn: how a harness tells
        # the agent things between steps (e.g. monitor flags on its own work) so they land in the transcript.
        self.note_sources: list[Callable[[int], list[str]]] = []
        self.tools = self._select_tools(tools)
        self.tool_specs = [t.spec for t in self.tools]
        self._tools_by_name = {t.name: t for t in self.tools}
        self.transcript_path = Path(transcript)
        self.writer: TranscriptWriter | None = None
        self.compactor = Compactor(self)

        # The conversation: a prefix (system prompt, then the first message or the latest summary) and the
        # turns since the last compaction, by step.
        self.prefix: list[Message] = []
        self.turns: dict[int, list[Message]] = {}
        self.messages: list[Message] = []
        self.step_no = 0
        self.state: dict[str, Any] = {}  # the tools' own memory (forum cursor, snapshot parent)
        self.signals = LoopSignals()  # what tools tell the loop (finished, submissions left)
        self.last_prompt_tokens = 0
        self.idle_replies = 0
        self._tool_usage = Usage()
        self._tool_cost = 0.0
        self._jobs_charged = (0.0, 0.0)  # (CPU s, GPU s) of this sandbox's jobs already charged to the budget
        self._request: dict[str, Any] | None = None  # what the current step asked the model (for the record)
        self._started = False
        self._stop_record: StopRecord | None = None
        # Called with the id of every snapshot the agent publishes (the team checkpoints remote sandboxes).
        self.on_publish: Callable[[str], None] | None = None

    # -- setup -------------------------------------------------------------------------------------------------
    @staticmethod
    def _field(info: Any, name: str) -> Any:
        if info is None:
            return None
        return info.get(name) if isinstance(info, dict) else getattr(info, name, None)

    def _select_tools(self, names: list[str] | None) -> list[Tool]:
        have = {None: True, "sandbox": self.sandbox is not None, "client": self.client is not None,
                "consult": self.consult_model is not None, "jobs": self._jobs() is not None}
        return [t for t in get_tools(names) if have.get(t.needs, False)]

    def _resolve_task(self) -> None:
        """Find the task's public info at the lab when it was not given (the only task, or ``config.task``)."""
        if self.task_info is not None or self.client is None:
            return
        tasks = self.client.tasks()
        if self.config.task:
            matching = [t for t in tasks if t.name == self.config.task]
            if not matching:
                raise HarnessError(f"the lab has no task {self.config.task!r} (it has {[t.name for t in tasks]})")
            self.task_info = matching[0]
        elif len(tasks) == 1:
            self.task_info = tasks[0]
        elif tasks:
            raise HarnessError(f"the lab has {len(tasks)} tasks; name one ({[t.name for t in tasks]})")
        self.task = self.task or self._field(self.task_info, "name")

    def _start_or_resume(self) -> None:
        records = read_transcript(self.transcript_path)
        if not records:
            self._resolve_task()  # before the writer: a lab that cannot be reached leaves no transcript behind
        self.writer = TranscriptWriter(self.transcript_path, self.config.name, overlap_fsync=True)
        if not records:
            system = render_system_prompt(
                self.config, self.task_info, budget=self.budget.describe(),
                sandbox=self._sandbox_description(), consult=self.consult_model is not None,
                job_slots=getattr(self._jobs(), "slots", None) if "job_start" in self._tools_by_name else None,
            )
            first = first_message(self.config)
            self.writer.write("start", system_prompt=system, first_message=first,
                              tools=[t.model_dump() for t in self.tool_specs],
                              config=self.config.model_dump(mode="json"), model=self.model.name, task=self.task)
            self.prefix = [Message(role="system", content=system), Message(role="user", content=first)]
        else:
            self._restore(records)
        self._rebuild_messages()
        self._started = True

    def _restore(self, records: list[dict]) -> None:
        start = next((r for r in records if r.get("type") == "start"), {})
        self.task = self.task or start.get("task") or (start.get("config") or {}).get("task")
        rebuilt = replay(records)
        if not rebuilt.started:
            raise HarnessError(f"{self.transcript_path}: a transcript must begin with a start record")
        self.step_no = rebuilt.step
        self.state = dict(rebuilt.state)
        self._take_signals_from_state()
        self.last_prompt_tokens = rebuilt.last_prompt_tokens
        self.compactor.summary = rebuilt.summary
        self.idle_replies = rebuilt.idle_replies
        self.budget.restore(Spend(usd=rebuilt.cost_usd, tokens=rebuilt.usage.total_tokens, steps=rebuilt.step,
                                  wall_s=rebuilt.elapsed_s, cpu_s=rebuilt.job_cpu_s, gpu_s=rebuilt.job_gpu_s))
        self.prefix, self.turns = rebuilt.prefix, rebuilt.turns
        if rebuilt.stopped == "done":
            self._stop_record = StopRecord(reason="done", detail=rebuilt.stop_detail, step=self.step_no)
        self._recover_pending()
        if capabilities_of(self.model).resumes_by_step:
            self.model.seek(self.step_no)

    def _recover_pending(self) -> None:
        """A step cut short by a crash: record what its tools did; calls that had not finished are not re-run."""
        pending = self.writer.read_pending()
        if not pending or int(pending.get("step", -1)) != self.step_no + 1:
            self.writer.clear_pending()
            return
        assistant = Message.model_validate(pending["assistant"])
        done = {r["tool_call_id"]: Message.model_validate(r) for r in pending.get("tool_results", [])}
        results = [done.get(call.id) or Message(role="tool", tool_call_id=call.id, content=INTERRUPTED_CALL,
                                                 is_error=True) for call in assistant.tool_calls]
        self.state.update(pending.get("state") or {})
        self._take_signals_from_state()
        usage, cost = Usage.model_validate(pending.get("usage") or {}), float(pending.get("cost_usd") or 0.0)
        self.budget.charge(usd=cost, tokens=usage.total_tokens, steps=1)
        self._request = pending.get("request")
        self._record_turn(self.step_no + 1, assistant, results, usage, cost, float(pending.get("latency_s") or 0.0),
                          recovered=True)
        log.warning("%s: recovered step %d from a crash (%d of %d tool calls had finished)", self.config.name,
                    self.step_no, len(done), len(assistant.tool_calls))
        self._stop_if_finished()  # the crash came right after the agent called finish

    def _sandbox_description(self) -> str:
        if self.sandbox is None:
            return "none (no sandbox tools)"
        backend = getattr(self.sandbox, "backend", "") or type(self.sandbox).__name__
        isolated = getattr(self.sandbox, "isolates", True)
        return f"{backend} ({'isolated, no network' if isolated else 'NOT isolated'})"

    def _rebuild_messages(self) -> None:
        self.messages = self.prefix + [m for step in sorted(self.turns) for m in self.turns[step]]

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> StopRecord:
        """Run steps until the agent stops; returns (and records, once) why it stopped."""
        self._stop_record = None
        try:
            if not self._started:
                self._start_or_resume()
            if self._stop_record is not None:  # the transcript says the research is finished
                return self._stop_record
            while True:
                self.step()
        except AgentStop as stop:
            return self._record_stop(stop.reason, stop.detail or str(stop))
        except KeyboardInterrupt:
            return self._record_stop(Interrupted.reason, "keyboard interrupt")
        except Exception as exc:
            self._record_stop("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if self.writer is not None:
                pending = self.writer.read_pending()
                if pending is None or int(pending.get("step", 0)) <= self.step_no:  # else: a step to recover
                    self.writer.clear_pending()
                self.writer.close()
            self._started = False  # calling run() again resumes from the transcript

    def step(self) -> None:
        """One turn: ask the model, run the tool calls it made, append everything to the conversation."""
        if not self._started:
            self._start_or_resume()
        self._check_stop()
        self.compactor.maybe_compact()
        self._request = {"model": self.model.name, "messages": len(self.messages), "tools": len(self.tool_specs),
                         "max_tokens": self.config.generate.max_tokens, "started": round(time.time(), 3)}
        output = self._generate()
        step = self.step_no + 1
        self.budget.charge(usd=output.cost_usd, tokens=output.usage.total_tokens, steps=1)
        # A server that reports no usage still gets compacted in time: estimate the prompt's size instead.
        self.last_prompt_tokens = output.usage.total_input_tokens or estimate_tokens(
            [m.model_dump(exclude_defaults=True) for m in self.messages])
        assistant = output.message
        pending = {"step": step, "request": self._request, "assistant": assistant.model_dump(mode="json"),
                   "tool_results": [],
                   "usage": output.usage.model_dump(), "cost_usd": output.cost_usd, "latency_s": output.latency_s}
        if assistant.tool_calls:
            self.writer.wait_durable()  # the turns before this one are on disk before any of its tools runs
            self.writer.write_pending(pending)
        results = []
        for i, call in enumerate(assistant.tool_calls):
            results.append(self._run_tool(call))
            self._take_signals_from_state()
            # After the last call the turn record follows at once; a crash in between reports that call as
            # interrupted (never re-run), so the side file need not be rewritten for it.
            if i + 1 < len(assistant.tool_calls):
                pending["tool_results"] = [r.model_dump(mode="json") for r in results]
                pending["state"] = self._state_record(with_finished=True)
                self.writer.write_pending(pending)
        self._record_turn(step, assistant, results, output.usage, output.cost_usd, output.latency_s)
        self._stop_if_finished()
        if self.idle_replies >= self.config.stop_after_idle:
            raise AgentDone(f"{self.idle_replies} replies in a row without a tool call")

    def _stop_if_finished(self) -> None:
        if self.signals.finished is not None:
            summary, self.signals.finished = self.signals.finished, None
            raise AgentDone(summary)

    def _take_signals_from_state(self) -> None:
        """Move what tools still report through magic ``state`` keys into the typed ``signals``.

        Issue 15, in transition: ``finish`` (tools/_meta_tools.py) and ``submit_predictions``
        (tools/_lab_tools.py) write ``state["finished"]`` and ``state["submissions_left"]``; once they set
        ``ctx.signals`` instead, this only reads old transcripts' ``state`` (which keeps those names)."""
        if "finished" in self.state:
            self.signals.finished = str(self.state.pop("finished"))
        if "submissions_left" in self.state:
            run_left, hour_left = self.state.pop("submissions_left")
            self.signals.submissions_left = (int(run_left), int(hour_left))

    def _state_record(self, with_finished: bool = False) -> dict[str, Any]:
        """The tools' state as the transcript keeps it: their own memory plus the signals that outlive a step
        (and ``finished`` in the pending side file, so a crash right after ``finish`` still ends the run)."""
        record = dict(self.state)
        if self.signals.submissions_left is not None:
            record["submissions_left"] = list(self.signals.submissions_left)
        if with_finished and self.signals.finished is not None:
            record["finished"] = self.signals.finished
        return record

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Interrupted("stop requested")
        self.account_jobs()
        self.budget.check()

    def _generate(self) -> ModelOutput:
        try:
            return self.model.generate(self.messages, self.tool_specs, self.config.generate)
        except ContextWindowExceeded:
            log.warning("%s: the prompt exceeded the context window; compacting", self.config.name)
            if not self.compactor.compact(force=True):
                raise
            return self.model.generate(self.messages, self.tool_specs, self.config.generate)

    def _run_tool(self, call: ToolCall) -> Message:
        """Run one tool call; every failure but the harness's own comes back to the model as a tool error."""
        from aarlab.server.client import LabError

        started = time.perf_counter()
        tool = self._tools_by_name.get(call.name)
        ctx = ToolContext(agent=self, sandbox=self.sandbox, client=self.client, task=self.task, state=self.state,
                          signals=self.signals)
        try:
            if tool is None:
                raise ToolError(f"there is no tool {call.name!r}; your tools are {sorted(self._tools_by_name)}")
            content, is_error = tool(ctx, call.arguments), False
        except (AgentStop, HarnessError):
            raise
        except LabError as exc:
            if exc.status == 0:  # the lab is unreachable: not the model's doing, and retrying blindly is waste
                raise HarnessError(str(exc)) from exc
            content, is_error = str(exc), True
        except ToolError as exc:
            content, is_error = str(exc), True
        except Exception as exc:
            content, is_error = f"{type(exc).__name__}: {exc}", True
        log.debug("%s: tool %s took %.2f s", self.config.name, call.name, time.perf_counter() - started)
        content = _cut_middle(str(content), self.config.tool_output_chars)
        return Message(role="tool", tool_call_id=call.id, content=content, is_error=is_error)

    def _record_turn(self, step: int, assistant: Message, results: list[Message], usage: Usage, cost: float,
                     latency: float, recovered: bool = False) -> None:
        """Write the turn record (durably), then append the turn to the conversation."""
        self.idle_replies = 0 if assistant.tool_calls else self.idle_replies + 1
        job_events = self._job_events(step)
        note = self._note(step, assistant, job_events)
        extra = {"recovered": True} if recovered else {}
        spent = self.budget.spent
        if job_events or spent.cpu_s or spent.gpu_s:  # running totals, restored on resume like the dollars
            extra.update(job_cpu_s=round(spent.cpu_s, 3), job_gpu_s=round(spent.gpu_s, 3))
        self.writer.write(
            "turn", step=step, assistant=assistant, tool_results=results, usage=usage, cost_usd=cost,
            latency_s=round(latency, 4), note=note, request=self._request, tool_usage=self._tool_usage, tool_cost_usd=self._tool_cost,
            elapsed_s=round(self.budget.elapsed_s, 3), idle_replies=self.idle_replies,
            state=self._state_record(), **extra,
        )
        # The side file is not deleted here (an unlink costs milliseconds on some file systems): a pending
        # step at or below the last recorded one is ignored on resume, and run() removes it at the end.
        self._tool_usage, self._tool_cost, self._request = Usage(), 0.0, None
        self.step_no = step
        added = turn_messages(assistant, results, note)
        self.turns[step] = added
        self.messages.extend(added)

    def _job_events(self, step: int) -> list[dict]:
        """The sandbox's job events since the last turn (started, ended, lost in a crash), each written to the
        transcript as a ``job`` record just before the turn that saw it."""
        jobs = self._jobs()
        events = jobs.drain_events() if jobs is not None else []
        for event in events:
            self.writer.write("job", step=step, **event)
        return events

    def _note(self, step: int, assistant: Message, job_events: list[dict] | None = None) -> str:
        """What the model sees after its turn: the budget left, jobs that ended or were lost, and a nudge when
        it called no tool."""
        note = f"step {step} done · {self.budget.describe()}"
        for event in job_events or []:
            if event["event"] == "end":
                note += (f"\n[jobs] {event['name']} ended ({event['detail']}) after {event['runtime_s']:.0f} s; "
                         f"output: {event['log']}")
            elif event["event"] == "lost":
                note += (f"\n[jobs] LOST in a restart of your harness: job {event['name']} "
                         f"($ {event['command']}) had run {event['runtime_s']:.0f} s and was killed; its partial "
                         f"output is in {event['log']}. Start it again if you still need it.")
        if self.signals.submissions_left is not None:
            run_left, hour_left = self.signals.submissions_left
            note += f" · submissions left: {run_left} this run, {hour_left} this hour"
        if not assistant.tool_calls:
            note += "\n" + IDLE_NUDGE.format(left=max(0, self.config.stop_after_idle - self.idle_replies))
        for source in self.note_sources:
            if lines := source(step):
                note += "\n" + "\n".join(lines)
        return note

    def _record_stop(self, reason: str, detail: str) -> StopRecord:
        record = StopRecord(reason=reason, detail=detail, step=self.step_no)
        if self.writer is not None and not self.writer.closed:
            self.writer.write("stop", reason=reason, detail=detail, step=self.step_no,
                              elapsed_s=round(self.budget.elapsed_s, 3))
        self._stop_record = record
        log.info("%s stopped at step %d: %s (%s)", self.config.name, self.step_no, reason, detail)
        return record

    # -- used by tools -----------------------------------------------------------------------------------------
    def _jobs(self) -> Any:
        return getattr(self.sandbox, "jobs", None) if self.sandbox is not None else None

    def account_jobs(self) -> None:
        """Charge the background jobs' CPU and GPU time since the last call to the budget, and stop the agent
        (``BudgetExhausted``) when that spends it: a compute budget stops an agent like dollars do."""
        jobs = self._jobs()
        if jobs is None:
            return
        cpu_s, gpu_s = jobs.usage()
        done_cpu, done_gpu = self._jobs_charged
        if cpu_s > done_cpu or gpu_s > done_gpu:
            self.budget.charge(cpu_s=max(0.0, cpu_s - done_cpu), gpu_s=max(0.0, gpu_s - done_gpu))
            self._jobs_charged = (max(cpu_s, done_cpu), max(gpu_s, done_gpu))
        self.budget.check()

    def charge_tool(self, usage: Usage, cost_usd: float) -> None:
        """Count a tool's own model spend (``consult``) against the budget and into this turn's record."""
        self._tool_usage = self._tool_usage + usage
        self._tool_cost += cost_usd
        self.budget.charge(usd=cost_usd, tokens=usage.total_tokens)

    def read_notebook(self) -> str | None:
        """The notebook's current text, or None if the agent has none (or no sandbox)."""
        if self.sandbox is None:
            return None
        from aarlab.sandbox import FileTooLarge

        try:
            return self.sandbox.read_file(self.config.notebook).decode("utf-8", errors="replace")
        except FileTooLarge as exc:  # read with the file tools' cap: a huge notebook must not flood the context
            return (f"[the notebook {self.config.notebook} is {exc.size / 2**20:.1f} MB, larger than the "
                    f"{exc.limit / 2**20:g} MB read back; keep it to your findings and read it in parts with bash]")
        except Exception:  # no notebook yet: nothing to show
            return None

    def describe(self) -> dict[str, Any]:
        """A JSON-able view of where the agent is (for status displays)."""
        spent = self.budget.spent
        return {"name": self.config.name, "model": self.model.name, "step": self.step_no,
                "usd": round(spent.usd, 4), "tokens": spent.tokens, "elapsed_s": round(spent.wall_s, 1),
                "stopped": self._stop_record.model_dump() if self._stop_record else None,
                "state": json.loads(json.dumps(self._state_record(), default=str))}
