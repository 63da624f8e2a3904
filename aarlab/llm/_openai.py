"""``openai:<model>``: any OpenAI-compatible chat-completions server through the official ``openai`` SDK.

OpenAI itself, or any ``base_url`` that speaks the protocol (vLLM, Ollama, llama.cpp's server, LM Studio):
``get_model("openai:llama3", base_url="http://127.0.0.1:8080/v1")`` or ``$OPENAI_BASE_URL``. Tool calls use
the ``tools`` / ``tool_calls`` fields; usage reports ``prompt_tokens_details.cached_tokens`` as cache reads
(OpenAI caches prompt prefixes automatically, so there are no breakpoints to set).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aarlab.llm._api import ModelAPI
from aarlab.llm._base import GenerateConfig, Message, ToolCall, ToolSpec, Usage, provider
from aarlab.llm._errors import ModelError

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
INVALID_ARGUMENTS = "__invalid_json__"  # a tool call whose arguments were not JSON (the agent reports it)
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def to_openai(messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]:
    """Our messages and tools as chat-completions ``messages`` and ``tools`` parameters."""
    wire: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            content = f"ERROR: {m.content}" if m.is_error else m.content
            wire.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": content or "(no output)"})
        elif m.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": m.content or None}
            if m.tool_calls:
                entry["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                    for c in m.tool_calls
                ]
            elif not m.content:
                entry["content"] = "(no content)"
            wire.append(entry)
        else:
            wire.append({"role": m.role, "content": m.content})
    params: dict[str, Any] = {"messages": wire}
    if tools:
        params["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools
        ]
    return params


def _arguments(raw: str | None) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {INVALID_ARGUMENTS: raw}
    return value if isinstance(value, dict) else {INVALID_ARGUMENTS: raw}


def from_openai(response: Any) -> tuple[Message, Usage, str | None]:
    """A chat-completions response as our assistant message, usage and finish reason."""
    choice = response.choices[0]
    msg = choice.message
    calls = [
        ToolCall(id=c.id or f"call_{uuid.uuid4().hex[:12]}", name=c.function.name, arguments=_arguments(c.function.arguments))
        for c in (msg.tool_calls or [])
        if getattr(c, "function", None) is not None
    ]
    thinking = getattr(msg, "reasoning_content", None)  # vLLM / llama.cpp reasoning models
    message = Message(role="assistant", content=msg.content or "", tool_calls=calls, thinking=thinking or None)
    usage = Usage()
    if response.usage is not None:
        u = response.usage
        details = getattr(u, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", None) or 0) if details is not None else 0
        usage = Usage(input_tokens=max(0, (u.prompt_tokens or 0) - cached), cache_read_tokens=cached,
                      output_tokens=u.completion_tokens or 0)
    return message, usage, choice.finish_reason


class OpenAIModel(ModelAPI):
    """A chat-completions model. Build it with ``get_model("openai:<model>", **options)`` (options: see
    ``ModelAPI``, plus ``max_tokens_param`` and ``reasoning``)."""

    provider = "openai"
    sdk = "openai"
    client_class = "OpenAI"
    api_key_env = API_KEY_ENV
    base_url_env = BASE_URL_ENV
    example_model = "gpt-4o"
    default_context_window = 128_000

    def __init__(self, model: str, *, max_tokens_param: str | None = None, reasoning: bool | None = None,
                 **options: Any):
        super().__init__(model, **options)
        # OpenAI's newer models take max_completion_tokens; most compatible servers know only max_tokens.
        self.max_tokens_param = max_tokens_param or ("max_tokens" if self.base_url else "max_completion_tokens")
        self.reasoning = model.startswith(_REASONING_PREFIXES) if reasoning is None else reasoning

    def request(self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` (public for inspection)."""
        params = to_openai(messages, tools)
        params["model"] = self.model
        params[self.max_tokens_param] = config.max_tokens
        if config.tool_choice and tools:
            params["tool_choice"] = config.tool_choice
        if self.reasoning and config.reasoning_effort:
            params["reasoning_effort"] = config.reasoning_effort
        elif config.temperature is not None:
            params["temperature"] = config.temperature
        return params

    def call(self, params: dict[str, Any]) -> Any:
        return self.client.chat.completions.create(**params, timeout=self.timeout)

    def parse(self, response: Any) -> tuple[Message, Usage, str | None]:
        if not getattr(response, "choices", None):
            raise ModelError(f"{self.name}: the server returned no choices")
        return from_openai(response)

    def is_context_overflow(self, status: int | None, detail: str, code: str | None) -> bool:
        lowered = detail.lower()
        return code == "context_length_exceeded" or (
            status == 400 and "context" in lowered and ("length" in lowered or "exceed" in lowered))


@provider("openai")
def make_openai(model: str, **options: Any) -> OpenAIModel:
    return OpenAIModel(model, **options)
