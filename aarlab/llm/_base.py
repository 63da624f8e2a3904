"""The model protocol every provider implements, and the message types the agent loop speaks.

Messages are provider-neutral; each provider translates them to its wire format. Tool calls carry a stable
``id`` so that a tool result can be matched to its call across a crash and a resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class ToolCall(BaseModel):
    """A request by the model to run one tool."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(BaseModel):
    """What the model sees of a tool: its name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class Message(BaseModel):
    """One conversation message.

    ``role="tool"`` messages carry the output of the tool call named by ``tool_call_id``; ``is_error`` marks a
    tool that failed (the model sees the failure, the loop goes on).
    """

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    is_error: bool = False
    thinking: str | None = None
    # Provider-specific opaque data that must be sent back verbatim (e.g. Anthropic thinking signatures).
    provider_data: dict[str, Any] | None = None


class Usage(BaseModel):
    """Tokens billed for one call, split the way providers bill them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
        )


class ModelOutput(BaseModel):
    """What one ``generate`` call returned: the assistant message, its usage, cost and latency."""

    message: Message
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    stop_reason: str | None = None
    model: str = ""


class GenerateConfig(BaseModel):
    """Per-call settings; providers ignore what they do not support."""

    max_tokens: int = 4096
    temperature: float | None = None
    thinking_budget: int | None = None  # extended thinking tokens (Anthropic); None disables
    reasoning_effort: str | None = None  # OpenAI reasoning models
    cache: bool = True  # prompt caching where the provider supports it
    tool_choice: Literal["auto", "required", "none"] | None = None  # None: the provider's default (auto)


class ModelCapabilities(BaseModel):
    """What a caller may ask of a model, declared by the model itself: the agent loop reads these and never
    checks a model's class. A model without a ``capabilities`` attribute has the defaults (see
    ``capabilities_of``)."""

    model_config = ConfigDict(frozen=True)

    # It answers the prompt it is given, so it can advise (the ``consult`` tool) and summarise (compaction).
    # A script plays back its steps whatever it is asked.
    answers_prompts: bool = True
    # Its answers depend on how many calls it has made, not only on the conversation: a loop that resumes a run
    # calls ``model.seek(step)`` with the number of steps already made (a compacted conversation no longer
    # shows that number).
    resumes_by_step: bool = False


DEFAULT_CAPABILITIES = ModelCapabilities()


def capabilities_of(model: Any) -> ModelCapabilities:
    """The capabilities ``model`` declares, or the defaults (a plain chat model) when it declares none."""
    declared = getattr(model, "capabilities", None)
    return declared if isinstance(declared, ModelCapabilities) else DEFAULT_CAPABILITIES


@runtime_checkable
class Model(Protocol):
    """A chat model that can call tools. ``name`` is ``provider:model``.

    A model may also carry ``capabilities: ModelCapabilities``; callers read it with ``capabilities_of``.
    """

    name: str

    def generate(
        self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig | None = None
    ) -> ModelOutput: ...


_PROVIDERS: dict[str, Callable[..., Model]] = {}


def provider(name: str):
    """Register a provider factory under ``name``: ``@provider("anthropic") def make(model, **kw) -> Model``."""

    def register(factory: Callable[..., Model]) -> Callable[..., Model]:
        _PROVIDERS[name] = factory
        return factory

    return register


def registered_providers() -> dict[str, Callable[..., Model]]:
    return dict(_PROVIDERS)
