"""The dataset registry: ``@dataset("name")`` loaders found by a spec string.

A spec is ``name[:argument][?key=value&key=value]``, e.g. ``bigbench:multiemo/all_sentence_en?labels=negative,positive``
or ``jsonl:data/reviews.jsonl``. The loader for ``name`` receives the argument, the options and a seed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aarlab.errors import UserError


@dataclass(frozen=True)
class Example:
    """One labelled input. ``text`` is what a text model reads; ``fields`` keeps structured inputs."""

    id: str
    text: str
    label: int
    label_space: tuple[str, ...]
    fields: dict = field(default_factory=dict, compare=False)

    @property
    def label_name(self) -> str:
        return self.label_space[self.label]


Loader = Callable[..., list[Example]]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    example: str
    loader: Loader = field(repr=False)


_REGISTRY: dict[str, DatasetInfo] = {}


def dataset(name: str, description: str = "", example: str | None = None) -> Callable[[Loader], Loader]:
    """Register ``loader(argument, options, seed) -> list[Example]`` under ``name``."""

    def register(loader: Loader) -> Loader:
        doc = description or (loader.__doc__ or "").strip().splitlines()[0]
        _REGISTRY[name] = DatasetInfo(name, doc, example or name, loader)
        return loader

    return register


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """Split ``name:argument?k=v`` into its parts."""
    spec = spec.strip()
    base, _, query = spec.partition("?")
    name, sep, argument = base.partition(":")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    return name, (argument if sep else None), options


def list_datasets() -> list[DatasetInfo]:
    _load_builtin()
    return sorted(_REGISTRY.values(), key=lambda d: d.name)


def load_dataset(spec: str, seed: int = 0) -> list[Example]:
    """Load every example of a dataset spec; a UserError for unknown names or unreadable data."""
    _load_builtin()
    name, argument, options = parse_spec(spec)
    if name not in _REGISTRY:
        near = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise UserError(f"unknown dataset {name!r}{hint}; known: {', '.join(sorted(_REGISTRY))}")
    examples = _REGISTRY[name].loader(argument, options, seed)
    if not examples:
        raise UserError(f"dataset {spec!r} has no examples")
    return examples


def _load_builtin() -> None:
    # Importing the modules runs their @dataset decorators; they import nothing heavy at module level.
    from aarlab.w2s.datasets import _bigbench, _hf, _local  # noqa: F401
