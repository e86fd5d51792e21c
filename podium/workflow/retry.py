"""Retry policies for steps."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import UsageError
from ..types import Duration, parse_duration


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a failing step is retried.

    ``max_attempts`` counts the first try (``RetryPolicy(max_attempts=1)`` never retries). The delay before
    retry ``n`` is ``initial * backoff ** (n - 1)``, capped at ``max_delay``, then spread by ``jitter``
    (a fraction: 0.2 means up to 20% shorter or longer). Exceptions listed in ``non_retryable`` (and any
    ``RunError`` with ``retryable=False``) fail the step at once.

    >>> RetryPolicy(max_attempts=5, initial="200ms", backoff=2.0, max_delay="10s")  # doctest: +ELLIPSIS
    RetryPolicy(...)
    """

    max_attempts: int = 1
    initial: float = 0.1
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    non_retryable: tuple[type[BaseException], ...] = ()

    def __init__(
        self,
        *,
        max_attempts: int = 1,
        initial: Duration = 0.1,
        backoff: float = 2.0,
        max_delay: Duration = 30.0,
        jitter: float = 0.2,
        non_retryable: tuple[type[BaseException], ...] = (),
    ) -> None:
        if max_attempts < 1:
            raise UsageError("max_attempts must be at least 1")
        if backoff < 1:
            raise UsageError("backoff must be at least 1")
        if not 0 <= jitter <= 1:
            raise UsageError("jitter must be between 0 and 1")
        object.__setattr__(self, "max_attempts", int(max_attempts))
        object.__setattr__(self, "initial", parse_duration(initial))
        object.__setattr__(self, "backoff", float(backoff))
        object.__setattr__(self, "max_delay", parse_duration(max_delay))
        object.__setattr__(self, "jitter", float(jitter))
        object.__setattr__(self, "non_retryable", tuple(non_retryable))

    @classmethod
    def retries(cls, n: int) -> RetryPolicy:
        """``n`` retries after the first attempt, default backoff."""
        if n < 0:
            raise UsageError("retries must not be negative")
        return cls(max_attempts=n + 1)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.initial * self.backoff ** (attempt - 1))
        if self.jitter:
            base *= 1 + self.jitter * (2 * random.random() - 1)
        return max(0.0, base)


NO_RETRY = RetryPolicy()
