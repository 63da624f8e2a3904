"""Finding a model by name: ``get_model("anthropic:claude-sonnet-4-5")``.

Providers register themselves with ``@provider(name)`` when their module is imported; the built-in ones
are imported lazily, on first use, so that ``import aarlab.llm`` never needs an SDK.
"""

from __future__ import annotations

import importlib

from aarlab.errors import UserError
from aarlab.llm._base import _PROVIDERS, Model

# Provider name -> module that registers it. Imported on first use only.
LAZY_PROVIDERS: dict[str, str] = {
    "anthropic": "aarlab.llm._anthropic",
    "openai": "aarlab.llm._openai",
    "scripted": "aarlab.llm._scripted",
}


def known_providers() -> list[str]:
    """Every provider name ``get_model`` accepts."""
    return sorted(set(LAZY_PROVIDERS) | set(_PROVIDERS))


def parse_model_spec(spec: str) -> tuple[str, str]:
    """Split ``provider:model`` (the model part may itself hold colons, e.g. ``openai:llama3:8b``)."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"a model is named 'provider:model', got {spec!r}")
    provider_name, _, model = spec.strip().partition(":")
    return provider_name.strip().lower(), model.strip()


def _factory(provider_name: str, spec: str):
    if provider_name not in _PROVIDERS and provider_name in LAZY_PROVIDERS:
        module = LAZY_PROVIDERS[provider_name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only a missing provider module is the user's problem; a broken import inside it is a bug.
            if exc.name != module:
                raise
            raise UserError(f"model {spec!r}: provider {provider_name!r} is not available ({module} is missing)") from None
    if provider_name not in _PROVIDERS:
        raise UserError(
            f"unknown model provider {provider_name!r} in {spec!r}; known providers: {', '.join(known_providers())}"
        )
    return _PROVIDERS[provider_name]


def get_model(spec: str, **options) -> Model:
    """The model named ``provider:model``, built with ``options`` (api_key, base_url, prices, ...).

    Raises ``UserError`` for an unknown provider or a missing API key and ``MissingExtra`` for a missing
    SDK. Building a model never calls its API.
    """
    provider_name, model = parse_model_spec(spec)
    return _factory(provider_name, spec)(model, **options)


def check_model(spec: str, **options) -> str:
    """Validate a model spec and its options without calling the API; returns the model's full name.

    Use it when loading a config so that a typo, a missing SDK or a missing key fails before anything runs.
    """
    return get_model(spec, **options).name
