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
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..errors import UsageError
from ..types import JSON, Duration, parse_duration
from . import step as _step_module
from .blocks import CancelScope, Group, Milestone
from .branches import Finished, TaskHandle, check_awaitables
from .driver import Approval, ContinueAsNew, Driver, Scope, TokenStream, _here, enter_scope
from .races import _Branching, _close
from .step import StepFunction, StepOptions, _scope, make_options

__all__ = [
    "Approval",
    "CancelScope",
    "Context",
    "ContinueAsNew",
    "Driver",
    "Group",
    "Milestone",
    "Scope",
    "TokenStream",
    "enter_scope",
]

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


class Context(_Branching):
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
        self,
        driver: Driver,
        *,
        run_id: str,
        flow: str,
        attempt: int,
        tenant: str = "default",
        subject: str | None = None,
    ) -> None:
        self._driver = driver
        self.run_id = run_id
        """This run's id."""
        self.tenant = tenant
        """The tenant the run belongs to (``Client.start(tenant=)``, inherited by child runs). The memory
        layer (``Memory``, ``Thread``, ``ctx.retrieve``, ingestion) resolves names within it: in tenant
        ``acme`` the collection ``docs`` is stored as ``acme/docs`` (see ``podium.memory.names``)."""
        self.subject = subject
        """The data subject (a person) whose data the run holds (``Client.start(subject=)``), or None. Name
        the subject's memories and threads after it (``f"{ctx.subject}/prefs"``): ``Client.erase_subject``
        deletes them with the run's data. Model calls of such a run bypass the shared response cache."""
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
        ``label=``, then the prompt's A/B split (an arm picked from the run id), then ``production``. In a
        run of tenant ``acme``: acme's prompt ``name`` if acme has one, else the shared one.
        """
        if not isinstance(name, str) or not name:
            raise UsageError("ctx.prompt needs a prompt name")
        from ..management import prompts as registry

        s = _here("ctx.prompt()")
        driver = self._driver
        pins = self._driver.pins
        tenant = self.tenant

        async def resolve() -> JSON:
            found = await registry.Prompts(driver.store, clock=driver.clock, tenant=tenant).resolve(
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
