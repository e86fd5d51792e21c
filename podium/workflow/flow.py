"""``@podium.flow``: register an async function ``(ctx, input) -> output`` as a durable flow."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from pydantic_core import ValidationError

from ..errors import InvalidInputError, UnknownFlowError, UsageError

if TYPE_CHECKING:  # pydantic itself loads on first use: `import podium` stays quick
    from pydantic import TypeAdapter
from ..types import Duration, check_queue_name, parse_duration

I = TypeVar("I")
O = TypeVar("O")

_REGISTRY: dict[str, Flow[Any, Any]] = {}


class Flow(Generic[I, O]):
    """A registered flow. Call ``podium.run(flow, input)`` or ``client.start(flow, input)`` to run it."""

    def __init__(
        self,
        fn: Callable[..., Awaitable[O]],
        *,
        name: str,
        timeout: float | None,
        budget: float | None = None,
        daily_budget: float | None = None,
        concurrency: int | None = None,
        retention: float | None = None,
        queue: str = "default",
    ) -> None:
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.budget = budget
        self.daily_budget = daily_budget
        self.concurrency = concurrency
        """At most this many runs of the flow execute at once, across all workers (None: no limit)."""
        self.retention = retention
        """Seconds after a run ends before its payloads may be deleted (None: ``[storage] retention``)."""
        self.queue = queue
        """The queue its runs belong to: workers may serve only some queues, and a queue may be capped
        (``[queues]`` in ``podium.toml``)."""
        params = list(inspect.signature(fn).parameters.values())
        if (
            not params
            or len(params) > 2
            or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        ):
            raise UsageError(
                f"flow {name!r} must be `async def {fn.__name__}(ctx, input)` "
                f"or `async def {fn.__name__}(ctx)`"
            )
        self.takes_input = len(params) == 2
        self._input_param = params[1] if self.takes_input else None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @cached_property
    def version(self) -> str:
        """A hash of the code of the module that defines the flow (its steps included, when they live
        there). Journaled with every run's start, so a run shows which code it started with."""
        import hashlib

        try:
            module = inspect.getmodule(self.fn)
            source = inspect.getsource(module) if module is not None else inspect.getsource(self.fn)
        except (OSError, TypeError):
            source = getattr(self.fn, "__qualname__", self.name)
        return hashlib.sha256(source.encode()).hexdigest()[:12]

    @cached_property
    def _hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.fn)
        except Exception:
            return {}

    @cached_property
    def _input_hint(self) -> Any:
        return None if self._input_param is None else self._hints.get(self._input_param.name, Any)

    @cached_property
    def input_adapter(self) -> TypeAdapter[Any] | None:
        if self._input_param is None:
            return None
        from pydantic import TypeAdapter

        return TypeAdapter(self._input_hint)

    @cached_property
    def output_adapter(self) -> TypeAdapter[Any]:
        from pydantic import TypeAdapter

        return TypeAdapter(self._hints.get("return", Any))

    def validate_input(self, value: Any) -> Any:
        """The input as the flow receives it; raises ``InvalidInputError`` if it does not fit."""
        if self._input_param is None:
            if value is not None:
                raise InvalidInputError(f"flow {self.name!r} takes no input, got {value!r}")
            return None
        if _plain(self._input_hint, value):
            return value
        assert self.input_adapter is not None
        try:
            return self.input_adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidInputError(f"invalid input for flow {self.name!r}: {_short(exc)}") from None

    def dump_input(self, value: Any) -> Any:
        """The validated input in JSON form, as stored."""
        if self._input_param is None:
            return None
        if _plain(self._input_hint, value):
            return value
        assert self.input_adapter is not None
        return self.input_adapter.dump_python(value, mode="json")

    def load_output(self, value: Any) -> Any:
        """A stored (JSON) output as the flow's annotated return type."""
        if _plain(self._hints.get("return", Any), value):
            return value
        return self.output_adapter.validate_python(value)

    def dump_output(self, value: Any) -> Any:
        """The flow's output in JSON form, as stored."""
        if _plain(self._hints.get("return", Any), value):
            return value
        return self.output_adapter.dump_python(value, mode="json")

    def __repr__(self) -> str:
        return f"<podium flow {self.name}>"


def _plain(hint: Any, value: Any) -> bool:
    """True when ``value`` already is what ``hint`` asks for and is plain JSON (no pydantic needed: the
    common case of ints and strings skips building a validator, which costs milliseconds on first use)."""
    if hint is Any:
        return value is None or type(value) in (int, str, float, bool)
    return type(value) is hint and hint in (int, str, float, bool)


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"]) or "input"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


@overload
def flow(fn: Callable[..., Awaitable[O]], /) -> Flow[Any, O]: ...
@overload
def flow(
    *,
    name: str | None = None,
    timeout: Duration | None = None,
    budget: float | None = None,
    daily_budget: float | None = None,
    concurrency: int | None = None,
    retention: Duration | None = None,
    queue: str = "default",
) -> Callable[[Callable[..., Awaitable[O]]], Flow[Any, O]]: ...


def flow(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: Duration | None = None,
    budget: float | None = None,
    daily_budget: float | None = None,
    concurrency: int | None = None,
    retention: Duration | None = None,
    queue: str = "default",
) -> Any:
    """Register an async function as a durable flow.

    ```python
    @podium.flow
    async def triage(ctx: podium.Context, ticket: Ticket) -> Triage: ...

    @podium.flow(name="checkout.v2", timeout="1h")     # run-level timeout
    @podium.flow(budget=2.0, daily_budget=100.0)       # $2 per run, $100 a day for this flow
    @podium.flow(concurrency=3)                        # at most 3 runs at once, across all workers
    @podium.flow(retention="30d")                      # drop finished runs' payloads after 30 days
    @podium.flow(queue="gpu")                          # its runs go to queue "gpu" (default: "default")
    async def checkout(ctx: podium.Context, order: Order) -> Receipt: ...
    ```
    The input and output may be pydantic models or any JSON values; both are validated.
    """

    def wrap(f: Callable[..., Awaitable[Any]]) -> Flow[Any, Any]:
        if not inspect.iscoroutinefunction(f):
            raise UsageError(f"@podium.flow needs an `async def` function, not {f!r}")
        seconds = None if timeout is None else parse_duration(timeout)
        keep = None if retention is None else parse_duration(retention)
        if keep is not None and keep <= 0:
            raise UsageError(f"retention must be a positive duration, not {retention!r}")
        for what, value in (("budget", budget), ("daily_budget", daily_budget)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise UsageError(f"{what} must be a non-negative number of dollars, not {value!r}")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise UsageError(f"concurrency must be a positive integer, not {concurrency!r}")
        check_queue_name(queue)
        fl: Flow[Any, Any] = Flow(
            f,
            name=name or f.__name__,
            timeout=seconds,
            budget=budget,
            daily_budget=daily_budget,
            concurrency=concurrency,
            retention=keep,
            queue=queue,
        )
        register(fl)
        return fl

    return wrap(fn) if fn is not None else wrap


def register(fl: Flow[Any, Any]) -> None:
    """Add a flow to the process-wide registry (``@podium.flow`` does this)."""
    old = _REGISTRY.get(fl.name)
    if old is not None and old.fn is not fl.fn:
        same_place = (old.fn.__module__, old.fn.__qualname__) == (fl.fn.__module__, fl.fn.__qualname__)
        if not same_place:
            raise UsageError(
                f"a flow named {fl.name!r} is registered already "
                f"({old.fn.__module__}.{old.fn.__qualname__}); "
                "give one of them another name with @podium.flow(name=...)"
            )
    _REGISTRY[fl.name] = fl


def registered() -> dict[str, Flow[Any, Any]]:
    """The flows this process knows, by name."""
    return _REGISTRY


def resolve_flow(flow: Flow[Any, Any] | str) -> Flow[Any, Any]:
    """A ``Flow`` from a flow or a registered name; ``UnknownFlowError`` otherwise."""
    if isinstance(flow, Flow):
        return flow
    if isinstance(flow, str):
        found = _REGISTRY.get(flow)
        if found is None:
            known = ", ".join(sorted(_REGISTRY)) or "none"
            raise UnknownFlowError(f"unknown flow {flow!r} (registered here: {known})")
        return found
    raise UsageError(f"expected a flow or a flow name, got {flow!r}")
