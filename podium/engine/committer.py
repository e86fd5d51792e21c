"""Group commit: journal writes of all runs in a worker that are ready together share one transaction.

A step that finished asks for a commit and waits; every other write requested before the transaction
starts joins it. One fsync then makes many steps durable, which is what keeps a 1,000-way fan-out fast.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..storage.base import Outcome

if TYPE_CHECKING:
    from .execution import Execution
    from .worker import Worker


class Committer:
    """Batches ``Execution`` writes into ``Store.commit`` calls."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._dirty: dict[Execution, list[asyncio.Future[Outcome]]] = {}
        self._scheduled = False

    def request(self, ex: Execution) -> asyncio.Future[Outcome]:
        """Include ``ex``'s buffered events in the next commit; the future gives this run's outcome."""
        loop = ex.loop
        fut: asyncio.Future[Outcome] = loop.create_future()
        waiters = self._dirty.get(ex)
        if waiters is None:
            self._dirty[ex] = [fut]
        else:
            waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)
        return fut

    def _start(self) -> None:
        self._scheduled = False
        batch, self._dirty = self._dirty, {}
        if batch:
            asyncio.get_running_loop().create_task(self._commit(batch))

    async def _commit(self, batch: dict[Execution, list[asyncio.Future[Outcome]]]) -> None:
        executions = list(batch)
        writes = [ex.take_write() for ex in executions]
        now = time.time()
        try:
            outcomes = await self.worker.store.commit(
                self.worker.owner, writes, now=now, lease_until=now + self.worker.settings.lease_seconds
            )
        except (StoreError, OSError) as exc:
            self.worker.log_store_error(exc)
            for ex in executions:
                ex.stop("store")
            outcomes = [Outcome.LEASE_LOST] * len(executions)
        for ex, outcome in zip(executions, outcomes, strict=True):
            for fut in batch[ex]:
                if not fut.done():
                    fut.set_result(outcome)
