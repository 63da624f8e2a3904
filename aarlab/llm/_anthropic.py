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

import os
import time
from typing import Any

from aarlab.errors import UserError, require
from aarlab.llm._base import GenerateConfig, Message, ModelOutput, ToolCall, ToolSpec, Usage, provider
from aarlab.llm._errors import ContextWindowExceeded, ModelError
from aarlab.llm._pricing import cost_of, resolve_price
from aarlab.llm._retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after, with_retries

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


class AnthropicModel:
    """Claude via the Messages API. Build it with ``get_model("anthropic:<model>", **options)``."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 6,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 60.0,
        prices: Any = None,
        prices_file: str | None = None,
        context_window: int = 200_000,
        default_headers: dict[str, str] | None = None,
    ):
        if not model:
            raise UserError("anthropic: name a model, e.g. anthropic:claude-sonnet-4-5")
        anthropic = require("anthropic", "anthropic")
        base_url = base_url or os.environ.get(BASE_URL_ENV) or None
        api_key = api_key or os.environ.get(API_KEY_ENV)
        if not api_key:
            if not base_url:
                raise UserError(f"anthropic:{model} needs an API key: set {API_KEY_ENV} (or pass api_key=...)")
            api_key = "unused"  # a gateway or local server at base_url does its own authentication
        self.model = model
        self.name = f"anthropic:{model}"
        self.context_window = context_window
        self.retry = RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay)
        self.price = resolve_price(self.name, prices, prices_file)
        self.timeout = timeout
        self._sdk = anthropic
        # Retries are ours (see _retry.py), so the SDK must not retry on its own as well.
        self.client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout, default_headers=default_headers
        )

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

    def generate(
        self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig | None = None
    ) -> ModelOutput:
        config = config or GenerateConfig()
        params = self.request(messages, tools, config)
        start = time.perf_counter()
        try:
            response, _ = with_retries(
                lambda: self.client.messages.create(**params, timeout=self.timeout),
                self.retry,
                self._classify,
                what=self.name,
            )
        except self._sdk.APIError as exc:
            raise self._translate(exc) from exc
        latency = time.perf_counter() - start
        message, usage = from_anthropic(response)
        return ModelOutput(
            message=message,
            usage=usage,
            cost_usd=cost_of(usage, self.price),
            latency_s=latency,
            stop_reason=response.stop_reason,
            model=self.name,
        )

    def _classify(self, exc: Exception) -> tuple[bool, float | None]:
        if isinstance(exc, self._sdk.APIConnectionError):
            return True, None
        if isinstance(exc, self._sdk.APIStatusError):
            return exc.status_code in RETRYABLE_STATUS, parse_retry_after(exc.response.headers)
        return False, None

    def _translate(self, exc: Exception) -> Exception:
        status = getattr(exc, "status_code", None)
        detail = getattr(exc, "message", None) or str(exc)
        if status in (401, 403):
            return UserError(f"{self.name}: the API refused the key (HTTP {status}); check {API_KEY_ENV}: {detail}")
        if status == 404:
            return UserError(f"{self.name}: model not found (HTTP 404): {detail}")
        if status in (400, 413) and ("too long" in detail or "context" in detail.lower() or status == 413):
            return ContextWindowExceeded(f"{self.name}: prompt too long: {detail}", status=status)
        retryable = self._classify(exc)[0]
        tail = f" after {self.retry.max_retries} retries" if retryable else ""
        return ModelError(f"{self.name}: {detail}{tail}", status=status, retryable=retryable)


@provider("anthropic")
def make_anthropic(model: str, **options: Any) -> AnthropicModel:
    return AnthropicModel(model, **options)
