"""Context compaction: when the prompt nears the model's context limit, older turns become a summary.

The summary is written by a model (``compaction_model``, else the agent's own; a scripted agent gets an
extractive digest, since a script cannot summarise). The new conversation is the system prompt, one user
message with the summary and the notebook's current text, and the most recent turns verbatim. The
``compaction`` transcript record holds all of that, so a resume rebuilds exactly the compacted conversation.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from aarlab.agent.transcript import compaction_message
from aarlab.llm import GenerateConfig, Message, capabilities_of, get_model

if TYPE_CHECKING:
    from aarlab.agent._agent import Agent

log = logging.getLogger(__name__)

SUMMARY_SYSTEM = (
    "You summarise the working log of an AI researcher so that it can continue its work with a fresh context. "
    "Keep everything it needs: its goal and plan, what it ran and where the code and results are (paths, "
    "snapshot ids, post numbers, submission scores), the numbers it found (PGR ± SE over n seeds), what failed "
    "and why, what it learned from the forum, and what it was about to do next. Be factual and dense; no advice."
)
RESULT_CHARS = 2_000  # per tool result, in the log the summariser reads
DIGEST_CHARS = 12_000  # length of an extractive digest


def render_turns(turns: list[list[Message]], result_chars: int = RESULT_CHARS) -> str:
    """Turns as a plain-text log (what the summariser reads)."""
    lines: list[str] = []
    for messages in turns:
        for m in messages:
            if m.role == "assistant":
                if m.content:
                    lines.append(f"RESEARCHER: {m.content.strip()}")
                for call in m.tool_calls:
                    args = json.dumps(call.arguments, ensure_ascii=False)
                    lines.append(f"CALL {call.name}({args[:result_chars]})")
            elif m.role == "tool":
                text = m.content.strip()
                if len(text) > result_chars:
                    text = text[: result_chars // 2] + " [...] " + text[-result_chars // 2:]
                lines.append(f"{'ERROR' if m.is_error else 'RESULT'}: {text}")
            elif m.role == "user":
                lines.append(f"LAB: {m.content.strip()}")
    return "\n".join(lines)


class Compactor:
    """Decides when to compact an agent's conversation and does it."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.summary: str | None = None
        self._model = None

    @property
    def threshold_tokens(self) -> int:
        return int(self.agent.config.compact_at * self.agent.config.context_limit_tokens)

    def summarizer(self):
        """The model that writes summaries (None: extractive digest)."""
        if self._model is None:
            spec = self.agent.config.compaction_model
            if spec:
                self._model = get_model(spec)
            elif capabilities_of(self.agent.model).answers_prompts:
                self._model = self.agent.model
        return self._model

    def maybe_compact(self) -> bool:
        """Compact if the last prompt reached the threshold; returns whether it did."""
        if self.agent.last_prompt_tokens < self.threshold_tokens:
            return False
        return self.compact()

    def compact(self, force: bool = False) -> bool:
        """Summarise all but the most recent turns. With ``force`` (the prompt was refused as too long) keep
        as few turns as needed, down to the last one. Returns False when there was nothing to summarise."""
        agent = self.agent
        steps = sorted(agent.turns)
        keep = min(agent.config.keep_recent_turns, len(steps) - 1)
        if force:
            keep = min(keep, max(1, len(steps) // 4))
        if keep < 0 or len(steps) - keep < 1:
            return False
        older, kept = steps[: len(steps) - keep], steps[len(steps) - keep:]
        log_text = render_turns([agent.turns[s] for s in older])
        previous = f"## Summary of the work before these turns\n{self.summary}\n\n" if self.summary else ""
        model = self.summarizer()
        usage, cost = None, 0.0
        if model is None:
            digest = log_text if len(log_text) <= DIGEST_CHARS else "[...]\n" + log_text[-DIGEST_CHARS:]
            summary = f"{previous}## Log of steps {older[0]}-{older[-1]} (extractive digest)\n{digest}"
        else:
            prompt = (f"{previous}## Working log of steps {older[0]}-{older[-1]}\n{log_text}\n\n"
                      "Write the summary now.")
            limit_chars = agent.config.context_limit_tokens * 2  # ~half the window at 4 characters a token
            if len(prompt) > limit_chars:
                prompt = prompt[: limit_chars // 4] + "\n[... cut ...]\n" + prompt[-limit_chars * 3 // 4:]
            output = model.generate([Message(role="system", content=SUMMARY_SYSTEM),
                                     Message(role="user", content=prompt)], [], GenerateConfig(max_tokens=4096))
            summary, usage, cost = output.message.content.strip(), output.usage, output.cost_usd
            agent.budget.charge(usd=cost, tokens=usage.total_tokens)
        notebook = agent.read_notebook()
        kept_from = kept[0] if kept else agent.step_no + 1
        agent.writer.write("compaction", step=agent.step_no, summary=summary, kept_from_step=kept_from,
                           notebook=notebook, usage=usage, cost_usd=cost, summarised_steps=[older[0], older[-1]])
        self.summary = summary
        agent.prefix = [agent.prefix[0], compaction_message(summary, notebook)]
        agent.turns = {s: agent.turns[s] for s in kept}
        agent._rebuild_messages()
        agent.last_prompt_tokens = 0
        log.info("%s: compacted steps %d-%d, kept %d recent turns", agent.config.name, older[0], older[-1], len(kept))
        return True
