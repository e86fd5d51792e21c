"""Token streams: a streaming step's text, published to the run's stream while the step runs.

The text reaches readers in other processes (the REST API's ``/runs/{id}/tokens``) through the store, in
chunks: a chunk is written when ``FLUSH_CHARS`` characters are waiting or ``FLUSH_SECONDS`` passed since the
last one, and at the end. The step's journaled result stays the truth; the stream is a live view of it.
Publishing is best effort: a store error stops the stream (logged), never the step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..storage.base import Store

log = logging.getLogger("podium.streams")

FLUSH_SECONDS = 0.05
FLUSH_CHARS = 2048


class TokenPublisher:
    """Writes one execution of one step's streamed text (its epoch) to the store."""

    def __init__(
        self, store: Store, run_id: str, step: str, clock: Callable[[], float], owner: str | None = None
    ) -> None:
        self.store = store
        self.owner = owner
        """The worker whose lease fences every write: a worker that lost the run writes no more text."""
        self.run_id = run_id
        self.step = step
        self.clock = clock
        self.epoch: int | None = None
        self.offset = 0
        self._buffer: list[str] = []
        self._waiting = 0
        self._last = time.monotonic()
        self._broken = False

    async def write(self, text: str) -> None:
        """Add streamed text; it reaches the store within ``FLUSH_SECONDS``."""
        if self._broken or not text:
            return
        self._buffer.append(text)
        self._waiting += len(text)
        if self._waiting >= FLUSH_CHARS or time.monotonic() - self._last >= FLUSH_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        if self._broken or not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer, self._waiting, self._last = [], 0, time.monotonic()
        try:
            if self.epoch is None:  # at the first text: an execution that streamed nothing needs no reset
                self.epoch = await self.store.stream_begin(
                    self.run_id, self.step, now=self.clock(), owner=self.owner
                )
            held = self.epoch is not None and await self.store.stream_append(
                self.run_id, self.step, self.epoch, self.offset, text, now=self.clock(), owner=self.owner
            )
            if not held:
                self._broken = True
                log.info("run %s step %s: token stream stopped: the lease is lost", self.run_id, self.step)
                return
        except Exception as exc:
            self._broken = True
            log.warning("run %s step %s: token stream stopped: %s", self.run_id, self.step, exc)
            return
        self.offset += len(text)

    async def close(self) -> None:
        """Write what is still waiting."""
        await self.flush()
