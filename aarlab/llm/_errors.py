"""Errors a model raises while generating (configuration mistakes are ``aarlab.errors.UserError``)."""


class ModelError(Exception):
    """A model call failed for good: the API kept failing after the retries, or refused the request.

    ``status`` is the HTTP status when there was one; ``retryable`` says whether the failure was transient
    (rate limit, overload, 5xx, connection) and gave out only because the retries ran out.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ContextWindowExceeded(ModelError):
    """The prompt is longer than the model's context window: compact the conversation and try again."""


class ScriptExhausted(ModelError):
    """A scripted model was asked for more outputs than its script holds (with ``on_exhausted="error"``)."""
