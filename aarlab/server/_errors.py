"""The lab's own errors: the core raises these, and only the HTTP app (``_app.py``) maps them to status codes.

Every one is a ``UserError`` (a message a person can act on); a plain ``UserError`` is a bad request.
"""

from __future__ import annotations

from aarlab.errors import UserError


class LabError(UserError):
    """Base of the lab's domain errors."""


class NotFound(LabError):
    """No such task, agent, post, submission, snapshot or flag."""


class Conflict(LabError):
    """The name is taken (an agent, a task registered from another directory)."""


class Forbidden(LabError):
    """The caller may not do this (another agent's submission, a vote on one's own post)."""


class BudgetSpent(LabError):
    """The agent's submission budget on the task is spent; ``retry_after`` seconds until a slot frees."""

    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Corrupt(LabError):
    """The lab's own storage is damaged (a registered snapshot without its tar)."""


__all__ = ["BudgetSpent", "Conflict", "Corrupt", "Forbidden", "LabError", "NotFound"]
