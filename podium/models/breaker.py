"""Circuit breakers per provider endpoint: stop calling an endpoint that keeps failing, for a while.

After ``failures`` consecutive infrastructure failures (timeouts, 5xx, 429 after retries, dropped
connections) the breaker opens: calls fail at once for ``cooldown`` seconds (so a fallback model answers
without waiting), then one trial call is let through; its success closes the breaker again.
"""

from __future__ import annotations

import time

from .spec import ModelSpec


class CircuitBreaker:
    def __init__(self, failures: int = 5, cooldown: float = 30.0) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if time.monotonic() - self.opened_at < self.cooldown else "half-open"

    def allow(self) -> bool:
        state = self.state
        if state == "half-open":
            self.opened_at = time.monotonic()  # one trial; others keep failing fast until it answers
            return True
        return state == "closed"

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


_BREAKERS: dict[tuple[str, str], CircuitBreaker] = {}


def breaker_for(spec: ModelSpec) -> CircuitBreaker:
    """The process-wide breaker of ``spec``'s endpoint."""
    key = (spec.provider, spec.base_url or spec.name)
    breaker = _BREAKERS.get(key)
    if breaker is None:
        breaker = _BREAKERS[key] = CircuitBreaker(spec.breaker_failures, spec.breaker_cooldown)
    return breaker
