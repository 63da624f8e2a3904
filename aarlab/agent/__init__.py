"""aarlab.agent: the loop that turns an LLM into a researcher working in its sandbox and talking to the lab.

    from aarlab.agent import Agent, AgentConfig

    agent = Agent(
        AgentConfig(name="ada", model="anthropic:claude-sonnet-4-5", direction="...", max_usd=5),
        sandbox=sandbox,                       # a started aarlab.sandbox.Sandbox (or None: no sandbox tools)
        client=LabClient(url, agent_token),    # the agent's own token (or None: no lab tools)
        transcript="runs/r1/transcripts/ada.jsonl",
        budget=team_budget.child("ada", config.limits),   # optional; default Budget(config.limits)
        task_info=task_summary,                # optional TaskSummary/TaskInfo; default: fetched from the lab
        model=None,                            # optional Model instance; default get_model(config.model)
        consult_model=None,                    # optional Model for the consult tool (else config.consult_model)
        stop_event=threading.Event(),          # optional: set it to stop the agent cleanly (Interrupted)
        tools=None,                            # optional list of tool names (default: all it can serve)
    )
    agent.on_publish = lambda snapshot_id: ...  # optional hook, called after each snapshot_publish
    record = agent.run()                       # StopRecord(reason, detail, step): "done" | "budget" |
                                               # "interrupted" | "error"

Resuming is constructing an ``Agent`` on an existing transcript and calling ``run()`` again: it rebuilds the
conversation, the spend and the tools' state from the transcript, turns a step cut short by a crash into its
turn record (tool calls that had not finished are reported to the model as interrupted, never re-run) and
carries on. An agent whose transcript ends with a ``done`` stop returns that record at once; calling ``run()``
again on the same object (e.g. after raising a budget) resumes the same way. ``run()`` records a harness
failure (an unreachable lab, a bug) as an ``error`` stop and re-raises it, so a supervisor can restart.

``step()`` is one turn: ask the model, run its tool calls, append the turn to the conversation and the
transcript. ``run()`` repeats it until a stop exception (``aarlab.agent.AgentStop``) and records why, once.
"""

from aarlab.agent._agent import Agent, StopRecord
from aarlab.agent._budget import Budget, BudgetLimits, Spend
from aarlab.agent._config import AgentConfig
from aarlab.agent._prompts import render_system_prompt
from aarlab.agent._stops import AgentDone, AgentStop, BudgetExhausted, HarnessError, Interrupted
from aarlab.agent.tools import Tool, ToolContext, ToolError, get_tools, registered_tools, tool
from aarlab.agent.transcript import TranscriptWriter, read_transcript, rebuild_messages, replay

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentDone",
    "AgentStop",
    "Budget",
    "BudgetExhausted",
    "BudgetLimits",
    "HarnessError",
    "Interrupted",
    "Spend",
    "StopRecord",
    "Tool",
    "ToolContext",
    "ToolError",
    "TranscriptWriter",
    "get_tools",
    "read_transcript",
    "rebuild_messages",
    "registered_tools",
    "render_system_prompt",
    "replay",
    "tool",
]
