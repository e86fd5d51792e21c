"""Group commit: journal writes of all runs in a worker that are ready together share one transaction.

A step that finished asks for a commit and waits; every other write requested before the transaction
starts joins it. One fsync then makes many steps durable, which is what keeps a 1,000-way fan-out fast.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..storage.base import Outcome, Transition, Write

if TYPE_CHECKING:
    from .execution import Execution
    from .worker import Worker


class Committer:
    """Batches ``Execution`` writes into ``Store.commit`` calls."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._dirty: dict[Execution, list[asyncio.Future[Outcome]]] = {}
        self._scheduled = False
        self._inflight: asyncio.Task[None] | None = None  # a store without commit_sync: its commit under way

    def request(self, ex: Execution) -> asyncio.Future[Outcome]:
        """Include ``ex``'s buffered events in the next commit; the future gives this run's outcome."""
        fut: asyncio.Future[Outcome] = ex.loop.create_future()
        waiters = self._dirty.get(ex)
        if waiters is None:
            self._dirty[ex] = [fut]
        else:
            waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            ex.loop.call_soon(self._start)
        return fut

    def request_nowait(self, ex: Execution) -> None:
        """Include ``ex``'s buffered events in the next commit without waiting for it."""
        if ex not in self._dirty:
            self._dirty[ex] = []
        if not self._scheduled:
            self._scheduled = True
            ex.loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._inflight is not None:
            # One commit at a time (PostgreSQL): a run's writes commit in the order they were made, and what
            # arrives meanwhile forms the next, larger batch. It starts when the one in flight is done.
            return
        batch, self._dirty = self._dirty, {}
        # Take the writes now, not when the commit task runs: events buffered after this point belong
        # to the next batch, so a batch never commits an empty or out-of-order write.
        work = [(ex, ex.take_write(), futs) for ex, futs in batch.items()]
        refused = {ex for ex, w, _ in work if w.transition is Transition.SUSPEND and not ex.quiescent()}
        for ex, w, _ in work:  # a branch woke since the suspend was decided: keep the run, write its events
            if ex in refused:
                w.transition = Transition.NONE
        work = [
            item
            for item in work
            if item[1].events or item[1].transition is not Transition.NONE or _resolve(item[2], Outcome.OK)
        ]
        if not work:
            return
        commit_sync = getattr(self.worker.store, "commit_sync", None)
        if commit_sync is None:
            self._inflight = asyncio.get_running_loop().create_task(self._commit(work, refused))
            return
        # A store whose commit never waits (SQLite, memory) commits right here: no task, one loop turn less.
        try:
            outcomes = self._call(commit_sync, work)
        except Exception as exc:
            outcomes = self._failed(work, exc)
        _resolve_all(work, outcomes, refused)

    def _call(self, commit: Any, work: list[tuple[Execution, Write, list[asyncio.Future[Outcome]]]]) -> Any:
        now = self.worker.clock()
        writes = [w for _, w, _ in work]
        return commit(
            self.worker.owner, writes, now=now, lease_until=now + self.worker.settings.lease_seconds
        )

    def _failed(
        self, work: list[tuple[Execution, Write, list[asyncio.Future[Outcome]]]], exc: Exception
    ) -> list[Outcome]:
        """Never leave a waiter hanging: the runs of a failed commit stop and are retried later."""
        self.worker.log_store_error(exc)
        for ex, _, _ in work:
            ex.stop("store")
        return [Outcome.LEASE_LOST] * len(work)

    async def _commit(
        self, work: list[tuple[Execution, Write, list[asyncio.Future[Outcome]]]], refused: set[Execution]
    ) -> None:
        try:
            outcomes = await self._call(self.worker.store.commit, work)
        except Exception as exc:
            outcomes = self._failed(work, exc)
        finally:
            self._inflight = None
            if self._dirty and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._start)
        _resolve_all(work, outcomes, refused)

    async def drain(self) -> None:
        """Wait until every write requested so far is committed (a worker stops only after this)."""
        while self._inflight is not None or self._dirty:
            if self._inflight is not None:
                await asyncio.wait([self._inflight])
            elif not self._scheduled:
                self._scheduled = True
                self._start()
            else:
                await asyncio.sleep(0)


def _resolve_all(
    work: list[tuple[Execution, Write, list[asyncio.Future[Outcome]]]],
    outcomes: list[Outcome],
    refused: set[Execution],
) -> None:
    for (ex, _, futs), outcome in zip(work, outcomes, strict=True):
        # A refused suspend answers like a suspend the store refused: the run carries on in memory.
        _resolve(futs, Outcome.INBOX_CHANGED if ex in refused and outcome is Outcome.OK else outcome)


def _resolve(futs: list[asyncio.Future[Outcome]], outcome: Outcome) -> bool:
    for fut in futs:
        if not fut.done():
            fut.set_result(outcome)
    return False
