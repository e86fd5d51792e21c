"""``@podium.step``: functions whose calls inside a flow are journaled."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ..errors import UsageError
from ..types import Duration, parse_duration
from .retry import NO_RETRY, RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What a running step knows about itself. Get it with ``podium.current_step()``.

    ``idempotency_key`` is ``"<run id>/<step id>"``: stable across retries and crashes, so an external
    system (a payment API, an email service) can deduplicate the step's side effect.
    """

    run_id: str
    step_id: str
    name: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}/{self.step_id}"


# A step running as a Ray task (``executor="ray"``) runs in another process, outside any flow: its
# ``StepInfo`` is handed over and set here while it runs (``podium.engine.ray_executor``).
_remote: ContextVar[StepInfo | None] = ContextVar("podium_remote_step", default=None)

# The running flow branch's ``workflow.context.Scope`` (defined there; kept here so that
# ``current_step`` needs no import cycle). While a step runs, the scope knows which step it is.
_scope: ContextVar[Any] = ContextVar("podium_scope", default=None)


def current_step() -> StepInfo | None:
    """The ``StepInfo`` of the step running now, or ``None`` outside a step.

    ```python
    @podium.step
    async def charge(amount: float) -> str:
        key = podium.current_step().idempotency_key      # same on every retry and after a crash
        return payments.charge(amount, idempotency_key=key)
    ```
    """
    s = _scope.get()
    if s is None or not s.in_step:
        return _remote.get()
    return StepInfo(s.driver.run_id, s.step_id, s.step_name, s.attempt)


@dataclass(frozen=True, slots=True)
class RayOptions:
    """What a step run as a Ray task asks of the cluster (``@podium.step(executor="ray", ...)``): the
    ``num_cpus``, ``num_gpus``, ``memory`` (bytes) and custom ``resources`` of Ray's task options."""

    num_cpus: float = 1
    num_gpus: float = 0
    memory: int | None = None
    resources: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class StepOptions:
    """A step's name, retry policy, per-attempt timeout (seconds or None), compensation, and where it
    runs (``ray``: as a Ray task; None: in the worker)."""

    name: str
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    compensate: Compensation | None = None
    ray: RayOptions | None = None

    @property
    def priced(self) -> bool:
        """True for model and embedding calls, whose results carry a cost."""
        return self.name.startswith(("model:", "embed:"))


@dataclass(frozen=True, slots=True)
class Compensation:
    """How to undo a step (``@podium.step(compensate=undo)``): ``undo`` is called with the step's own
    arguments, plus ``result=`` (the step's result) when it declares a ``result`` parameter."""

    options: StepOptions
    fn: Callable[..., Any]
    is_async: bool
    wants_result: bool


def _compensation(step_name: str, undo: Any) -> Compensation:
    if isinstance(undo, StepFunction):
        options, fn = undo.options, undo.fn
    elif callable(undo):
        options, fn = StepOptions(name=f"undo:{step_name}"), undo
    else:
        raise UsageError(f"compensate must be a function or a @podium.step, not {undo!r}")
    try:
        wants = "result" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        wants = False
    return Compensation(options, fn, inspect.iscoroutinefunction(fn), wants)


def make_options(
    name: str,
    retries: int | RetryPolicy | None,
    timeout: Duration | None,
    compensate: Any = None,
    ray: RayOptions | None = None,
) -> StepOptions:
    if retries is None:
        policy = NO_RETRY
    elif isinstance(retries, RetryPolicy):
        policy = retries
    elif isinstance(retries, int) and not isinstance(retries, bool):
        policy = RetryPolicy.retries(retries)
    else:
        raise UsageError(f"retries must be an int or a RetryPolicy, not {retries!r}")
    seconds = None if timeout is None else parse_duration(timeout)
    if seconds is not None and seconds <= 0:
        raise UsageError("a step timeout must be positive")
    undo = None if compensate is None else _compensation(name, compensate)
    return StepOptions(name=name, retry=policy, timeout=seconds, compensate=undo, ray=ray)


EXECUTORS = ("local", "ray")


def ray_options(
    executor: str | None,
    num_cpus: float | None,
    num_gpus: float | None,
    memory: int | None,
    resources: dict[str, float] | None,
) -> RayOptions | None:
    """The ``RayOptions`` of ``@podium.step(executor="ray", ...)`` (None for a local step); ``UsageError``
    on a bad value."""
    if executor is None or executor == "local":
        if any(v is not None for v in (num_cpus, num_gpus, memory, resources)):
            raise UsageError('num_cpus, num_gpus, memory and resources need executor="ray"')
        return None
    if executor != "ray":
        raise UsageError(f"unknown step executor {executor!r}: use {' or '.join(map(repr, EXECUTORS))}")
    for what, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise UsageError(f"{what} must be a non-negative number, not {value!r}")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0):
        raise UsageError(f"memory must be a positive number of bytes, not {memory!r}")
    if resources is not None and (
        not isinstance(resources, dict)
        or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for k, v in resources.items()
        )
    ):
        raise UsageError(f"resources must map resource names to non-negative amounts, not {resources!r}")
    return RayOptions(
        num_cpus=1 if num_cpus is None else num_cpus,
        num_gpus=0 if num_gpus is None else num_gpus,
        memory=memory,
        resources=tuple(sorted((resources or {}).items())),
    )


class StepFunction(Generic[P, R]):
    """A function decorated with ``@podium.step``. Calling it returns an awaitable.

    Inside a flow the call is journaled (run once, replayed from the journal afterwards); outside a flow,
    or inside another step, it simply runs the function.
    """

    def __init__(self, fn: Callable[P, Any], options: StepOptions) -> None:
        self.fn = fn
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return _dispatch(self.options, self.fn, self.is_async, args, kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<podium step {self.options.name}>"


def _dispatch(
    options: StepOptions,
    fn: Callable[..., Any],
    is_async: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Replaced by ``context._step`` when ``podium.workflow.context`` is imported (it always is)."""
    from . import context

    return context._step(options, fn, is_async, args, kwargs)


@overload
def step(fn: Callable[P, Awaitable[R]], /) -> StepFunction[P, R]: ...
@overload
def step(fn: Callable[P, R], /) -> StepFunction[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    retries: int | RetryPolicy | None = None,
    timeout: Duration | None = None,
    compensate: Callable[..., Any] | None = None,
    executor: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: dict[str, float] | None = None,
) -> Callable[[Callable[P, Any]], StepFunction[P, Any]]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int | RetryPolicy | None = None,
    timeout: Duration | None = None,
    compensate: Callable[..., Any] | None = None,
    executor: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    resources: dict[str, float] | None = None,
) -> Any:
    """Declare a step: a unit of work whose result is journaled.

    ```python
    @podium.step(retries=3, timeout=30)
    async def charge(order_id: str, amount: float) -> str:
        key = podium.current_step().idempotency_key   # stable across retries and crashes
        ...
    ```
    Sync functions run in a thread pool. ``retries`` is a count of retries after the first attempt or a
    ``RetryPolicy``; ``timeout`` bounds each attempt. Results must be JSON-serializable (pydantic models,
    dataclasses, dates are fine); annotate the return type so replay rebuilds the same type.

    ``compensate`` makes the step part of a saga: when work it completed is rolled back (its
    ``ctx.scope()`` is cancelled or fails, it lost a ``ctx.first`` race, or the run fails or is
    cancelled), ``compensate`` runs as a journaled step, with the step's arguments (and ``result=`` if it
    takes one). Compensations run newest first.

    ```python
    @podium.step(compensate=cancel_booking)      # def cancel_booking(trip, result): ...
    async def book_hotel(trip: Trip) -> str: ...
    ```

    ``executor="ray"`` runs the function as a Ray task (``pip install podium[ray]``) that asks for
    ``num_cpus`` (default 1), ``num_gpus``, ``memory`` (bytes) and custom ``resources``; the function,
    its arguments and its result must be picklable, and its module importable on the Ray workers. The
    result is journaled like any step's; a Ray worker that dies mid-step is a retryable step error.

    ```python
    @podium.step(executor="ray", num_gpus=1, retries=2)
    def embed_batch(texts: list[str]) -> list[list[float]]: ...
    ```
    """
    remote = ray_options(executor, num_cpus, num_gpus, memory, resources)

    def wrap(f: Callable[..., Any]) -> StepFunction[Any, Any]:
        if not callable(f):
            raise UsageError(f"@podium.step needs a function, not {f!r}")
        return StepFunction(f, make_options(name or f.__name__, retries, timeout, compensate, remote))

    return wrap(fn) if fn is not None else wrap
