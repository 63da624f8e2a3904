"""``anthropic:<model>``: Claude through the official ``anthropic`` SDK (Messages API, non-streaming).

Prompt caching: with ``GenerateConfig.cache`` (the default) up to four ``cache_control`` breakpoints are set:
on the last tool (caches the tool definitions), on the system prompt, on the last message (the moving
breakpoint that writes this turn's prefix) and on the message that ended the previous request (where
that request wrote, so this one reads even when a turn added more than the API's 20-block look-back).

Extended thinking: ``GenerateConfig.thinking_budget`` turns it on. Thinking blocks come back in
``Message.thinking`` (text, for people) and ``Message.provider_data["anthropic"]["thinking_blocks"]``
(verbatim, with signatures), and are sent back as they came, which the API requires for tool use.
"""

from __future__ import annotations

from typing import Any

from aarlab.llm._api import ModelAPI
from aarlab.llm._base import GenerateConfig, Message, ToolCall, ToolSpec, Usage, provider

API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
MAX_BREAKPOINTS = 4
_EPHEMERAL = {"type": "ephemeral"}


def to_anthropic(messages: list[Message], tools: list[ToolSpec], cache: bool) -> dict[str, Any]:
    """Our messages and tools as Messages-API ``system``, ``messages`` and ``tools`` parameters."""
    system_text = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        # The API wants user/assistant turns to alternate: consecutive tool results and user text join
        # one user turn (tool results first, as they come right after the assistant's tool_use).
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})

    params: dict[str, Any] = {"messages": wire}
    if system_text:
        params["system"] = [{"type": "text", "text": system_text}]
    if tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
        ]
    if cache:
        _set_breakpoints(params)
    return params


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
            "content": message.content or "(no output)",
        }
        if message.is_error:
            block["is_error"] = True
        return [block]
    if message.role == "user":
        return [{"type": "text", "text": message.content or "(empty)"}]
    blocks: list[dict[str, Any]] = []
    data = (message.provider_data or {}).get("anthropic") or {}
    blocks.extend(dict(b) for b in data.get("thinking_blocks", []))
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments} for call in message.tool_calls
    )
    if not any(b["type"] in ("text", "tool_use") for b in blocks):
        blocks.append({"type": "text", "text": "(no content)"})
    return blocks


def _set_breakpoints(params: dict[str, Any]) -> None:
    marked = 0
    if params.get("tools"):
        params["tools"][-1] = {**params["tools"][-1], "cache_control": _EPHEMERAL}
        marked += 1
    if params.get("system"):
        params["system"][-1]["cache_control"] = _EPHEMERAL
        marked += 1
    wire = params["messages"]
    # The last message writes this request's prefix; the user turn before the last assistant turn is
    # where the previous request ended, i.e. where it wrote the cache.
    targets = [len(wire) - 1] if wire else []
    if len(wire) >= 3 and wire[-1]["role"] == "user" and wire[-2]["role"] == "assistant":
        targets.append(len(wire) - 3)
    for index in targets:
        if marked >= MAX_BREAKPOINTS:
            break
        content = wire[index]["content"]
        cacheable = [i for i, b in enumerate(content) if b["type"] not in ("thinking", "redacted_thinking")]
        if cacheable:
            content[cacheable[-1]] = {**content[cacheable[-1]], "cache_control": _EPHEMERAL}
            marked += 1


def from_anthropic(response: Any) -> tuple[Message, Usage]:
    """A Messages-API response as our assistant message and usage."""
    texts, calls, thinking_texts, thinking_blocks = [], [], [], []
    for block in response.content:
        kind = block.type
        if kind == "text":
            texts.append(block.text)
        elif kind == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input or {})))
        elif kind == "thinking":
            thinking_texts.append(block.thinking)
            thinking_blocks.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.data})
    message = Message(
        role="assistant",
        content="\n\n".join(texts),
        tool_calls=calls,
        thinking="\n\n".join(thinking_texts) or None,
        provider_data={"anthropic": {"thinking_blocks": thinking_blocks}} if thinking_blocks else None,
    )
    u = response.usage
    usage = Usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_write_tokens=getattr(u, "cache_creation_input_tokens", None) or 0,
        cache_read_tokens=getattr(u, "cache_read_input_tokens", None) or 0,
    )
    return message, usage


class AnthropicModel(ModelAPI):
    """Claude via the Messages API. Build it with ``get_model("anthropic:<model>", **options)`` (options: see
    ``ModelAPI``)."""

    provider = "anthropic"
    sdk = "anthropic"
    client_class = "Anthropic"
    api_key_env = API_KEY_ENV
    base_url_env = BASE_URL_ENV
    example_model = "claude-sonnet-4-5"
    default_context_window = 200_000

    def request(self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for this conversation (public for inspection)."""
        params = to_anthropic(messages, tools, cache=config.cache)
        params["model"] = self.model
        params["max_tokens"] = config.max_tokens
        if config.tool_choice and tools:
            params["tool_choice"] = {"type": {"auto": "auto", "required": "any", "none": "none"}[config.tool_choice]}
        if config.thinking_budget:
            budget = max(1024, config.thinking_budget)
            params["thinking"] = {"type": "enabled", "budget_tokens": budget}
            # Thinking counts against max_tokens, which must exceed the budget; temperature must stay unset.
            if config.max_tokens <= budget:
                params["max_tokens"] = budget + config.max_tokens
        elif config.temperature is not None:
            params["temperature"] = config.temperature
        return params

    def call(self, params: dict[str, Any]) -> Any:
        return self.client.messages.create(**params, timeout=self.timeout)

    def parse(self, response: Any) -> tuple[Message, Usage, str | None]:
        message, usage = from_anthropic(response)
        return message, usage, response.stop_reason

    def is_context_overflow(self, status: int | None, detail: str, code: str | None) -> bool:
        return status == 413 or (status == 400 and ("too long" in detail or "context" in detail.lower()))


@provider("anthropic")
def make_anthropic(model: str, **options: Any) -> AnthropicModel:
    return AnthropicModel(model, **options)
