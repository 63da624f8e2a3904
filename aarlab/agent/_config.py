"""``AgentConfig``: everything that shapes one researcher agent, serialisable into its transcript."""

from __future__ import annotations

from pydantic import BaseModel, Field

from aarlab.agent._budget import BudgetLimits
from aarlab.llm import GenerateConfig


class AgentConfig(BaseModel):
    """One researcher agent.

    The team runner (``aarlab.team``) builds one per agent from the run config; ``aarlab agent run`` builds
    one from its flags. The whole config is written into the transcript's ``start`` record.
    """

    name: str = Field(min_length=1, description="The agent's name (its transcript file and forum author)")
    model: str = Field("scripted", description="Model spec, provider:model, e.g. anthropic:claude-sonnet-4-5")
    direction: str = Field("", description="The research direction given to this agent (text)")
    task: str | None = Field(None, description="The server's task name; None: the only task the server has")

    # Hard budgets for this agent (None = unlimited); the team's global budget applies on top.
    max_usd: float | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=0)
    max_steps: int | None = Field(None, ge=0)
    max_wall_s: float | None = Field(None, ge=0)
    max_cpu_hours: float | None = Field(None, ge=0, description="CPU-hours of background jobs")
    max_gpu_hours: float | None = Field(None, ge=0, description="GPU-hours of background jobs")

    consult_model: str | None = Field(None, description="Model spec for the consult tool; None: the agent's model")
    consult_max_tokens: int = 2048

    # Memory: the notebook file the agent keeps, and compaction of the conversation near the context limit.
    context_limit_tokens: int = Field(200_000, gt=0)
    compact_at: float = Field(0.8, gt=0, le=1, description="Compact when the prompt reaches this share of the limit")
    keep_recent_turns: int = Field(6, ge=1, description="Turns kept verbatim by a compaction")
    compaction_model: str | None = Field(None, description="Model spec that writes summaries; None: the agent's")
    notebook: str = Field("NOTEBOOK.md", description="The notebook file, relative to the workspace")

    tool_output_chars: int = Field(16_000, gt=200, description="Tool outputs longer than this are cut in the middle")
    tool_timeout_s: float = Field(600.0, gt=0, description="Default and maximum timeout of bash/python calls")
    job_timeout_s: float = Field(24 * 3600.0, gt=0, description="Default and maximum timeout of a background job")
    min_seeds: int = Field(3, ge=1, description="Seeds a result post needs (the server enforces its own minimum)")
    stop_after_idle: int = Field(3, ge=1, description="Stop after this many replies in a row without a tool call")
    generate: GenerateConfig = Field(default_factory=GenerateConfig)

    # Where things are inside the sandbox (the system prompt tells the agent).
    workspace_dir: str = "/workspace"
    task_dir: str = "/task"
    baselines_dir: str = "/workspace/baselines"

    @property
    def limits(self) -> BudgetLimits:
        return BudgetLimits(max_usd=self.max_usd, max_tokens=self.max_tokens, max_steps=self.max_steps,
                            max_wall_s=self.max_wall_s, max_cpu_hours=self.max_cpu_hours,
                            max_gpu_hours=self.max_gpu_hours)
