"""Rough token counts for models that do not report their own (scripted, fake servers).

Four characters per token is the usual rule of thumb for English and JSON with BPE tokenizers; it is
good enough for budgets and cache accounting in tests, and it is cheap (no tokenizer to load).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

CHARS_PER_TOKEN = 4


def estimate_tokens(value: Any) -> int:
    """Approximate token count of a string, or of any JSON-able value as serialized."""
    if value is None:
        return 0
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return -(-len(text) // CHARS_PER_TOKEN)


class PrefixCache:
    """Emulates a provider's prompt cache: a prompt is a list of units; prefixes written before are hits.

    ``lookup(units)`` returns how many leading units are served from the cache; ``store(units, upto)``
    writes every prefix up to ``upto`` units. Prefixes are identified by a chained hash, so a unit that
    changes invalidates everything after it, as on the real APIs.
    """

    def __init__(self) -> None:
        self._prefixes: set[str] = set()

    @staticmethod
    def chain(units: list[Any]) -> list[str]:
        """``chain(units)[i]`` identifies the prefix ``units[: i + 1]``."""
        hashes, digest = [], hashlib.sha256()
        for unit in units:
            text = unit if isinstance(unit, str) else json.dumps(unit, sort_keys=True, default=str)
            digest.update(text.encode())
            digest.update(b"\x00")
            hashes.append(digest.copy().hexdigest())
        return hashes

    def longest_hit(self, hashes: list[str], positions: list[int] | None = None) -> int:
        """Number of leading units of the longest cached prefix (0 if none), checking only ``positions``
        (prefix lengths) when given."""
        candidates = positions if positions is not None else range(len(hashes), 0, -1)
        best = 0
        for length in candidates:
            if 0 < length <= len(hashes) and length > best and hashes[length - 1] in self._prefixes:
                best = length
        return best

    def store(self, hashes: list[str], lengths: list[int]) -> None:
        for length in lengths:
            if 0 < length <= len(hashes):
                self._prefixes.add(hashes[length - 1])

    def clear(self) -> None:
        self._prefixes.clear()
