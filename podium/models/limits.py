"""Rate limits per provider endpoint, shared by every concurrent call in the process.

Requests are paced, not burst: with ``requests_per_minute = 6000`` calls start 10 ms apart, so no
one-second window ever holds more than 100, and 1,000 calls take 10 seconds. A tokens-per-minute limit paces
on each call's estimated tokens the same way. Slots are handed out in arrival order (fair, no lock needed:
the event loop is single-threaded).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from .spec import ModelSpec


class RateLimiter:
    """Paces calls to at most ``rpm`` requests and ``tpm`` tokens per minute.

    Two rules together: calls are spaced ``60 / rpm`` seconds apart (smooth, so the total time is what the
    limit implies), and no more than ``rpm / 60`` calls are granted in any window of ``WINDOW`` seconds
    (a little over one second, so that a late wake-up of the event loop, or network jitter on the way to
    the server, cannot bunch calls into a one-second window at the provider).
    """

    WINDOW = 1.05

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._next_request = 0.0
        self._next_tokens = 0.0
        self._granted: deque[float] = deque()
        # 1% under the limit inside any window: headroom for a first connection or a late wake-up that
        # makes one request arrive later than its slot (measured: up to ~50 ms on loopback).
        self._cap = max(1, int(rpm / 60 * 0.99)) if rpm else 0
        self.waited = 0.0
        self.waits = 0

    def reserve(self, tokens: int = 0) -> float:
        """Reserve the next paced slot; returns how many seconds to wait for it."""
        now = time.monotonic()
        start = now
        if self.rpm:
            start = max(start, self._next_request)
            self._next_request = start + 60.0 / self.rpm
        if self.tpm and tokens:
            t_start = max(now, self._next_tokens)
            self._next_tokens = t_start + tokens * 60.0 / self.tpm
            start = max(start, t_start)
        return start - now

    async def acquire(self, tokens: int = 0) -> float:
        """Wait for a slot; returns the seconds waited."""
        began = time.monotonic()
        wait = self.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)
        if self._cap:
            while True:
                now = time.monotonic()
                while self._granted and self._granted[0] <= now - self.WINDOW:
                    self._granted.popleft()
                if len(self._granted) < self._cap:
                    break
                await asyncio.sleep(self._granted[0] + self.WINDOW - now)
            self._granted.append(time.monotonic())
        waited = time.monotonic() - began
        if waited > 0.0005:
            self.waits += 1
            self.waited += waited
        return waited


_LIMITERS: dict[tuple[str, str, float | None, float | None], RateLimiter] = {}


def limiter_for(spec: ModelSpec) -> RateLimiter | None:
    """The process-wide limiter of ``spec``'s endpoint, or None when it has no limit."""
    if not spec.rpm and not spec.tpm:
        return None
    key = (spec.provider, spec.base_url or spec.name, spec.rpm, spec.tpm)
    limiter = _LIMITERS.get(key)
    if limiter is None:
        limiter = _LIMITERS[key] = RateLimiter(spec.rpm, spec.tpm)
    return limiter
