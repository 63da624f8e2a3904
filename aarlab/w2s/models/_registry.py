"""The model registry: ``@model("name")`` factories found by name, plus any Hugging Face causal LM by id.

Names are resolved without importing torch, so the CLI can refuse an unknown model before any heavy work.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aarlab.errors import UserError


@dataclass(frozen=True)
class ModelInfo:
    """What ``aarlab w2s models`` lists: a name, its role and what it is."""

    name: str
    role: str  # "weak", "strong", "intermediate", "third tier", "test"
    description: str
    factory: Callable = field(repr=False)
    intermediate: str | None = None  # the intermediate-size model bootstrapping goes through


_REGISTRY: dict[str, ModelInfo] = {}


def model(name: str, role: str, description: str, intermediate: str | None = None) -> Callable:
    """Register ``factory(label_space, **overrides) -> Classifier`` under ``name``."""

    def register(factory: Callable) -> Callable:
        _REGISTRY[name] = ModelInfo(name, role, description, factory, intermediate)
        return factory

    return register


def is_hf_id(name: str) -> bool:
    """``hf:<id or local dir>``, or a bare hub id such as ``Qwen/Qwen3-4B-Base``."""
    return name.startswith("hf:") or ("/" in name and name not in _REGISTRY)


def _load_builtin() -> None:
    # Importing the modules runs their @model decorators; they import torch only inside functions.
    from aarlab.w2s.models import _causal, _glove, _hashbow, _minilm  # noqa: F401


def list_models() -> list[ModelInfo]:
    _load_builtin()
    return sorted(_REGISTRY.values(), key=lambda m: m.name)


def check_model(name: str) -> str:
    """Return ``name`` if it resolves to a model, else raise a UserError naming the known ones."""
    _load_builtin()
    if name in _REGISTRY or is_hf_id(name):
        return name
    near = difflib.get_close_matches(name, _REGISTRY, n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    raise UserError(f"unknown model {name!r}{hint}; known: {', '.join(sorted(_REGISTRY))}, "
                    "or a Hugging Face causal LM as hf:<id>")


def intermediate_for(name: str) -> str:
    """The intermediate-size model that bootstrapping to ``name`` goes through (``name`` itself if none)."""
    check_model(name)
    info = _REGISTRY.get(name)
    return info.intermediate if info and info.intermediate else name


def get_model(name: str, label_space: Sequence[str], **overrides):
    """A fresh, untrained classifier ``name`` over ``label_space``; ``overrides`` change its TrainConfig."""
    check_model(name)
    if name in _REGISTRY:
        return _REGISTRY[name].factory(tuple(label_space), **overrides)
    from aarlab.w2s.models._causal import CausalLMClassifier

    return CausalLMClassifier(name.removeprefix("hf:"), tuple(label_space), **overrides)
