"""Cron schedules: a worker starts a run of a flow at every occurrence of a cron expression.

```python
async with podium.Client() as client:
    await client.add_schedule(report, "0 9 * * mon-fri", {"team": "ops"}, tz="Europe/Paris")
```
or ``podium schedule add reports.py:report --cron "0 9 * * mon-fri" --input '{"team": "ops"}'``. Schedules
live in the store; every worker that knows the flow fires them (``podium worker reports.py``), and however
many workers run, each occurrence starts exactly one run.

**Exactly once, never lost.** A worker claims due occurrences in one store transaction that advances the
schedule's ``next_at`` by compare-and-set and records the claimed occurrences with a lease
(``Store.schedule_claim_due``), so two workers never claim the same occurrence. It then starts each run with
``Client.start(flow, input, key="schedule:NAME:TIME")`` and only afterwards forgets the claim
(``Store.schedule_fired``). A worker that dies between claiming and starting leaves a claim that expires;
another worker claims it again and starts the run with the same key: if the first worker had started it
after all, the key returns that run instead of a second one. So a crash can delay an occurrence by one lease,
never lose or double it. (The other order, "start, then advance", would need no claims table, but every
worker that saw a schedule due would try to start its runs.)

Missed occurrences (no worker was running) follow the schedule's ``missed`` policy; see
``podium.triggers.cron``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..client import Client, RunHandle
from ..errors import StoreError, UsageError
from ..records import Schedule
from ..storage.base import ScheduleFire, ScheduleRecord
from . import cron

if TYPE_CHECKING:
    from ..engine.worker import Worker

__all__ = ["Schedule", "Scheduler"]

log = logging.getLogger("podium.schedule")

BATCH = 100
"""Occurrences claimed per store transaction."""


def _plan(schedule: ScheduleRecord, now: float) -> tuple[list[float], float]:
    """``cron.plan`` that never fails inside the store's transaction: a schedule that cannot be planned
    (its time zone vanished from this machine, say) is logged and looked at again in an hour."""
    try:
        times, next_at = cron.plan(schedule, now)
    except Exception as exc:
        log.error("schedule %r cannot be planned (retrying in an hour): %r", schedule.name, exc)
        return [], now + 3600.0
    if next_at <= now:  # cannot happen with croniter; guards the scheduler against spinning
        next_at = now + 1.0
    return times, next_at


class Scheduler:
    """The loop in every worker that fires due schedules of the flows it runs.

    It sleeps until the earliest ``next_at`` (or claim expiry) of those schedules, but at most
    ``poll_seconds``, so it sees schedules added by other processes. When there are no schedules, each
    wake-up is one indexed read. A manual clock (``podium.testing.ManualClock``) wakes it whenever it moves.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.client = Client.for_worker(worker)
        self.started = 0
        """Runs this scheduler created."""
        self.repeated = 0
        """Occurrences whose run existed already when this scheduler started it: claimed again after the
        worker that first claimed them died between starting the run and forgetting the claim."""
        self._wake = asyncio.Event()
        subscribe = getattr(worker.clock, "subscribe", None)
        if subscribe is not None:
            subscribe(self.poke)

    def poke(self) -> None:
        """Look at the schedules now (one was added or resumed, or the clock moved)."""
        self._wake.set()

    async def run(self) -> None:
        """Fire due schedules until cancelled."""
        while True:
            self._wake.clear()
            try:
                wait = await self.tick()
            except Exception as exc:  # the store failed: keep the loop, retry at the next poll
                self.worker.log_store_error(exc)
                wait = self.worker.settings.poll_seconds
            if wait <= 0:
                await asyncio.sleep(0)
                continue
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def tick(self) -> float:
        """Start the runs of the occurrences due now; seconds until the next look."""
        w = self.worker
        poll = w.settings.poll_seconds
        names = list(w.flows())
        if not names:
            return poll
        due = await w.store.schedule_next_at(names)
        now = w.clock()
        if due is not None and due <= now:
            fires = await w.store.schedule_claim_due(
                w.owner,
                names,
                now=now,
                lease_until=now + w.settings.lease_seconds,
                limit=BATCH,
                plan=_plan,
            )
            await self._start(fires)
            due = await w.store.schedule_next_at(names)
        if due is None:
            return poll
        return min(poll, max(0.0, due - w.clock()))

    async def _start(self, fires: list[ScheduleFire]) -> None:
        """Start the runs of claimed occurrences (one store transaction per tenant), then forget the
        claims."""
        by_tenant: dict[str, list[ScheduleFire]] = {}
        for f in fires:
            by_tenant.setdefault(f.tenant, []).append(f)
        for tenant, group in by_tenant.items():
            requests = [(f.flow, f.input, cron.run_key(f.name, f.at)) for f in group]
            try:
                handles = await self.client.start_many(requests, tenant=tenant)
            except StoreError:
                raise  # the claims expire, and the occurrences are started again (the keys make that safe)
            except UsageError:  # one cannot start (its input no longer fits the flow, say): one by one
                await self._start_each(group)
                continue
            self._count(handles)
            await self.worker.store.schedule_fired(group)

    async def _start_each(self, fires: list[ScheduleFire]) -> None:
        done: list[ScheduleFire] = []
        try:
            for fire in fires:
                try:
                    key = cron.run_key(fire.name, fire.at)
                    handle: RunHandle[Any] = await self.client.start(
                        fire.flow, fire.input, key=key, tenant=fire.tenant
                    )
                except StoreError:
                    raise
                except UsageError as exc:  # starting it again cannot help: drop it, loudly
                    log.error("schedule %r: cannot start a run of %r: %s", fire.name, fire.flow, exc)
                else:
                    self._count([handle])
                done.append(fire)
        finally:
            if done:
                await self.worker.store.schedule_fired(done)

    def _count(self, handles: list[RunHandle[Any]]) -> None:
        for handle in handles:
            if handle.created:
                self.started += 1
            else:
                self.repeated += 1
