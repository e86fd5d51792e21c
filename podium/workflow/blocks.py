"""The ``async with`` blocks of a flow: ``ctx.milestone``, ``ctx.scope`` (a cancel scope) and ``ctx.group``
(a task group). Importable from ``podium.workflow.context``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import UsageError
from .branches import Branch, Join, Region, TaskHandle, cancel_and_wait, check_awaitables, reap, wait_join
from .driver import Driver, Scope, _here
from .races import _close

if TYPE_CHECKING:
    from .context import Context

T = TypeVar("T")


class Milestone:
    """``async with ctx.milestone(name)``: see ``Context.milestone``."""

    def __init__(self, driver: Driver, scope: Scope, sid: str, name: str) -> None:
        self._driver = driver
        self._scope = scope
        self._sid = sid
        self.name = name

    async def __aenter__(self) -> Milestone:
        await self._driver.milestone(self._scope, self._sid, self.name, True)
        return self

    async def __aexit__(self, et: Any, exc: BaseException | None, tb: Any) -> None:
        await self._driver.milestone(self._scope, self._sid, self.name, False)


class _RegionBlock:
    """An ``async with`` block of a flow with a region of its own (a cancel scope, a group): entered in the
    branch that made it; on leaving, its compensations run (it failed or was cancelled) or pass to the
    enclosing region."""

    _what = ""  # how users write it, for the error of entering it elsewhere

    def __init__(self, ctx: Context, scope: Scope, sid: str) -> None:
        self._ctx = ctx
        self._scope = scope
        self._region = Region(sid, scope.region, ctx._driver.region_doomed(sid))
        self._region.cancelled = self._region.doomed and not scope.region.doomed
        self._saved: Region | None = None
        self._cancelled_task = False

    def _enter(self) -> None:
        s = self._scope
        if asyncio.current_task() is not s.task:
            raise UsageError(f"enter {self._what} in the branch that created it")
        self._saved = s.region
        s.region = self._region
        self._region.owner = s.task
        self._region.inside = True

    async def _undo_or_keep(self, undo: bool) -> None:
        """Run the region's compensations now, or hand them to the enclosing region."""
        r = self._region
        if undo:
            await self._ctx._driver.compensate(r)
        else:
            assert self._saved is not None
            self._saved.undo.extend(r.undo)
            r.undo = []


class CancelScope(_RegionBlock):
    """``async with ctx.scope() as s``: see ``Context.scope``."""

    _what = "ctx.scope()"

    @property
    def cancelled(self) -> bool:
        """True once the scope was cancelled."""
        return self._region.cancelled

    def cancel(self) -> None:
        """Cancel everything started inside the scope (from any branch of the flow); journaled."""
        r = self._region
        if not r.cancelled:
            r.cancelled = True
            r.doomed = True
            self._ctx._driver.record_cancel(r.sid)
        for t in list(r.tasks):
            t.cancel()
        owner = r.owner
        here = asyncio.current_task()
        if (
            r.inside
            and owner is not None
            and owner is not here
            and not owner.done()
            and not self._cancelled_task
        ):
            self._cancelled_task = True
            owner.cancel()

    async def __aenter__(self) -> CancelScope:
        self._enter()
        return self

    async def __aexit__(self, et: Any, exc: BaseException | None, tb: Any) -> bool:
        r = self._region
        r.inside = False
        s = self._scope
        assert self._saved is not None
        s.region = self._saved
        ours = False
        if isinstance(exc, asyncio.CancelledError) and r.cancelled:
            task = s.task
            assert task is not None
            left = task.uncancel() if self._cancelled_task else task.cancelling()
            ours = left == 0
        await self._undo_or_keep(r.cancelled or isinstance(exc, Exception))
        return ours


class Group(_RegionBlock):
    """``async with ctx.group() as g``: see ``Context.group``."""

    _what = "ctx.group()"

    def __init__(self, ctx: Context, scope: Scope, sid: str) -> None:
        super().__init__(ctx, scope, sid)
        self._branches: list[Branch] = []
        self._error: BaseException | None = None
        self._join = Join(self._ready)
        self._open = False

    def _ready(self, j: Join, b: Branch) -> bool:
        if b.error is not None and self._error is None:
            self._error = b.error
            self._abort()
        return not self._open and all(x.finished for x in self._branches)

    def _abort(self) -> None:
        for b in self._branches:
            if not b.finished:
                self._ctx._cancel_region(b.region)
        owner = self._scope.task
        if self._open and owner is not None and owner is not asyncio.current_task() and not owner.done():
            self._cancelled_task = True
            owner.cancel()

    def start(self, aw: Awaitable[T]) -> TaskHandle[T]:
        """Start ``aw`` in the group (from the block or from any of the group's tasks)."""
        (aw,) = check_awaitables("group.start", [aw])
        if not self._open and all(b.finished for b in self._branches) and self._branches:
            _close(aw)
            raise UsageError("this group has ended; start work inside its `async with` block")
        s = _here("group.start()")
        b = self._ctx._start(s, aw, self._region)
        b.joins.append(self._join)
        self._branches.append(b)
        if self._error is not None:
            self._ctx._cancel_region(b.region)
        return TaskHandle(self._ctx, b)

    async def __aenter__(self) -> Group:
        self._enter()
        self._open = True
        return self

    async def __aexit__(self, et: Any, exc: BaseException | None, tb: Any) -> bool:
        s = self._scope
        r = self._region
        driver = self._ctx._driver
        assert self._saved is not None
        ours = False
        if isinstance(exc, asyncio.CancelledError) and self._cancelled_task:
            task = s.task
            assert task is not None
            ours = task.uncancel() == 0
        if exc is not None and self._error is None and not ours:
            self._error = exc if isinstance(exc, Exception) else None
            for b in self._branches:
                if not b.finished:
                    self._ctx._cancel_region(b.region)
        self._open = False
        r.inside = False
        try:
            if not all(b.finished for b in self._branches):
                await wait_join(driver, s, self._join)
        except BaseException:
            await cancel_and_wait(self._branches)
            raise
        finally:
            s.region = self._saved
            reap(self._branches)
        if self._branches:
            s.at = max(s.at, *(b.scope.at for b in self._branches))
        await self._undo_or_keep(self._error is not None or isinstance(exc, Exception))
        if self._error is not None and (ours or exc is None or exc is self._error):
            raise self._error
        return False
