"""Why an agent's loop stops. Each is an exception raised from inside ``step()`` and caught in one place,
``Agent.run()``, which writes the transcript's ``stop`` record with the exception's ``reason``."""

from __future__ import annotations


class AgentStop(Exception):
    """Base of the exceptions that end the loop cleanly; ``reason`` is what the ``stop`` record says."""

    reason = "stopped"

    def __init__(self, detail: str = ""):
        super().__init__(detail or self.reason)
        self.detail = detail


class BudgetExhausted(AgentStop):
    """A hard budget (tokens, dollars, steps, wall-clock; the agent's own or the team's) is spent."""

    reason = "budget"


class Interrupted(AgentStop):
    """Someone asked the agent to stop (the team's Ctrl-C, a global stop); the run can be resumed."""

    reason = "interrupted"


class AgentDone(AgentStop):
    """The agent declared its research finished (``finish`` tool) or stopped calling tools."""

    reason = "done"


class HarnessError(Exception):
    """A fault of the harness itself (not of the model's tool use): propagates out of ``run()``."""
