"""aarlab.llm: chat models that call tools, behind one small protocol.

    from aarlab.llm import get_model, Message
    model = get_model("anthropic:claude-sonnet-4-5")          # or "openai:gpt-4o", "scripted:script.yaml"
    out = model.generate([Message(role="user", content="hi")], tools=[])
    out.message, out.usage, out.cost_usd, out.latency_s

Providers: ``anthropic`` (prompt caching, extended thinking), ``openai`` (any OpenAI-compatible
``base_url``: vLLM, Ollama, llama.cpp), ``scripted`` (deterministic, offline: a list, a generator, a YAML
file, or a named script registered with ``register_script``; ``scripted:demo`` is the offline demo researcher
that ``aarlab.team`` registers). Add a provider with ``@provider("name")``. Local servers that speak the
Anthropic and OpenAI wire protocols, for tests and benchmarks, are in ``aarlab.llm.testing``.
"""

from aarlab.llm._base import (
    GenerateConfig,
    Message,
    Model,
    ModelOutput,
    ToolCall,
    ToolSpec,
    Usage,
    provider,
    registered_providers,
)
from aarlab.llm._errors import ContextWindowExceeded, ModelError, ScriptExhausted
from aarlab.llm._pricing import Price, find_price, load_prices, price_table
from aarlab.llm._registry import check_model, get_model, known_providers, parse_model_spec
from aarlab.llm._scripted import ScriptedModel, register_script, registered_scripts

__all__ = [
    "ContextWindowExceeded",
    "GenerateConfig",
    "Message",
    "Model",
    "ModelError",
    "ModelOutput",
    "Price",
    "ScriptExhausted",
    "ScriptedModel",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "check_model",
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
