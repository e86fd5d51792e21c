"""What a webhook delivery or an event does: start a run of a flow, or signal a run named in its body.

Configured the same way for ``[hooks.NAME]`` and ``[events.NAME]`` in ``podium.toml``:

```toml
flow = "orders.py:fulfil"     # the flow to start (for "signal": the flow the signalled run must belong to)
action = "start"              # default; or "signal"
signal = "paid"               # "signal" only: the signal's name
run_field = "run_id"          # "signal" only: the body's field that holds the run id
tenant = "acme"               # optional: the tenant its runs start in (default "default"); a signal
                              # reaches only runs of that tenant
```
The body (a JSON value) is the run's input, or the signal's payload. The caller supplies a key derived from
the delivery's identity: the run's idempotency key for ``start``, the signal's deduplication key for
``signal``, so a delivery that arrives twice starts one run, or is received once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..client import Client, RunHandle
from ..errors import ConfigError, InvalidStateError, UsageError
from ..policies.access import DEFAULT_TENANT, check_tenant
from ..workflow.flow import Flow

FlowLoader = Callable[[str], Flow[Any, Any]]
"""``"module:flow"`` to the flow (``podium.cli.loader.load_flow`` imports the module)."""

ACTIONS = ("start", "signal")


@dataclass(frozen=True)
class Action:
    """Start a run of ``flow``, or send signal ``signal`` to the run whose id is the body's ``run_field``."""

    kind: str
    flow: Flow[Any, Any] | None
    signal: str | None = None
    run_field: str | None = None
    tenant: str = DEFAULT_TENANT
    """The tenant runs are started in, and the only one whose runs a signal reaches."""


class NotFound(UsageError):
    """The run a signal names does not exist (or belongs to another flow)."""


class BadDelivery(UsageError):
    """The delivery's body does not fit the action (no run id field, input the flow refuses, ...)."""


class Conflict(UsageError):
    """The delivery cannot be applied now (the signalled run finished; its key names another flow's run)."""


def parse_action(section: Mapping[str, Any], where: str, load: FlowLoader) -> Action:
    """An ``Action`` from one configuration table; ``ConfigError`` naming ``where`` if it is wrong."""
    kind = section.get("action", "start")
    if kind not in ACTIONS:
        raise ConfigError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {kind!r}")
    ref = section.get("flow")
    if ref is not None and not isinstance(ref, str):
        raise ConfigError(f"{where}: flow must be a string like 'module:flow'")
    if kind == "start" and not ref:
        raise ConfigError(f"{where}: a 'start' action needs flow = \"module:flow\"")
    tenant = section.get("tenant", DEFAULT_TENANT)
    try:
        check_tenant(tenant)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    flow = None
    if ref:
        try:
            flow = load(ref)
        except UsageError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if kind == "start":
        return Action("start", flow, tenant=tenant)
    signal, run_field = section.get("signal"), section.get("run_field")
    if not isinstance(signal, str) or not signal:
        raise ConfigError(f"{where}: a 'signal' action needs signal = \"NAME\"")
    if not isinstance(run_field, str) or not run_field:
        raise ConfigError(f"{where}: a 'signal' action needs run_field = \"FIELD\" (the body's run id field)")
    return Action("signal", flow, signal, run_field, tenant)


async def apply(client: Client, action: Action, body: Any, key: str) -> tuple[str, bool]:
    """Carry out ``action`` for a delivery whose JSON body is ``body``; ``(run_id, created)``.

    ``created`` is False when ``key`` had been used already (the same delivery, again). Raises
    ``BadDelivery``, ``NotFound`` or ``Conflict`` for deliveries that can never succeed.
    """
    if action.kind == "start":
        assert action.flow is not None
        try:
            handle: RunHandle[Any] = await client.start(action.flow, body, key=key, tenant=action.tenant)
        except InvalidStateError as exc:
            raise Conflict(str(exc)) from None
        except UsageError as exc:
            raise BadDelivery(str(exc)) from None
        return handle.id, handle.created
    assert action.signal is not None and action.run_field is not None
    run_id = body.get(action.run_field) if isinstance(body, dict) else None
    if not isinstance(run_id, str) or not run_id:
        raise BadDelivery(f"the body has no {action.run_field!r} field with a run id")
    try:
        run = await client.get(run_id)
    except UsageError:
        raise NotFound(f"no run with id {run_id!r}") from None
    if run.tenant != action.tenant:  # another tenant's run does not exist for this action
        raise NotFound(f"no run with id {run_id!r}")
    if action.flow is not None and run.flow != action.flow.name:
        raise NotFound(f"run {run_id} is not a run of flow {action.flow.name!r}")
    try:
        created = await client.signal(run_id, action.signal, body, key=key)
    except InvalidStateError as exc:
        # The run finished: if this very delivery's signal was what finished it, this is a retry.
        if any(e.kind == "signal" and e.position == f"k:{key}" for e in await client.journal(run_id)):
            return run_id, False
        raise Conflict(str(exc)) from None
    except UsageError as exc:
        raise BadDelivery(str(exc)) from None
    return run_id, created
