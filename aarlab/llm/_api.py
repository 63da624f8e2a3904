"""What every remote provider needs, written once: credentials, retries, error classification, timing, cost.

A provider subclasses ``ModelAPI``, names its SDK, environment variables and client class, and writes only its
translation to and from the SDK: ``request`` (our messages → the keyword arguments of the SDK call), ``call``
(the SDK call itself), ``parse`` (the SDK's response → our message, usage and stop reason) and
``is_context_overflow`` (how its API words a prompt that is too long). Both official SDKs raise the same error
classes (``APIConnectionError``, ``APIStatusError`` with ``status_code`` and ``response.headers``, base
``APIError``), which is what lets one classification serve them both.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

from aarlab.errors import UserError, require
from aarlab.llm._base import (
    DEFAULT_CAPABILITIES,
    GenerateConfig,
    Message,
    ModelCapabilities,
    ModelOutput,
    ToolSpec,
    Usage,
)
from aarlab.llm._errors import ContextWindowExceeded, ModelError
from aarlab.llm._pricing import cost_of, resolve_price
from aarlab.llm._retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after, with_retries


class ModelAPI:
    """Base of the providers that call a remote API through an SDK. Build one with ``get_model``.

    Options every provider takes: ``api_key`` (else ``$<api_key_env>``), ``base_url`` (else
    ``$<base_url_env>``; with a base URL and no key, the key is a placeholder, since a gateway or a local server
    does its own authentication), ``timeout`` (seconds per request), ``max_retries``, ``retry_base_delay``,
    ``retry_max_delay`` (see ``RetryPolicy``), ``prices`` / ``prices_file`` (see ``aarlab.llm.find_price``),
    ``context_window`` and ``default_headers``.
    """

    provider: ClassVar[str]  # the part before the colon in "anthropic:claude-sonnet-4-5"
    sdk: ClassVar[str]  # the SDK's module, also the name of the pip extra that installs it
    client_class: ClassVar[str]  # the SDK's client class, e.g. "Anthropic"
    api_key_env: ClassVar[str]
    base_url_env: ClassVar[str]
    example_model: ClassVar[str]  # named in the error when no model is given
    default_context_window: ClassVar[int] = 128_000
    capabilities: ModelCapabilities = DEFAULT_CAPABILITIES

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
        context_window: int | None = None,
        default_headers: dict[str, str] | None = None,
    ):
        if not model:
            raise UserError(f"{self.provider}: name a model, e.g. {self.provider}:{self.example_model}")
        self._sdk = require(self.sdk, self.sdk)
        base_url = base_url or os.environ.get(self.base_url_env) or None
        api_key = api_key or os.environ.get(self.api_key_env)
        if not api_key:
            if not base_url:
                raise UserError(f"{self.provider}:{model} needs an API key: set {self.api_key_env} (or pass "
                                f"api_key=...), or give base_url=... for a gateway or a local server")
            api_key = "unused"
        self.model = model
        self.name = f"{self.provider}:{model}"
        self.base_url = base_url
        self.context_window = context_window or self.default_context_window
        self.retry = RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay)
        self.price = resolve_price(self.name, prices, prices_file)
        self.timeout = timeout
        # Retries are ours (see _retry.py), so the SDK must not retry on its own as well.
        self.client = getattr(self._sdk, self.client_class)(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout, default_headers=default_headers
        )

    # -- what a provider writes ----------------------------------------------------------------------------
    def request(self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig) -> dict[str, Any]:
        """The keyword arguments of the SDK call for this conversation (public for inspection)."""
        raise NotImplementedError

    def call(self, params: dict[str, Any]) -> Any:
        """One SDK call with ``params``; its errors are classified and retried by ``generate``."""
        raise NotImplementedError

    def parse(self, response: Any) -> tuple[Message, Usage, str | None]:
        """The SDK's response as our assistant message, its usage and the stop reason."""
        raise NotImplementedError

    def is_context_overflow(self, status: int | None, detail: str, code: str | None) -> bool:
        """Whether a refused request means the prompt exceeded the context window."""
        return False

    # -- what every provider shares ------------------------------------------------------------------------
    def generate(
        self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig | None = None
    ) -> ModelOutput:
        """Ask the model once (with retries on transient failures); see ``aarlab.llm.Model``."""
        config = config or GenerateConfig()
        params = self.request(messages, tools, config)
        start = time.perf_counter()
        try:
            response, _ = with_retries(lambda: self.call(params), self.retry, self._classify, what=self.name)
        except self._sdk.APIError as exc:
            raise self._translate(exc) from exc
        latency = time.perf_counter() - start
        message, usage, stop_reason = self.parse(response)
        return ModelOutput(message=message, usage=usage, cost_usd=cost_of(usage, self.price), latency_s=latency,
                           stop_reason=stop_reason, model=self.name)

    def _classify(self, exc: Exception) -> tuple[bool, float | None]:
        """(transient?, the server's retry-after) for an exception raised by ``call``."""
        if isinstance(exc, self._sdk.APIConnectionError):
            return True, None
        if isinstance(exc, self._sdk.APIStatusError):
            return exc.status_code in RETRYABLE_STATUS, parse_retry_after(exc.response.headers)
        return False, None

    def _translate(self, exc: Exception) -> Exception:
        """An SDK error that survived the retries as the error a caller can act on."""
        status = getattr(exc, "status_code", None)
        detail = getattr(exc, "message", None) or str(exc)
        if status in (401, 403):
            return UserError(f"{self.name}: the server refused the key (HTTP {status}); check {self.api_key_env}: "
                             f"{detail}")
        if status == 404:
            return UserError(f"{self.name}: model or endpoint not found (HTTP 404): {detail}")
        if self.is_context_overflow(status, detail, getattr(exc, "code", None)):
            return ContextWindowExceeded(f"{self.name}: prompt too long: {detail}", status=status)
        retryable = self._classify(exc)[0]
        tail = f" after {self.retry.max_retries} retries" if retryable else ""
        return ModelError(f"{self.name}: {detail}{tail}", status=status, retryable=retryable)
