"""How ``Context`` runs branches (``Context`` inherits it): spawning and cancelling started work,
fan-out (``ctx.gather``/``ctx.map``) and races (``ctx.first``/``ctx.wait``), whose outcome is journaled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from .branches import (
    Branch,
    Finished,
    Join,
    Region,
    cancel_and_wait,
    reap,
    settled,
    spawn,
    wait_join,
)
from .driver import Driver, Scope, _here


class _Branching:
    """Branch machinery of ``Context``."""

    _driver: Driver

    def _start(self, s: Scope, aw: Awaitable[Any], parent_region: Region | None = None) -> Branch:
        driver = self._driver
        sid = s.next()
        outer = parent_region if parent_region is not None else s.region
        region = Region(sid, outer, driver.region_doomed(sid))
        region.cancelled = region.doomed and not outer.doomed
        b = spawn(driver, s, f"{sid}.0.", aw, 0, region)
        assert b.task is not None
        outer.tasks.add(b.task)
        b.task.add_done_callback(outer.tasks.discard)
        return b

    def _cancel_handle(self, b: Branch) -> None:
        # Whether the work had finished when cancel() was called is journaled like ctx.now(): a replay,
        # in which branches finish at other moments, takes the same decision.
        s = _here("TaskHandle.cancel()")
        if self._driver.record(s.next(), "cancel", lambda: not b.finished):
            self._cancel_region(b.region)

    def _cancel_region(self, region: Region | None) -> None:
        if region is None:
            return
        if not region.cancelled:
            region.cancelled = True
            region.doomed = True
            self._driver.record_cancel(region.sid)
        for t in list(region.tasks):
            t.cancel()
        owner = region.owner  # the branch's own task
        if owner is not None and not owner.done() and owner is not asyncio.current_task():
            owner.cancel()

    async def _await_handle(self, b: Branch) -> Any:
        if not b.finished:
            s = _here("awaiting a task handle")
            join = Join(lambda j, x: True)
            b.joins.append(join)
            try:
                await wait_join(self._driver, s, join)
            except BaseException:
                b.joins.remove(join)
                raise
            s.at = max(s.at, b.scope.at)
        reap([b])
        if b.region is not None and b.region.cancelled:
            raise asyncio.CancelledError  # cancelled before it finished (also when a replay ran it further)
        return b.value()

    async def _fan(self, s: Scope, aws: list[Awaitable[Any]], return_exceptions: bool) -> list[Any]:
        sid = s.next()
        if not aws:
            return []
        driver = self._driver
        total = len(aws)

        def ready(j: Join, b: Branch) -> bool:
            return len(j.done) == total or (b.error is not None and not return_exceptions)

        join = Join(ready)
        branches: list[Branch] = []
        for i, aw in enumerate(aws):
            b = spawn(driver, s, f"{sid}.{i}.", aw, i, None)
            b.joins.append(join)
            branches.append(b)
        try:
            await wait_join(driver, s, join)
            if len(join.done) < total:
                await cancel_and_wait(branches)
        except BaseException:
            await cancel_and_wait(branches)
            reap(branches)
            raise
        reap(branches)
        s.at = max(s.at, *(b.scope.at for b in branches))
        if return_exceptions:
            return [b.error if b.error is not None else b.value() for b in branches]
        for b in branches:
            if b.error is not None:
                raise b.error
        return [b.value() for b in branches]

    async def _race(
        self, s: Scope, aws: list[Awaitable[Any]], n: int, cancel_rest: bool, name: str
    ) -> Finished:
        driver = self._driver
        sid = s.next()
        total = len(aws)
        try:
            past = driver.joined(sid, name)
        except BaseException:
            for a in aws:
                _close(a)
            raise
        branches: list[Branch] = []
        need: set[int] | None = None
        lost: set[int] = set()
        if past is not None:
            need = set(past["won"]) | set(past["failed"])
            lost = set(past["cancelled"])
        for i, aw in enumerate(aws):
            rsid = f"{sid}.{i}"
            region = Region(rsid, s.region, past is not None and i in lost)
            region.cancelled = region.doomed and not s.region.doomed
            b = spawn(driver, s, rsid + ".", aw, i, region)
            b.held = True
            branches.append(b)

        if past is None:

            def ready(j: Join, b: Branch) -> bool:
                oks = sum(1 for x in j.done if x.ok)
                bad = len(j.done) - oks
                return oks >= n or total - bad < n or len(j.done) == total

        else:
            assert need is not None
            wanted = need

            def ready(j: Join, b: Branch) -> bool:
                return all(branches[i].finished for i in wanted)

        join = Join(ready)
        for b in branches:
            b.joins.append(join)
        try:
            await wait_join(driver, s, join)
            if past is None:
                won, failed = await self._decide(branches, n)
                lost_list = [b for b in branches if b not in won and b not in failed]
                data = {
                    "won": [b.index for b in won],
                    "failed": [b.index for b in failed],
                    "cancelled": [b.index for b in lost_list] if cancel_rest else [],
                    "ignored": [] if cancel_rest else [b.index for b in lost_list],
                }
                driver.record_join(sid, name, data)
            else:
                won = [branches[i] for i in past["won"]]
                failed = [branches[i] for i in past["failed"]]
                lost_list = [b for b in branches if b not in won and b not in failed]
        except BaseException:
            for b in branches:
                if b.region is not None:
                    b.region.cancelled = True
            await cancel_and_wait(branches)
            reap(branches)
            raise
        # Losers: cancelled (each rolls its own work back as it unwinds), or left to run unobserved.
        for b in lost_list:
            r = b.region
            assert r is not None
            if cancel_rest:
                if not r.cancelled:
                    r.cancelled = r.doomed = True
                if b.finished and r.undo:  # finished, but too late to count: roll its work back here
                    await driver.compensate(r)
            else:
                b.held = False
                if b.finished:
                    s.region.undo.extend(r.undo)
                    r.undo = []
                else:
                    driver.add_detached(b)
        if cancel_rest:
            await cancel_and_wait(lost_list)
        for b in won + failed:
            r = b.region
            assert r is not None
            s.region.undo.extend(r.undo)
            r.undo = []
        reap(branches)
        if len(won) < n:
            err = failed[0].error
            assert err is not None
            raise err
        s.at = max(s.at, *(b.scope.at for b in won))
        return Finished([b.value() for b in won], [b.index for b in won])

    async def _decide(self, branches: list[Branch], n: int) -> tuple[list[Branch], list[Branch]]:
        """Which branches won (and, if too few, which failed), by the time of their last effect.

        Live, the first to complete is also the earliest. After a catch-up (the worker was down while a
        timer fell due and a signal arrived) several may complete at once on resume: wait until the
        others can only end later than now, then let the earliest effect win, as it did in the world."""
        driver = self._driver

        def candidates() -> list[Branch]:
            done = [b for b in branches if b.finished and b.ok]
            done.sort(key=lambda b: (b.scope.at, b.order))
            return done

        won = candidates()
        if won and won[0].scope.at < driver.resumed_at:
            spins = 0
            while not all(settled(b.scope) for b in branches):
                spins += 1
                await asyncio.sleep(0 if spins < 100 else 0.001)
            won = candidates()
        won = won[:n]
        failed = []
        if len(won) < n:
            failed = [b for b in branches if b.finished and b.error is not None]
            failed.sort(key=lambda b: b.order)
        return won, failed


def _close(aw: Awaitable[Any]) -> None:
    from .branches import close

    close(aw)
