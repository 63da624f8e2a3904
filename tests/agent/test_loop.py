"""The loop: steps, tool errors, budgets with hard stops, the stop record, the transcript, compaction."""

from __future__ import annotations

import threading

import pytest

from aarlab.agent import Budget, BudgetLimits, HarnessError, read_transcript, replay
from aarlab.llm import ContextWindowExceeded, get_model


def records_of(path, kind):
    return [r for r in read_transcript(path) if r["type"] == kind]


def test_a_step_runs_the_tool_calls_and_appends_the_turn(make_agent, make_sandbox, tmp_path):
    agent = make_agent([{"tool": "bash", "arguments": {"command": "echo hello > note.txt && cat note.txt"}},
                        {"tool": "finish", "arguments": {"summary": "said hello"}}],
                       sandbox=make_sandbox())
    record = agent.run()
    assert (record.reason, record.step, record.detail) == ("done", 2, "said hello")
    turns = records_of(agent.transcript_path, "turn")
    assert [t["step"] for t in turns] == [1, 2]
    result = turns[0]["tool_results"][0]
    assert "hello" in result["content"] and not result.get("is_error")
    assert (tmp_path / "ws" / "note.txt").read_text() == "hello\n"
    # The model saw the result and, with it, the budget it has left.
    tool_message = agent.messages[3]
    assert tool_message.role == "tool" and "step 1 done" in tool_message.content
    [stop] = records_of(agent.transcript_path, "stop")
    assert stop["reason"] == "done" and stop["step"] == 2


def test_tool_failures_go_back_to_the_model_and_the_loop_goes_on(make_agent, make_sandbox):
    agent = make_agent([
        {"tool": "bash", "arguments": {"command": "exit 3"}},
        {"tool": "read_file", "arguments": {"path": "missing.txt"}},
        {"tool": "no_such_tool", "arguments": {}},
        {"tool": "edit_file", "arguments": {"path": "a.txt", "old": "x", "new": "y", "bogus": 1}},
        {"tool": "submit_predictions", "arguments": {"path": "p.json"}},  # no lab: not offered
        {"tool": "finish", "arguments": {"summary": "ok"}},
    ], sandbox=make_sandbox())
    assert agent.run().reason == "done"
    results = [t["tool_results"][0] for t in records_of(agent.transcript_path, "turn")[:5]]
    assert all(r["is_error"] for r in results)
    assert "exit code 3" in results[0]["content"]
    assert "no tool 'no_such_tool'" in results[2]["content"]
    assert "unknown argument(s) ['bogus']" in results[3]["content"]
    assert "no tool 'submit_predictions'" in results[4]["content"]


def test_step_budget_stops_cleanly_and_records_why_once(make_agent):
    agent = make_agent(["thinking"] * 10, max_steps=2, stop_after_idle=5)
    record = agent.run()
    assert record.reason == "budget" and "step budget" in record.detail and record.step == 2
    assert len(records_of(agent.transcript_path, "stop")) == 1
    # More budget, run again: it resumes from the transcript where it stopped.
    agent.budget.limits = agent.budget.limits.model_copy(update={"max_steps": 4})
    again = agent.run()
    assert (again.reason, again.step) == ("budget", 4)
    assert [r["step"] for r in records_of(agent.transcript_path, "turn")] == [1, 2, 3, 4]


def test_dollar_and_token_budgets_stop_the_agent_within_one_call(make_agent, tmp_path):
    usage = {"input_tokens": 1000, "output_tokens": 100}
    model = get_model("scripted", script=["a"] * 20, usage=usage, prices={"input": 3.0, "output": 15.0})
    agent = make_agent(model=model, max_usd=0.01, stop_after_idle=50)
    record = agent.run()
    assert record.reason == "budget" and "dollar" in record.detail
    assert agent.budget.spent.usd >= 0.01 and record.step == 3  # $0.0045 a call
    agent = make_agent(model=get_model("scripted", script=["a"] * 20, usage=usage), max_tokens=2500,
                       stop_after_idle=50, name="tok")
    assert agent.run().step == 3


def test_wall_clock_budget_and_the_team_budget_apply(make_agent):
    team = Budget(BudgetLimits(max_steps=3))
    model = get_model("scripted", script=["x"] * 9)
    first = make_agent(model=model, stop_after_idle=50, name="first")
    first.budget = team.child("first")
    assert first.run().reason == "budget" and team.spent.steps == 3
    slow = make_agent(model=get_model("scripted", script=["x"] * 50, delay_s=0.05), max_wall_s=0.2,
                      stop_after_idle=100, name="slow")
    record = slow.run()
    assert record.reason == "budget" and "time budget" in record.detail and 2 <= record.step <= 6


def test_replies_without_tool_calls_are_nudged_then_stop(make_agent):
    agent = make_agent(["hmm", "still thinking", "no tools"], stop_after_idle=3)
    record = agent.run()
    assert record.reason == "done" and record.step == 3
    assert "without calling a tool" in agent.messages[-1].content


def test_a_stop_event_interrupts_between_steps(make_agent):
    stop = threading.Event()
    agent = make_agent(model=get_model("scripted", generator=lambda messages: (stop.set(), "x")[1]),
                       stop_after_idle=50)
    agent.stop_event = stop
    record = agent.run()
    assert record.reason == "interrupted" and record.step == 1


def test_the_transcript_rebuilds_the_conversation_the_model_saw(make_agent, make_sandbox):
    agent = make_agent([{"tool": "write_file", "arguments": {"path": "a.py", "content": "print(1)\n"}},
                        {"content": "run it", "tool_calls": [{"bash": {"command": "python a.py"}},
                                                             {"read_file": {"path": "a.py"}}]},
                        {"tool": "finish", "arguments": {"summary": "done"}}], sandbox=make_sandbox())
    agent.run()
    rebuilt = replay(read_transcript(agent.transcript_path))
    assert [m.model_dump() for m in rebuilt.messages] == [m.model_dump() for m in agent.messages]
    assert rebuilt.step == 3 and rebuilt.stopped == "done"
    start = read_transcript(agent.transcript_path)[0]
    assert start["type"] == "start" and "weak-to-strong" in start["system_prompt"]
    assert {t["name"] for t in start["tools"]} >= {"bash", "python", "read_file", "write_file", "edit_file",
                                                   "list_files", "finish"}
    for record in read_transcript(agent.transcript_path):
        assert {"type", "time", "agent"} <= set(record)
    turn = records_of(agent.transcript_path, "turn")[1]
    assert turn["request"]["messages"] == 4 and turn["request"]["model"] == "scripted"
    assert turn["request"]["started"] <= turn["time"] and turn["usage"]["output_tokens"] > 0


def test_compaction_summarises_old_turns_keeps_recent_ones_and_the_notebook(make_agent, make_sandbox, tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "NOTEBOOK.md").write_text("# notes\nPGR 0.4 with vanilla\n")
    summaries = []

    def summarise(messages):
        summaries.append(messages[-1].content)
        return "SUMMARY: ran echo many times"

    script = [{"tool": "bash", "arguments": {"command": f"echo step {i}"}} for i in range(12)]
    agent = make_agent(script + [{"tool": "finish", "arguments": {"summary": "x"}}], sandbox=make_sandbox(),
                       context_limit_tokens=3000, compact_at=0.5, keep_recent_turns=2)
    agent.compactor._model = get_model("scripted", generator=summarise)
    assert agent.run().reason == "done"
    compactions = records_of(agent.transcript_path, "compaction")
    assert compactions and "echo step 0" in summaries[0]
    last = compactions[-1]
    assert last["summary"] == "SUMMARY: ran echo many times" and "PGR 0.4" in last["notebook"]
    # The conversation now is: system prompt, the summary with the notebook, the recent turns.
    assert agent.messages[0].role == "system"
    assert "SUMMARY: ran echo" in agent.messages[1].content and "PGR 0.4" in agent.messages[1].content
    assert sorted(agent.turns)[0] == last["kept_from_step"]
    rebuilt = replay(read_transcript(agent.transcript_path))
    assert [m.model_dump() for m in rebuilt.messages] == [m.model_dump() for m in agent.messages]
    assert len(records_of(agent.transcript_path, "turn")) == 13  # every step ran once despite compactions


def test_consult_asks_the_advisor_model_and_charges_its_spend(make_agent, make_sandbox):
    advisor = get_model("scripted", generator=lambda messages: f"Try more seeds. ({len(messages)} msgs)",
                        usage={"input_tokens": 500, "output_tokens": 50}, prices={"input": 10, "output": 10})
    agent = make_agent([{"tool": "consult", "arguments": {"question": "What next?", "context": "PGR 0.3"}},
                        {"tool": "finish", "arguments": {"summary": "x"}}], sandbox=make_sandbox(), consult_model=advisor)
    assert "consult" in {t.name for t in agent.tool_specs}
    assert "consult" not in {t.name for t in make_agent([], name="plain").tool_specs}  # a script cannot advise
    agent.run()
    turn = records_of(agent.transcript_path, "turn")[0]
    assert turn["tool_results"][0]["content"].startswith("Try more seeds.")
    assert turn["tool_usage"]["input_tokens"] == 500 and turn["tool_cost_usd"] == pytest.approx(0.0055)
    assert "What next?" in advisor.last_messages[-1].content and "PGR 0.3" in advisor.last_messages[-1].content
    assert agent.budget.spent.tokens >= 550


def test_a_done_transcript_is_not_run_again(make_agent):
    agent = make_agent([{"tool": "finish", "arguments": {"summary": "x"}}])
    assert agent.run().reason == "done"
    again = make_agent(["should not be asked"], transcript=agent.transcript_path)
    assert again.run().reason == "done"
    assert len(records_of(agent.transcript_path, "turn")) == 1
    assert again.model.last_messages == []  # the model was not asked
    assert again.messages[0].role == "system"


def test_a_prompt_refused_as_too_long_is_compacted_and_asked_again(make_agent, make_sandbox):
    def model_step(messages):
        if len(messages) > 9:  # the "context window": 4 turns at most
            raise ContextWindowExceeded("prompt is too long")
        steps = sum(m.role == "assistant" for m in messages)
        return {"tool": "bash", "arguments": {"command": f"echo {steps}"}}

    agent = make_agent(model=get_model("scripted", generator=model_step), sandbox=make_sandbox(), max_steps=8,
                       keep_recent_turns=2)
    record = agent.run()
    assert record.reason == "budget" and record.step == 8
    assert len(records_of(agent.transcript_path, "compaction")) >= 2


def test_an_unreachable_lab_is_a_harness_error_recorded_as_such(make_agent):
    from aarlab.server.client import LabClient

    client = LabClient("http://127.0.0.1:9", "token", retries=0)
    agent = make_agent([{"tool": "leaderboard", "arguments": {}}], client=client, task_info={"name": "t"})
    with pytest.raises(HarnessError, match="cannot reach"):
        agent.run()
    [stop] = records_of(agent.transcript_path, "stop")
    assert stop["reason"] == "error" and "cannot reach" in stop["detail"]
    assert agent.writer.read_pending()["step"] == 1  # kept, so that a restart records the step, not re-runs it
    fresh = make_agent([], client=client, name="fresh")  # it must ask the lab for its task first
    with pytest.raises(Exception, match="cannot reach"):
        fresh.run()
    assert read_transcript(fresh.transcript_path) == []  # nothing half-written: a later start begins cleanly


def test_a_resumed_agent_keeps_the_task_it_got_from_the_lab(make_agent):
    first = make_agent(["x"], task_info={"name": "sentiment"}, max_steps=1)
    assert first.run().reason == "budget"
    resumed = make_agent(["y"], transcript=first.transcript_path, max_steps=2)
    resumed._start_or_resume()
    assert resumed.task == "sentiment" and resumed.step_no == 1
    resumed.writer.close()


def test_a_model_that_declares_it_cannot_answer_prompts_is_never_its_own_advisor(make_agent):
    from aarlab.llm import ModelCapabilities

    class Replayer:
        """Not a ScriptedModel: the loop must go by what the model declares, not by its class."""

        name = "replay:log"
        capabilities = ModelCapabilities(answers_prompts=False)

        def __init__(self):
            self.inner = get_model("scripted", script=["done"])

        def generate(self, messages, tools, config=None):
            return self.inner.generate(messages, tools, config)

    agent = make_agent(model=Replayer())
    assert agent.consult_model is None and "consult" not in agent._tools_by_name
    assert agent.compactor.summarizer() is None  # an extractive digest instead of a summary by a replayer
    advising = make_agent(model=get_model("openai:gpt-4o", base_url="http://127.0.0.1:9/v1"))
    assert advising.consult_model is advising.model and "consult" in advising._tools_by_name


def test_tools_tell_the_loop_through_typed_signals_that_survive_a_resume(make_agent, tmp_path, monkeypatch):
    from aarlab.agent.tools import _registry

    def report(ctx, run_left: int, done: bool = False) -> str:
        """Report the lab's budget, and maybe finish.

        Args:
            run_left: Submissions left this run.
            done: Whether to finish after this step.
        """
        ctx.signals.submissions_left = (run_left, 7)
        if done:
            ctx.signals.finished = "all done"
        return "reported"

    monkeypatch.setitem(_registry._TOOLS, "report", _registry.Tool("report", report, _registry.tool_spec(report)))
    transcript = tmp_path / "signals.jsonl"
    script = [{"tool": "report", "arguments": {"run_left": 3}}, "thinking", {"tool": "report",
                                                                              "arguments": {"run_left": 2, "done": True}}]
    first = make_agent(script, transcript=transcript, max_steps=1)
    first.run()
    assert "submissions left: 3 this run, 7 this hour" in records_of(transcript, "turn")[-1]["note"]
    assert records_of(transcript, "turn")[-1]["state"] == {"submissions_left": [3, 7]}  # the transcript's names
    resumed = make_agent(script, transcript=transcript, max_steps=5)
    record = resumed.run()
    notes = [r["note"] for r in records_of(transcript, "turn")]
    assert "submissions left: 3 this run, 7 this hour" in notes[1]  # restored from the transcript on resume
    assert record.reason == "done" and record.detail == "all done" and len(notes) == 3
