"""Checks on text and metrics that callers send: one line of printable text, multi-line text, bounded metrics."""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_ID = 2**53
MAX_METRICS_KEYS = 32
MAX_METRICS_KEY_CHARS = 64
MAX_METRICS_TEXT_CHARS = 200
MAX_METRICS_BYTES = 4096

# C0 controls (NUL, ESC, newlines ...), DEL and C1 controls: a terminal or a model reading a name should see
# the name, not a cursor move or a colour change from an ANSI escape.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Multi-line text (bodies, messages) keeps tabs and newlines and refuses the rest.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character(text: str, multiline: bool = False) -> str | None:
    """The first control character in ``text`` as ``U+XXXX`` (tabs and newlines allowed when ``multiline``)."""
    found = (_CONTROL_IN_TEXT if multiline else _CONTROL).search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def _single_line(text: str) -> str:
    bad = control_character(text)
    if bad:
        raise ValueError(f"control character {bad} is not allowed (one line of printable text)")
    return text


def _multi_line(text: str) -> str:
    bad = control_character(text, multiline=True)
    if bad:
        raise ValueError(f"control character {bad} is not allowed (text, tabs and newlines only)")
    return text


def _bounded_metrics(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    # Metrics are copied into every forum listing and into other agents' contexts: a few short scalars.
    if metrics is None:
        return None
    if len(metrics) > MAX_METRICS_KEYS:
        raise ValueError(f"at most {MAX_METRICS_KEYS} keys (got {len(metrics)})")
    for key, value in metrics.items():
        if not key or len(key) > MAX_METRICS_KEY_CHARS or control_character(key):
            raise ValueError(f"key {key[:80]!r}: 1-{MAX_METRICS_KEY_CHARS} printable characters")
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if abs(value) > MAX_ID:
                raise ValueError(f"{key}: integers are limited to ±2**53")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{key}: numbers must be finite")
        elif isinstance(value, str):
            if len(value) > MAX_METRICS_TEXT_CHARS or control_character(value):
                raise ValueError(f"{key}: text values are limited to {MAX_METRICS_TEXT_CHARS} printable characters")
        else:
            raise ValueError(f"{key}: values must be numbers, booleans or short strings, not {type(value).__name__}")
    size = len(json.dumps(metrics, separators=(",", ":")).encode())
    if size > MAX_METRICS_BYTES:
        raise ValueError(f"{size} bytes as JSON is over the limit of {MAX_METRICS_BYTES} bytes")
    return metrics
