"""Concurrent work inside a flow: branches, joins, task handles, groups and cancel scopes.

A **branch** is an asyncio task of the flow with its own sequence of journal positions (see
``context.Scope``). Every construct here is built from branches and **joins** (a parent task waiting
until some condition over its branches holds), and from **regions**: a region is what a cancel scope
cancels, and it collects the compensations of the steps completed inside it.

The engine counts *active* branches to find out when a run only waits for the outside world (and may
leave memory). A parent waiting on a join is not active; the branch whose end satisfies the join hands
its own count to the parent at once, so the run is never seen idle in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import UsageError
from .step import Compensation

if TYPE_CHECKING:
    from .context import Driver, Scope

T = TypeVar("T")


class Undo:
    """A completed step's compensation, waiting in its region in case the region is rolled back."""

    __slots__ = ("args", "comp", "ended", "kwargs", "result", "sid")

    def __init__(
        self,
        comp: Compensation,
        sid: str,
        ended: float,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
    ) -> None:
        self.comp = comp
        self.sid = sid
        self.ended = ended
        self.args = args
        self.kwargs = kwargs
        self.result = result


class Region:
    """The work a cancel scope covers: its owner task while inside the scope, and every branch started
    from it. ``doomed`` regions refuse new effects (raising ``CancelledError``): set when the region is
    cancelled, and from the start when replay finds the journal says it was."""

    __slots__ = ("cancelled", "doomed", "inside", "owner", "parent", "sid", "tasks", "undo")

    def __init__(self, sid: str, parent: Region | None, doomed: bool = False) -> None:
        self.sid = sid
        self.parent = parent
        self.doomed: bool = doomed or (parent is not None and parent.doomed)
        self.cancelled = False
        self.inside = False  # the owner task is between __aenter__ and __aexit__
        self.owner: asyncio.Task[Any] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()  # branches started in it that must stop with it
        self.undo: list[Undo] = []

    def pop_undo(self) -> list[Undo]:
        """The compensations to run, newest first. Ordered by the journaled end time of the steps (then
        position), so a replay, in which concurrent steps finish in another order, runs them alike."""
        undo, self.undo = self.undo, []
        undo.sort(key=lambda u: (u.ended, u.sid), reverse=True)
        return undo


class Branch:
    """One branch: its scope (positions), its task, and how it ended."""

    __slots__ = ("error", "finished", "held", "index", "joins", "ok", "order", "region", "scope", "task")

    def __init__(self, index: int, scope: Scope, region: Region | None) -> None:
        self.index = index
        self.scope = scope
        self.region = region  # its own region (races, handles, groups), or None (gather)
        self.task: asyncio.Task[Any] | None = None
        self.joins: list[Join] = []
        self.finished = False
        self.ok = False
        self.error: BaseException | None = None
        self.order = 0  # completion order among its siblings (1-based once finished)
        self.held = False  # a race decides what becomes of its compensations (else they join the parent's)

    def value(self) -> Any:
        """The branch's result (raises its exception, or CancelledError if it was cancelled)."""
        assert self.task is not None
        return self.task.result()


class Join:
    """A condition over some branches that a parent task waits for."""

    __slots__ = ("done", "fut", "ready", "woken")

    def __init__(self, ready: Callable[[Join, Branch], bool]) -> None:
        self.ready = ready
        self.fut: asyncio.Future[None] | None = None
        self.woken = False
        self.done: list[Branch] = []  # finished branches, in completion order


def is_doomed(region: Region | None) -> bool:
    """True when new effects in ``region`` must be refused (it, or a region around it, was cancelled)."""
    while region is not None:
        if region.doomed:
            return True
        region = region.parent
    return False


def spawn(
    driver: Driver,
    parent: Scope,
    prefix: str,
    aw: Awaitable[Any],
    index: int,
    region: Region | None,
) -> Branch:
    """Start ``aw`` as a branch with positions ``prefix + "0"``, ``prefix + "1"``, ..."""
    from .context import Scope

    scope = Scope(driver, prefix, None)
    scope.region = region if region is not None else parent.region
    scope.parent = parent
    parent.kids.add(scope)
    b = Branch(index, scope, region)
    driver.active += 1
    b.task = task = asyncio.get_running_loop().create_task(_run(driver, b, aw))
    task.add_done_callback(lambda _: _never_ran(driver, b, aw))
    if region is not None:
        region.owner = b.task
    return b


async def _run(driver: Driver, b: Branch, aw: Awaitable[Any]) -> Any:
    from .step import _scope

    s = b.scope
    s.task = asyncio.current_task()
    _scope.set(s)
    try:
        value = await aw
        b.ok = True
        return value
    except Exception as exc:
        b.error = exc
        raise
    except asyncio.CancelledError:
        r = b.region
        if r is not None and r.cancelled and r.undo:  # this branch's own work was cancelled: roll it back
            await driver.compensate(r)
        raise
    finally:
        _finish(driver, b)


def _never_ran(driver: Driver, b: Branch, aw: Awaitable[Any]) -> None:
    """A branch's task was cancelled before it ever ran: discard its awaitable, end it all the same."""
    if not b.finished:
        close(aw)
        _finish(driver, b)


def _finish(driver: Driver, b: Branch) -> None:
    """A branch ended: update the bookkeeping and wake whoever waits for it (once)."""
    if b.finished:
        return
    b.finished = True
    s = b.scope
    s.done = True
    if s.parent is not None:
        s.parent.kids.discard(s)
    r = b.region
    if r is not None and not r.cancelled and not b.held and r.parent is not None:
        r.parent.undo.extend(r.undo)  # its completed work now belongs to the enclosing region
        r.undo = []
    driver.active -= 1
    for j in b.joins:
        j.done.append(b)
        b.order = len(j.done)
        if not j.woken and j.ready(j, b):
            j.woken = True
            driver.active += 1  # handed to the parent, which resumes now
            if j.fut is not None and not j.fut.done():
                j.fut.set_result(None)
    driver.settle()


async def wait_join(driver: Driver, scope: Scope, join: Join) -> None:
    """Wait (as ``scope``'s task) until ``join`` is ready. Not active meanwhile."""
    if join.woken:
        # Ready before we waited: the branch handed its count to us while we were still active.
        driver.active -= 1
        return
    join.fut = asyncio.get_running_loop().create_future()
    driver.active -= 1
    scope.joining = True
    driver.settle()
    try:
        await join.fut
    finally:
        scope.joining = False
        if not join.woken:  # woken by a cancellation, not by a branch
            join.woken = True
            driver.active += 1
    # the branch's count became ours: nothing to adjust


def settled(scope: Scope) -> bool:
    """True when ``scope``'s branch can no longer finish with an earlier time than now: it finished, it
    waits for the world or runs a live step, or all its own branches are settled."""
    if scope.done or scope.fresh:
        return True
    if scope.joining:
        return all(settled(k) for k in scope.kids)
    return False


async def cancel_and_wait(branches: list[Branch]) -> None:
    tasks = [b.task for b in branches if b.task is not None and not b.task.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks)


def reap(branches: list[Branch]) -> None:
    """Mark every finished branch's exception as retrieved (asyncio would log it otherwise)."""
    for b in branches:
        t = b.task
        if t is not None and t.done() and not t.cancelled():
            t.exception()


def close(aw: Awaitable[Any]) -> None:
    """Discard an awaitable that will never run (a race loser on replay) without a warning."""
    if isinstance(aw, Coroutine):
        aw.close()
    elif isinstance(aw, asyncio.Future):
        aw.cancel()


class Finished(list[Any]):
    """The results of ``ctx.wait``, in completion order; ``indices[i]`` says which awaitable gave
    ``self[i]`` (its position in the list passed to ``ctx.wait``)."""

    indices: list[int]

    def __init__(self, values: list[Any], indices: list[int]) -> None:
        super().__init__(values)
        self.indices = indices


class TaskHandle(Generic[T]):
    """Work started with ``ctx.start(...)`` or ``group.start(...)``: await it for its result.

    ```python
    t = ctx.start(summarise(doc))
    ...                      # other work meanwhile
    if t.done(): ...
    summary = await t        # or t.cancel()
    ```
    """

    __slots__ = ("_branch", "_ctx")

    def __init__(self, ctx: Any, branch: Branch) -> None:
        self._ctx = ctx
        self._branch = branch

    def done(self) -> bool:
        """True once the work finished (with a result, an error, or cancelled)."""
        return self._branch.finished

    def cancel(self) -> None:
        """Cancel the work (journaled: a replay cancels it at the same point). Its completed steps'
        compensations run. Awaiting a cancelled handle raises ``asyncio.CancelledError``. Cancelling
        work that already finished does nothing (awaiting it gives its result)."""
        self._ctx._cancel_handle(self._branch)

    def __await__(self) -> Any:
        return self._ctx._await_handle(self._branch).__await__()

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<podium task {self._branch.scope.prefix.rstrip('.')} {state}>"


def check_awaitables(what: str, aws: Any) -> list[Awaitable[Any]]:
    items = list(aws)
    for a in items:
        if not isinstance(a, Awaitable):
            for b in items:
                if isinstance(b, Coroutine):
                    b.close()
            raise UsageError(f"{what} takes awaitables (steps, child flows, waits), not {a!r}")
    return items
