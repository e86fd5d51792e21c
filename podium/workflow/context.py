"""``Context``: a flow's only door to the world.

Every call on the context (and every ``@podium.step`` call) takes the next **position** in the run: a
string such as ``"4"`` or ``"2.1.0"`` (step 0 of branch 1 of the gather at position 2). Positions depend
only on the flow's own control flow, never on timing, so replay finds each journaled result where the
code asks for it, also inside concurrent branches.
"""

from __future__ import annotations

import asyncio
import uuid as _uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from ..errors import UsageError
from ..types import JSON, Duration, parse_duration
from . import step as _step_module
from .branches import (
    Branch,
    Finished,
    Join,
    Region,
    TaskHandle,
    cancel_and_wait,
    check_awaitables,
    reap,
    settled,
    spawn,
    wait_join,
)
from .step import StepFunction, StepOptions, _scope, make_options

try:  # the C-level map of running tasks: a cheaper asyncio.current_task() on the hot path
    from _asyncio import _current_tasks  # type: ignore[attr-defined]
    from asyncio.events import _get_running_loop

    def _current_task() -> asyncio.Task[Any] | None:
        return _current_tasks.get(_get_running_loop())  # type: ignore[no-any-return]
except ImportError:  # pragma: no cover - other interpreters
    _current_task = asyncio.current_task

if TYPE_CHECKING:
    from ..management.prompts import Prompt
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


class ContinueAsNew(BaseException):
    """Raised by ``ctx.continue_as_new``; the engine restarts the run with a fresh journal."""

    def __init__(self, input: Any) -> None:
        super().__init__("continue as new")
        self.input = input


class TokenStream(Protocol):
    """A streaming step's live text (``Driver.token_stream``): readers follow it by the run's token stream."""

    async def write(self, text: str) -> None: ...

    async def close(self) -> None: ...


class Driver(Protocol):
    """What the engine provides to a running flow (implemented in ``podium.engine``)."""

    run_id: str
    active: int
    clock: Callable[[], float]
    models: Any  # podium.models.Models, created by the worker from settings
    spent: float  # dollars of model calls so far in this run
    budget: float | None  # the flow's budget per run
    pins: dict[str, str]  # the run's pins (``Client.start(pins=)``)
    daily_budget: float | None  # the flow's budget per UTC day, over all its runs

    async def spent_today(self) -> float: ...

    cache: Any  # podium.models.cache.ResponseCache on the worker's store
    store: Any  # the worker's store (registries that live in it: prompts)

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

    async def record_async(self, sid: str, name: str, produce: Callable[[], Awaitable[JSON]]) -> JSON:
        """``record`` for a value that takes I/O to produce (a registry lookup)."""
        ...

    async def sleep(self, scope: Scope, sid: str, seconds: float) -> None: ...

    async def wait_signal(self, scope: Scope, sid: str, name: str) -> JSON: ...

    async def approval(self, scope: Scope, sid: str, name: str, payload: JSON) -> Approval: ...

    async def child(self, scope: Scope, sid: str, flow: Flow[Any, Any], input: Any) -> Any: ...

    def settle(self) -> None:
        """Called whenever ``active`` dropped: the engine checks whether the run is quiescent."""
        ...

    def token_stream(self, sid: str) -> TokenStream | None:
        """Where step ``sid`` publishes streamed text (None: nowhere, e.g. on replay)."""
        ...

    root: Region  # the run's own region (its compensations run when the run fails or is cancelled)
    resumed_at: float  # when this execution began: earlier effects were caught up, not seen live

    def joined(self, sid: str, name: str) -> Any:
        """The journaled outcome of the race at ``sid`` (``None``: not decided yet)."""
        ...

    def record_join(self, sid: str, name: str, data: JSON) -> None:
        """Journal a race's outcome (on disk before the run's next effect starts)."""
        ...

    def region_doomed(self, sid: str) -> bool:
        """True when the journal says the region at ``sid`` was cancelled."""
        ...

    def record_cancel(self, sid: str) -> None:
        """Journal that the region at ``sid`` was cancelled."""
        ...

    async def compensate(self, region: Region) -> None:
        """Run the compensations collected in ``region``, newest first, as journaled steps."""
        ...

    def add_detached(self, branch: Branch) -> None:
        """A branch nobody awaits (``ctx.start`` or a race's ``cancel_rest=False``): the run ends after it."""
        ...

    async def milestone(self, scope: Scope, sid: str, name: str, entering: bool) -> None:
        """Journal entering (or leaving) milestone ``name`` at ``sid``; durable before returning."""
        ...

    def held(self, sid: str) -> tuple[str, str] | None:
        """The kind and name of the journal's event at ``sid``; None past the journal's end."""
        ...

    def patched(self, scope: Scope, name: str) -> bool:
        """Whether this run takes the code path of change ``name`` (see ``Context.patched``)."""
        ...


class Scope:
    """A sequence of positions owned by one task of the flow (the main task or one branch)."""

    __slots__ = (
        "at",
        "attempt",
        "done",
        "driver",
        "fresh",
        "in_step",
        "joining",
        "kids",
        "n",
        "parent",
        "prefix",
        "region",
        "step_id",
        "step_name",
        "task",
    )

    def __init__(self, driver: Driver, prefix: str, task: asyncio.Task[Any] | None) -> None:
        self.driver = driver
        self.prefix = prefix
        self.n = 0
        self.task = task
        self.in_step = False  # while True, step_id/step_name/attempt describe the running step
        self.step_id = ""
        self.step_name = ""
        self.attempt = 0
        self.region: Region = driver.root
        self.parent: Scope | None = None
        self.kids: set[Scope] = set()
        self.at = 0.0  # the time of the latest outside effect this branch consumed (races compare it)
        self.fresh = False  # waiting for the world or running a live step: it will end no earlier than now
        self.joining = False  # waiting for its own branches
        self.done = False

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


async def _nothing() -> JSON:
    return None


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

    def __init__(
        self, driver: Driver, *, run_id: str, flow: str, attempt: int, tenant: str = "default"
    ) -> None:
        self._driver = driver
        self.run_id = run_id
        """This run's id."""
        self.tenant = tenant
        """The tenant the run belongs to (``Client.start(tenant=)``, inherited by child runs). Memories and
        collections are not isolated per tenant yet: a flow that keeps tenants' data apart names them with
        it, such as ``ctx.retrieve(q, collection=f"{ctx.tenant}/docs")``."""
        self.flow = flow
        """The flow's registered name."""
        self.attempt = attempt
        """How many times a worker has claimed this run (1 on the first execution)."""
        self._untrusted = False  # untrusted text reached a model in this run (podium.policies.untrusted)

    @property
    def pins(self) -> Mapping[str, str]:
        """The run's pins, read-only: choices fixed when the run started (``Client.start(pins=)``,
        ``podium run --pin``), inherited by child runs and kept across ``continue_as_new``.

        ``model:NAME`` makes ``ctx.model("NAME")`` call another configured model; ``prompt:NAME`` picks a
        version or label for ``ctx.prompt("NAME")``; other keys are the flow's own (e.g. an experiment's arm).
        """
        return MappingProxyType(self._driver.pins)

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
                ray=base.ray,
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

    async def prompt(self, name: str, *, label: str | None = None, version: int | None = None) -> Prompt:
        """A prompt of the registry (``client.prompts``), resolved once and journaled: replay and resumed
        runs use the same version even if its label moved meanwhile.

        ```python
        prompt = await ctx.prompt("triage")                  # the "production" label (or the run's A/B arm)
        text = await ctx.model("fast").generate(prompt.render(ticket=ticket), system=prompt.render().system)
        ```
        Resolution order: the run's pin ``prompt:NAME`` (a version number or a label), then ``version=`` or
        ``label=``, then the prompt's A/B split (an arm picked from the run id), then ``production``.
        """
        if not isinstance(name, str) or not name:
            raise UsageError("ctx.prompt needs a prompt name")
        from ..management import prompts as registry

        s = _here("ctx.prompt()")
        driver = self._driver
        pins = self._driver.pins

        async def resolve() -> JSON:
            found = await registry.Prompts(driver.store, clock=driver.clock).resolve(
                name, run_id=self.run_id, label=label, version=version, pins=pins
            )
            return found.to_json()

        return registry.Prompt.from_json(await driver.record_async(s.next(), f"prompt:{name}", resolve))

    async def _record_policy(self, name: str, produce: Callable[[], Awaitable[JSON]] | None) -> JSON:
        """A policy verdict (``podium.policies``), journaled as a value like ``patched`` journals a marker:
        replay returns the recorded verdict even if the policies changed since; a position the run passed
        before any policy applied there stays an allow (None), taking no position; ``produce`` None: no
        policy applies now. Evaluated without a record inside a step's body."""
        s = _scope.get()
        if s is None or s.in_step or _current_task() is not s.task:
            return None if produce is None else await produce()
        sid = s.prefix + str(s.n)
        held = self._driver.held(sid)
        if held is not None and held != ("value", name):
            return None  # the run passed this point before a policy applied to it: as then, allow
        if held is None and produce is None:
            return None
        s.n += 1
        return await self._driver.record_async(sid, name, produce or _nothing)

    # -- waiting ------------------------------------------------------------------------------
    async def sleep(self, duration: Duration) -> None:
        """A durable timer: the run may leave memory meanwhile and resumes when it falls due."""
        seconds = parse_duration(duration)
        s = _here("ctx.sleep()")
        await self._driver.sleep(s, s.next(), seconds)

    async def wait_for_signal(self, name: str) -> JSON:
        """Wait (durably, for as long as it takes) for a signal sent with ``Client.signal``; returns
        its payload. Signals that arrived earlier are consumed in order."""
        if not isinstance(name, str) or not name:
            raise UsageError("a signal needs a non-empty name")
        s = _here("ctx.wait_for_signal()")
        return await self._driver.wait_signal(s, s.next(), name)

    async def approval(self, name: str, *, payload: JSON = None) -> Approval:
        """Ask a human to approve ``payload``; wait durably for the decision.

        The reviewer may approve, reject, or approve an edited payload; the returned ``Approval`` is truthy
        when approved and carries the payload to act on.
        """
        if not isinstance(name, str) or not name:
            raise UsageError("an approval needs a non-empty name")
        s = _here("ctx.approval()")
        return await self._driver.approval(s, s.next(), name, payload)

    def milestone(self, name: str) -> Milestone:
        """Mark a state of the run: while the block runs, signals sent with ``milestone=name`` are
        accepted; before and after, they are refused with ``SignalRefusedError`` and nothing changes.

        ```python
        async with ctx.milestone("editable"):
            edits = await ctx.wait([ctx.wait_for_signal("edit"), ctx.sleep("1h")], n=1)
        ```
        """
        if not isinstance(name, str) or not name:
            raise UsageError("a milestone needs a non-empty name")
        s = _here("ctx.milestone()")
        return Milestone(self._driver, s, s.next(), name)

    def patched(self, change: str) -> bool:
        """Change a flow safely while runs are in flight: True for runs that reach this point under the
        new code (a marker is journaled), False for runs whose journal shows they passed it before.

        ```python
        if ctx.patched("fraud-check"):
            await check_fraud(order)          # new runs (and in-flight runs that had not got here yet)
        await charge(order)                   # runs already past this point replay as before
        ```
        Keep the ``if`` until no run started before the change is in flight (``podium replay --all``
        tells you when old journals still replay).
        """
        if not isinstance(change, str) or not change:
            raise UsageError("ctx.patched needs a non-empty change id")
        s = _here("ctx.patched()")
        return self._driver.patched(s, change)

    def continue_as_new(self, input: Any = None) -> NoReturn:
        """End this run's current journal and start the flow again, in the same run, with ``input``.

        For endless loops (a monitor, a poller): the journal stays small however long the run lives.
        Signals not yet received carry over; work started with ``ctx.start`` is cancelled.
        """
        _here("ctx.continue_as_new()")
        raise ContinueAsNew(input)

    @property
    def cost(self) -> float:
        """Dollars this run has spent on model calls so far."""
        return self._driver.spent

    # -- models -------------------------------------------------------------------------------
    def model(self, name: str = "default") -> ModelHandle:
        """A named model (see ``podium.toml``); every call on it is a journaled step. A run pin
        ``model:NAME`` (see ``pins``) swaps in another configured model.

        ```python
        label = await ctx.model("fast").classify(text, labels=["refund", "bug", "question"])
        reply = await ctx.model("smart").generate(prompt, system="Be brief.", output=Reply)
        ```
        """
        from ..models.handle import ModelHandle

        name = self._driver.pins.get(f"model:{name}", name)
        return ModelHandle(self, self._driver.models, name, self._driver.cache)

    def token_stream(self) -> TokenStream | None:
        """The running step's live text stream (``ModelHandle.stream`` publishes to it); None outside a
        step. Readers follow it with ``client.tokens`` or ``GET /api/runs/{id}/tokens``."""
        s: Scope | None = _scope.get()
        if s is None or not s.in_step:
            return None
        return self._driver.token_stream(s.step_id)

    async def embed(self, texts: str | list[str], *, model: str = "embed", query: bool = False) -> Any:
        """Embedding vector(s) of ``texts`` (a vector for a string, a list for a list), as one step.
        ``query=True`` embeds search queries (e5 models embed queries and passages differently)."""
        from ..models.handle import embed

        return await embed(self, self._driver.models, texts, model=model, query=query)

    async def retrieve(
        self,
        query: str,
        *,
        collection: str,
        k: int = 5,
        filters: dict[str, Any] | None = None,
        mode: str = "hybrid",
        rerank: Any = None,
    ) -> list[Any]:
        """The ``k`` chunks of ``collection`` most relevant to ``query`` (BM25 and vectors fused by
        reciprocal rank; ``mode="vector"`` or ``"text"`` for one of them), as one journaled step whose
        result (chunk ids, scores, sources) is the audit trail. ``rerank``: a ``(query, texts) -> scores``
        callable or an embedding model's name, run as a second step. Returns ``podium.memory.Hit``s."""
        from ..memory.retrieval import retrieve
        from ..policies.taint import untrusted

        hits = await retrieve(
            self, query, collection=collection, k=k, filters=filters, mode=mode, rerank=rerank
        )
        for h in hits:  # retrieved text is untrusted: a model call fences it (podium.policies.untrusted)
            h.text = untrusted(h.text, source=f"retrieval:{h.id}")
        return hits

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
        return await self._driver.child(s, s.next(), target, input)  # type: ignore[no-any-return]

    async def first(self, *aws: Awaitable[Any], cancel_rest: bool = True) -> Any:
        """The result of whichever awaitable completes first; the others are cancelled (journaled, and
        their completed steps compensated), or left to finish unobserved with ``cancel_rest=False``.

        The winner is journaled: a replay takes the same branch. A failure does not win: if every
        awaitable fails, the first failure is raised. Deferred choice, durable across restarts:

        ```python
        got = await ctx.wait([ctx.wait_for_signal("approve"), ctx.sleep("48h")], n=1)
        if got.indices[0] == 1:      # 48 hours passed first (also if no worker was up at the time)
            await escalate()
        ```
        """
        items = check_awaitables("ctx.first", aws)
        if not items:
            raise UsageError("ctx.first needs at least one awaitable")
        s = _here("ctx.first()")
        done = await self._race(s, items, 1, cancel_rest, "first")
        return done[0]

    async def wait(
        self, aws: Iterable[Awaitable[Any]], *, n: int | None = None, cancel_rest: bool = True
    ) -> Finished:
        """Wait until ``n`` of ``aws`` complete (all by default); their results in completion order.

        ``result.indices`` says which awaitable each result came from. The rest are cancelled (or, with
        ``cancel_rest=False``, left to finish unobserved). Failures do not count towards ``n``; when too
        many fail for ``n`` to be reached, the first failure is raised. Works on any mix of steps, child
        flows, signal waits, approvals and timers; which ones completed is journaled, never recomputed.
        """
        items = check_awaitables("ctx.wait", aws)
        if n is None:
            n = len(items)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > len(items):
            for a in items:
                _close(a)
            raise UsageError(f"n must be an integer from 0 to {len(items)} (the number of awaitables)")
        s = _here("ctx.wait()")
        if n == 0:
            for a in items:
                _close(a)
            s.next()
            return Finished([], [])
        return await self._race(s, items, n, cancel_rest, "wait")

    def start(self, aw: Awaitable[T]) -> TaskHandle[T]:
        """Start ``aw`` (a step call, child flow, wait or helper coroutine) and go on; returns a handle
        to ``await``, ``cancel()`` or ask ``done()``. The run does not end before the work ends."""
        (aw,) = check_awaitables("ctx.start", [aw])
        s = _here("ctx.start()")
        b = self._start(s, aw)
        self._driver.add_detached(b)
        return TaskHandle(self, b)

    def group(self) -> Group:
        """A task group: ``async with ctx.group() as g: g.start(...)`` adds work while other work runs;
        the block waits for all of it at exit. If one fails, the rest (and the block) are cancelled,
        their compensations run, and the first failure is raised (like ``asyncio.TaskGroup``, but the
        error itself rather than an ``ExceptionGroup``)."""
        s = _here("ctx.group()")
        return Group(self, s, s.next())

    def scope(self) -> CancelScope:
        """A cancel scope: ``s.cancel()`` cancels everything started inside it (steps, child flows,
        timers, waits, started tasks); compensations of its completed steps run; the block then ends
        quietly. The cancellation is journaled, so a replay cancels the same region.

        ```python
        async with ctx.scope() as region:
            ctx.start(guard(region))         # a guardrail that may call region.cancel()
            draft = await write_draft(topic)
        if region.cancelled: ...
        ```
        """
        s = _here("ctx.scope()")
        return CancelScope(self, s, s.next())

    # -- branch machinery ---------------------------------------------------------------------
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


class CancelScope:
    """``async with ctx.scope() as s``: see ``Context.scope``."""

    def __init__(self, ctx: Context, scope: Scope, sid: str) -> None:
        self._ctx = ctx
        self._scope = scope
        driver = ctx._driver
        self._region = Region(sid, scope.region, driver.region_doomed(sid))
        self._region.cancelled = self._region.doomed and not scope.region.doomed
        self._saved: Region | None = None
        self._cancelled_task = False

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
        s = self._scope
        if asyncio.current_task() is not s.task:
            raise UsageError("enter ctx.scope() in the branch that created it")
        self._saved = s.region
        s.region = self._region
        self._region.owner = s.task
        self._region.inside = True
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
        if r.cancelled or isinstance(exc, Exception):
            await self._ctx._driver.compensate(r)
        else:
            self._saved.undo.extend(r.undo)
            r.undo = []
        return ours


class Group:
    """``async with ctx.group() as g``: see ``Context.group``."""

    def __init__(self, ctx: Context, scope: Scope, sid: str) -> None:
        self._ctx = ctx
        self._scope = scope
        driver = ctx._driver
        self._region = Region(sid, scope.region, driver.region_doomed(sid))
        self._region.cancelled = self._region.doomed and not scope.region.doomed
        self._saved: Region | None = None
        self._branches: list[Branch] = []
        self._error: BaseException | None = None
        self._cancelled_task = False
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
        s = self._scope
        if asyncio.current_task() is not s.task:
            raise UsageError("enter ctx.group() in the branch that created it")
        self._saved = s.region
        s.region = self._region
        self._region.owner = s.task
        self._region.inside = True
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
        if self._error is not None or isinstance(exc, Exception):
            await driver.compensate(r)
        else:
            self._saved.undo.extend(r.undo)
            r.undo = []
        if self._error is not None and (ours or exc is None or exc is self._error):
            raise self._error
        return False
