"""``openai:<model>``: any OpenAI-compatible chat-completions server through the official ``openai`` SDK.

OpenAI itself, or any ``base_url`` that speaks the protocol (vLLM, Ollama, llama.cpp's server, LM Studio):
``get_model("openai:llama3", base_url="http://127.0.0.1:8080/v1")`` or ``$OPENAI_BASE_URL``. Tool calls use
the ``tools`` / ``tool_calls`` fields; usage reports ``prompt_tokens_details.cached_tokens`` as cache reads
(OpenAI caches prompt prefixes automatically, so there are no breakpoints to set).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from aarlab.errors import UserError, require
from aarlab.llm._base import GenerateConfig, Message, ModelOutput, ToolCall, ToolSpec, Usage, provider
from aarlab.llm._errors import ContextWindowExceeded, ModelError
from aarlab.llm._pricing import cost_of, resolve_price
from aarlab.llm._retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after, with_retries

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


class OpenAIModel:
    """A chat-completions model. Build it with ``get_model("openai:<model>", **options)``."""

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
        context_window: int = 128_000,
        max_tokens_param: str | None = None,
        reasoning: bool | None = None,
        default_headers: dict[str, str] | None = None,
    ):
        if not model:
            raise UserError("openai: name a model, e.g. openai:gpt-4o")
        openai = require("openai", "openai")
        base_url = base_url or os.environ.get(BASE_URL_ENV) or None
        api_key = api_key or os.environ.get(API_KEY_ENV)
        if not api_key:
            if not base_url:
                raise UserError(f"openai:{model} needs an API key: set {API_KEY_ENV} (or pass api_key=...), "
                                f"or give base_url=... for a local server")
            api_key = "unused"  # local servers (vLLM, llama.cpp, Ollama) take any key
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url
        self.context_window = context_window
        self.retry = RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay)
        self.price = resolve_price(self.name, prices, prices_file)
        self.timeout = timeout
        # OpenAI's newer models take max_completion_tokens; most compatible servers know only max_tokens.
        self.max_tokens_param = max_tokens_param or ("max_tokens" if base_url else "max_completion_tokens")
        self.reasoning = model.startswith(_REASONING_PREFIXES) if reasoning is None else reasoning
        self._sdk = openai
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout,
                                    default_headers=default_headers)

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

    def generate(
        self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig | None = None
    ) -> ModelOutput:
        config = config or GenerateConfig()
        params = self.request(messages, tools, config)
        start = time.perf_counter()
        try:
            response, _ = with_retries(
                lambda: self.client.chat.completions.create(**params, timeout=self.timeout),
                self.retry, self._classify, what=self.name,
            )
        except self._sdk.APIError as exc:
            raise self._translate(exc) from exc
        latency = time.perf_counter() - start
        if not getattr(response, "choices", None):
            raise ModelError(f"{self.name}: the server returned no choices")
        message, usage, finish = from_openai(response)
        return ModelOutput(message=message, usage=usage, cost_usd=cost_of(usage, self.price), latency_s=latency,
                           stop_reason=finish, model=self.name)

    def _classify(self, exc: Exception) -> tuple[bool, float | None]:
        if isinstance(exc, self._sdk.APIConnectionError):
            return True, None
        if isinstance(exc, self._sdk.APIStatusError):
            return exc.status_code in RETRYABLE_STATUS, parse_retry_after(exc.response.headers)
        return False, None

    def _translate(self, exc: Exception) -> Exception:
        status = getattr(exc, "status_code", None)
        detail = getattr(exc, "message", None) or str(exc)
        code = getattr(exc, "code", None)
        if status in (401, 403):
            return UserError(f"{self.name}: the server refused the key (HTTP {status}); check {API_KEY_ENV}: {detail}")
        if status == 404:
            return UserError(f"{self.name}: model or endpoint not found (HTTP 404): {detail}")
        if code == "context_length_exceeded" or (status == 400 and "context" in detail.lower()
                                                 and ("length" in detail.lower() or "exceed" in detail.lower())):
            return ContextWindowExceeded(f"{self.name}: prompt too long: {detail}", status=status)
        retryable = self._classify(exc)[0]
        tail = f" after {self.retry.max_retries} retries" if retryable else ""
        return ModelError(f"{self.name}: {detail}{tail}", status=status, retryable=retryable)


@provider("openai")
def make_openai(model: str, **options: Any) -> OpenAIModel:
    return OpenAIModel(model, **options)
