"""aarlab.llm: chat models that call tools, behind one small protocol.

    from aarlab.llm import get_model, Message
    model = get_model("anthropic:claude-sonnet-4-5")          # or "openai:gpt-4o", "scripted:script.yaml"
    out = model.generate([Message(role="user", content="hi")], tools=[])
    out.message, out.usage, out.cost_usd, out.latency_s

Providers: ``anthropic`` (prompt caching, extended thinking), ``openai`` (any OpenAI-compatible
``base_url``: vLLM, Ollama, llama.cpp), ``scripted`` (deterministic, offline: a list, a generator, a YAML
file, or a named script registered with ``register_script`` or declared as an ``aarlab.scripts`` entry point;
``scripted:demo`` is the offline demo researcher that ``aarlab.team`` declares). Add a provider with
``@provider("name")``; one that calls a remote API subclasses ``ModelAPI``, which owns credentials, retries,
error classification and timing, and writes only its translation to and from the SDK. Callers ask a model
what it can do with ``capabilities_of(model)`` (``ModelCapabilities``), never for its class. Local servers
that speak the Anthropic and OpenAI wire protocols, for tests and benchmarks, are in ``aarlab.llm.testing``.
"""

from aarlab.llm._api import ModelAPI
from aarlab.llm._base import (
    GenerateConfig,
    Message,
    Model,
    ModelCapabilities,
    ModelOutput,
    ToolCall,
    ToolSpec,
    Usage,
    capabilities_of,
    provider,
    registered_providers,
)
from aarlab.llm._errors import ContextWindowExceeded, ModelError, ScriptExhausted
from aarlab.llm._pricing import Price, find_price, load_prices, price_table
from aarlab.llm._registry import check_model, get_model, known_providers, parse_model_spec
from aarlab.llm._scripted import ScriptedModel, register_script, registered_scripts
from aarlab.llm._tokens import estimate_tokens

__all__ = [
    "ContextWindowExceeded",
    "GenerateConfig",
    "Message",
    "Model",
    "ModelAPI",
    "ModelCapabilities",
    "ModelError",
    "ModelOutput",
    "Price",
    "ScriptExhausted",
    "ScriptedModel",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "capabilities_of",
    "check_model",
    "estimate_tokens",
    "find_price",
    "get_model",
    "known_providers",
    "load_prices",
    "parse_model_spec",
    "price_table",
    "provider",
    "register_script",
    "registered_providers",
    "registered_scripts",
]
