"""What a running flow stands on: the ``Driver`` the engine provides (implemented in ``podium.engine``),
the ``Scope`` that hands out one task's journal positions, and the values that cross between them
(``Approval``, ``ContinueAsNew``). All are importable from ``podium.workflow.context``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UsageError
from ..types import JSON
from .branches import Branch, Region
from .step import StepOptions, _scope

if TYPE_CHECKING:
    from .flow import Flow


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
