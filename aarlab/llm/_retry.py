"""Retrying transient API failures: exponential backoff with full jitter, honouring ``retry-after``.

The SDKs' own retries are turned off (``max_retries=0``) so that one policy, visible and configurable
here, applies to every provider.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}


@dataclass
class RetryPolicy:
    """``max_retries`` retries after the first try; the k-th waits a random time in
    ``[0, min(max_delay, base_delay * 2**k)]``, or what the server's ``retry-after`` says if that is longer
    (capped at ``max_retry_after``)."""

    max_retries: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after))
        return backoff


def parse_retry_after(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), if present."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    classify: Callable[[Exception], tuple[bool, float | None]],
    what: str = "model call",
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """Run ``call`` until it succeeds or fails for good; returns (result, number of retries made).

    ``classify(exc)`` says whether ``exc`` is transient and what ``retry-after`` the server asked for.
    A permanent error, or a transient one after the last retry, is re-raised.
    """
    attempt = 0
    while True:
        try:
            return call(), attempt
        except Exception as exc:
            retryable, retry_after = classify(exc)
            if not retryable or attempt >= policy.max_retries:
                raise
            wait = policy.delay(attempt, retry_after)
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, _describe(exc), attempt + 1, policy.max_retries, wait)
            sleep(wait)
            attempt += 1


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__
