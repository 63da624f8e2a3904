"""Tools served by the harness itself: ``consult`` (research advice from an advisor model) and ``finish``."""

from __future__ import annotations

from aarlab.agent.tools._registry import ToolContext, ToolError, tool

CONSULT_SYSTEM = (
    "You are a senior machine-learning researcher advising a colleague who works on weak-to-strong "
    "generalization (fine-tuning a strong model on a weak teacher's labels; the measure is the performance gap "
    "recovered, PGR). Give concrete, critical, scientifically careful advice: what to try next and why, how to "
    "test it properly (baselines, seeds, held-out data), and what could be fooling them. Be concise."
)
MAX_CONTEXT_CHARS = 30_000


@tool(needs="consult")
def consult(ctx: ToolContext, question: str, context: str = "") -> str:
    """Ask a stronger advisor model for research advice. It does not see your conversation or files: put
    what it needs to know (results, code excerpts, your plan) in `context`. Your notebook is sent along.

    Args:
        question: What you want advice on.
        context: Background the advisor needs: your results so far, the relevant code, your hypotheses.
    """
    from aarlab.llm import GenerateConfig, Message

    agent = ctx.agent
    if not question.strip():
        raise ToolError("consult: the question is empty")
    parts = [f"## Question\n{question.strip()}"]
    if context.strip():
        parts.append(f"## Context from the researcher\n{context.strip()[:MAX_CONTEXT_CHARS]}")
    notebook = agent.read_notebook()
    if notebook:
        parts.append(f"## The researcher's notebook\n{notebook[:MAX_CONTEXT_CHARS]}")
    messages = [Message(role="system", content=CONSULT_SYSTEM), Message(role="user", content="\n\n".join(parts))]
    config = GenerateConfig(max_tokens=agent.config.consult_max_tokens, reasoning_effort="high")
    output = agent.consult_model.generate(messages, [], config)
    agent.charge_tool(output.usage, output.cost_usd)
    answer = output.message.content.strip()
    if not answer:
        raise ToolError("consult: the advisor returned no answer")
    return answer


@tool
def finish(ctx: ToolContext, summary: str) -> str:
    """End your research: call it once you have recorded your conclusions (notebook, forum). Your run stops
    after this step.

    Args:
        summary: Your conclusions in a few sentences: what worked, the best verified numbers, what is open.
    """
    ctx.signals.finished = summary.strip() or "(no summary)"
    return "Your research is recorded as finished. Thank you."
