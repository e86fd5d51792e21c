"""``Context``: a flow's only door to the world.

Every call on the context (and every ``@podium.step`` call) takes the next **position** in the run: a
string such as ``"4"`` or ``"2.1.0"`` (step 0 of branch 1 of the gather at position 2). Positions depend
only on the flow's own control flow, never on timing, so replay finds each journaled result where the
code asks for it, also inside concurrent branches.
"""

from __future__ import annotations

import asyncio
import uuid as _uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import UsageError
from ..types import JSON, Duration, parse_duration
from . import step as _step_module
from .step import StepFunction, StepOptions, _scope, make_options

try:  # the C-level map of running tasks: a cheaper asyncio.current_task() on the hot path
    from _asyncio import _current_tasks  # type: ignore[attr-defined]
    from asyncio.events import _get_running_loop

    def _current_task() -> asyncio.Task[Any] | None:
        return _current_tasks.get(_get_running_loop())  # type: ignore[no-any-return]
except ImportError:  # pragma: no cover - other interpreters
    _current_task = asyncio.current_task

if TYPE_CHECKING:
    from ..models.handle import ModelHandle
    from .flow import Flow

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Approval:
    """A human's decision on ``ctx.approval(...)``. Truthy when approved.

    ``payload`` is what the reviewer approved: the flow's proposal, or the reviewer's edited version
    (``edited`` tells which).
    """

    approved: bool
    payload: JSON = None
    by: str | None = None
    comment: str | None = None
    edited: bool = False

    def __bool__(self) -> bool:
        return self.approved


class Driver(Protocol):
    """What the engine provides to a running flow (implemented in ``podium.engine``)."""

    run_id: str
    active: int
    clock: Callable[[], float]
    models: Any  # podium.models.Models, created by the worker from settings
    spent: float  # dollars of model calls so far in this run
    budget: float | None  # the flow's budget per run
    daily_budget: float | None  # the flow's budget per UTC day, over all its runs

    async def spent_today(self) -> float: ...

    cache: Any  # podium.models.cache.ResponseCache on the worker's store

    async def step(
        self,
        scope: Scope,
        sid: str,
        options: StepOptions,
        fn: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any: ...

    def record(self, sid: str, name: str, produce: Callable[[], JSON]) -> JSON: ...

    async def sleep(self, sid: str, seconds: float) -> None: ...

    async def wait_signal(self, sid: str, name: str) -> JSON: ...

    async def approval(self, sid: str, name: str, payload: JSON) -> Approval: ...

    async def child(self, sid: str, flow: Flow[Any, Any], input: Any) -> Any: ...

    def settle(self) -> None:
        """Called whenever ``active`` dropped: the engine checks whether the run is quiescent."""
        ...


class Scope:
    """A sequence of positions owned by one task of the flow (the main task or one branch)."""

    __slots__ = ("attempt", "driver", "in_step", "n", "prefix", "step_id", "step_name", "task")

    def __init__(self, driver: Driver, prefix: str, task: asyncio.Task[Any] | None) -> None:
        self.driver = driver
        self.prefix = prefix
        self.n = 0
        self.task = task
        self.in_step = False  # while True, step_id/step_name/attempt describe the running step
        self.step_id = ""
        self.step_name = ""
        self.attempt = 0

    def next(self) -> str:
        sid = self.prefix + str(self.n)
        self.n += 1
        return sid


def enter_scope(scope: Scope) -> None:
    """Make ``scope`` the current one in this task (used by the engine for the main task)."""
    _scope.set(scope)


def _here(what: str) -> Scope:
    s: Scope | None = _scope.get()
    if s is None:
        raise UsageError(f"{what} can only be used inside a running flow")
    if s.in_step:
        raise UsageError(f"{what} cannot be used inside a step; call it from the flow")
    if asyncio.current_task() is not s.task:
        raise UsageError(
            f"{what} was called from a task the flow did not start (asyncio.gather or create_task?); "
            "use ctx.gather / ctx.map so each branch gets stable journal positions"
        )
    return s


async def _step(
    options: StepOptions,
    fn: Callable[..., Any],
    is_async: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    s = _scope.get()
    if s is None or s.in_step:  # outside a flow, or a step calling a step: plain call
        return (await fn(*args, **kwargs)) if is_async else fn(*args, **kwargs)
    if _current_task() is not s.task:
        _here(f"step {options.name!r}")
    sid = s.prefix + str(s.n)
    s.n += 1
    return await s.driver.step(s, sid, options, fn, is_async, args, kwargs)


_step_module._dispatch = _step  # steps call straight into the flow's driver


class _Fan:
    """What the branches of one gather share: how many are still running, and whether the gathering task
    has been handed back its place among the active ones."""

    __slots__ = ("parent_woken", "remaining", "return_exceptions")

    def __init__(self, remaining: int, return_exceptions: bool) -> None:
        self.remaining = remaining
        self.return_exceptions = return_exceptions
        self.parent_woken = False


async def _branch(driver: Driver, scope: Scope, aw: Awaitable[T], fan: _Fan) -> T:
    scope.task = asyncio.current_task()
    _scope.set(scope)
    failed = False
    try:
        return await aw
    except Exception:
        failed = True
        raise
    finally:
        fan.remaining -= 1
        if not fan.parent_woken and (fan.remaining == 0 or (failed and not fan.return_exceptions)):
            # This branch's end wakes the gathering task: hand it this branch's active count at once, so
            # the run is never seen quiescent in the loop turns before the gathering task resumes.
            fan.parent_woken = True
        else:
            driver.active -= 1
        driver.settle()


class Context:
    """Passed to every flow as its first argument. All effects go through it (or through steps).

    ```python
    @podium.flow
    async def checkout(ctx: podium.Context, order: Order) -> Receipt:
        prices = await ctx.gather(*(price(i) for i in order.items))
        if sum(prices) > 1000 and not await ctx.approval("large_order", payload={"total": sum(prices)}):
            raise podium.ApplicationError("rejected", retryable=False)
        await ctx.sleep("10m")
        ...
    ```
    """

    def __init__(self, driver: Driver, *, run_id: str, flow: str, attempt: int) -> None:
        self._driver = driver
        self.run_id = run_id
        """This run's id."""
        self.flow = flow
        """The flow's registered name."""
        self.attempt = attempt
        """How many times a worker has claimed this run (1 on the first execution)."""

    # -- steps --------------------------------------------------------------------------------
    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: int | Any = None,
        timeout: Duration | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` as a journaled step named ``name`` (sync or async ``fn``)."""
        if not isinstance(name, str) or not name:
            raise UsageError("ctx.step needs a non-empty name")
        if isinstance(fn, StepFunction):
            base = fn.options  # the decorated step's retries/timeout, unless given here; always this name
            options = make_options(
                name,
                base.retry if retries is None else retries,
                base.timeout if timeout is None else timeout,
            )
            is_async = fn.is_async
            fn = fn.fn
        else:
            options = make_options(name, retries, timeout)
            is_async = asyncio.iscoroutinefunction(fn)
        s = _here(f"ctx.step({name!r})")
        return await self._driver.step(s, s.next(), options, fn, is_async, args, kwargs)

    # -- deterministic values -----------------------------------------------------------------
    def now(self) -> datetime:
        """The current time (UTC), journaled: replay sees the same value."""
        s = _here("ctx.now()")
        clock = self._driver.clock
        value = self._driver.record(s.next(), "now", lambda: datetime.fromtimestamp(clock(), UTC).isoformat())
        return datetime.fromisoformat(value)

    def uuid(self) -> _uuid.UUID:
        """A random UUID4, journaled."""
        s = _here("ctx.uuid()")
        return _uuid.UUID(self._driver.record(s.next(), "uuid", lambda: str(_uuid.uuid4())))

    def random(self) -> float:
        """A random float in [0, 1), journaled."""
        import random

        s = _here("ctx.random()")
        return float(self._driver.record(s.next(), "random", random.random))

    # -- waiting ------------------------------------------------------------------------------
    async def sleep(self, duration: Duration) -> None:
        """A durable timer: the run may leave memory meanwhile and resumes when it falls due."""
        seconds = parse_duration(duration)
        s = _here("ctx.sleep()")
        await self._driver.sleep(s.next(), seconds)

    async def wait_for_signal(self, name: str) -> JSON:
        """Wait (durably, for as long as it takes) for a signal sent with ``Client.signal``; returns
        its payload. Signals that arrived earlier are consumed in order."""
        if not isinstance(name, str) or not name:
            raise UsageError("a signal needs a non-empty name")
        s = _here("ctx.wait_for_signal()")
        return await self._driver.wait_signal(s.next(), name)

    async def approval(self, name: str, *, payload: JSON = None) -> Approval:
        """Ask a human to approve ``payload``; wait durably for the decision.

        The reviewer may approve, reject, or approve an edited payload; the returned ``Approval`` is truthy
        when approved and carries the payload to act on.
        """
        if not isinstance(name, str) or not name:
            raise UsageError("an approval needs a non-empty name")
        s = _here("ctx.approval()")
        return await self._driver.approval(s.next(), name, payload)

    @property
    def cost(self) -> float:
        """Dollars this run has spent on model calls so far."""
        return self._driver.spent

    # -- models -------------------------------------------------------------------------------
    def model(self, name: str = "default") -> ModelHandle:
        """A named model (see ``podium.toml``); every call on it is a journaled step.

        ```python
        label = await ctx.model("fast").classify(text, labels=["refund", "bug", "question"])
        reply = await ctx.model("smart").generate(prompt, system="Be brief.", output=Reply)
        ```
        """
        from ..models.handle import ModelHandle

        return ModelHandle(self, self._driver.models, name, self._driver.cache)

    async def embed(self, texts: str | list[str], *, model: str = "embed", query: bool = False) -> Any:
        """Embedding vector(s) of ``texts`` (a vector for a string, a list for a list), as one step.
        ``query=True`` embeds search queries (e5 models embed queries and passages differently)."""
        from ..models.handle import embed

        return await embed(self, self._driver.models, texts, model=model, query=query)

    # -- composition --------------------------------------------------------------------------
    async def gather(self, *aws: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
        """Run awaitables (steps, child flows, waits, helper coroutines) concurrently; results in order.

        If one fails, the others are cancelled and the first failure (in argument order) is raised,
        unless ``return_exceptions`` is true.
        """
        s = _here("ctx.gather()")
        return await self._fan(s, list(aws), return_exceptions)

    async def map(
        self,
        fn: Callable[[Any], Awaitable[T]],
        items: Iterable[Any],
        *,
        concurrency: int | None = None,
    ) -> list[T]:
        """``fn(item)`` for every item, concurrently (at most ``concurrency`` at once); results in order."""
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise UsageError("concurrency must be a positive integer")
        s = _here("ctx.map()")
        values = list(items)
        if concurrency is None or concurrency >= len(values):
            return await self._fan(s, [fn(v) for v in values], False)
        sem = asyncio.Semaphore(concurrency)
        driver = self._driver

        async def limited(v: Any) -> T:
            if sem.locked():
                driver.active -= 1  # blocked on siblings, not on the world
                driver.settle()
                try:
                    await sem.acquire()
                finally:
                    driver.active += 1
            else:
                await sem.acquire()
            try:
                return await fn(v)
            finally:
                sem.release()

        return await self._fan(s, [limited(v) for v in values], False)

    async def child(self, flow: Flow[Any, T] | str, input: Any = None) -> T:
        """Start ``flow`` as a child run and wait for its output (durably). Its failure raises here."""
        from .flow import resolve_flow

        target = resolve_flow(flow)
        s = _here("ctx.child()")
        return await self._driver.child(s.next(), target, input)  # type: ignore[no-any-return]

    async def _fan(self, s: Scope, aws: list[Awaitable[Any]], return_exceptions: bool) -> list[Any]:
        sid = s.next()
        if not aws:
            return []
        driver = self._driver
        loop = asyncio.get_running_loop()
        fan = _Fan(len(aws), return_exceptions)
        tasks: list[asyncio.Task[Any]] = []
        for i, aw in enumerate(aws):
            driver.active += 1
            tasks.append(loop.create_task(_branch(driver, Scope(driver, f"{sid}.{i}.", None), aw, fan)))
        driver.active -= 1  # this task now only waits for its branches
        try:
            if return_exceptions:
                await asyncio.wait(tasks)
            else:
                _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                if pending:
                    for t in pending:
                        t.cancel()
                    await asyncio.wait(pending)
        except BaseException:
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks)
            raise
        finally:
            if not fan.parent_woken:  # woken by its own cancellation rather than by a branch
                fan.parent_woken = True
                driver.active += 1
        if return_exceptions:
            return [t.exception() if not t.cancelled() and t.exception() else t.result() for t in tasks]
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
