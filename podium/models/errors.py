"""Model errors: part of Podium's one tree (``RunError`` subclasses, so a step journals them)."""

from __future__ import annotations

from ..errors import RunError, UsageError


class ModelError(RunError):
    """A model call failed (provider error, timeout, unusable answer).

    ``retryable`` says whether a retry may help."""


class ModelOutputError(ModelError):
    """The model's answer did not fit the requested structure, even after repair attempts."""


class UnknownModelError(UsageError):
    """No model is configured under that name."""


class MissingExtraError(UsageError):
    """An optional dependency is not installed; the message names the ``pip install`` that adds it."""


class BudgetExceededError(ModelError):
    """A model call would take the run over its budget (and no cheaper model is configured to take over)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
