"""Retention: release the payloads of finished runs after a flow's retention period.

The most specific setting wins: a flow's own ``@podium.flow(retention="30d")``, then its run's tenant's
``[tenants.NAME] retention``, then ``[storage] retention`` in ``podium.toml``; a run with none keeps its
payloads. Only payloads go: each run's skeleton (its row, its
journal's steps, timings, statuses, references with their sizes) stays for audit. A payload that an unfinished
run (or the parent waiting on a finished child) references is never deleted (``Store.collect_payloads``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..storage.base import Store
from ..storage.payloads import Collected


async def collect_garbage(
    store: Store,
    *,
    now: float,
    retention: Mapping[str, float | None],
    default: float | None = None,
    only_known: bool = False,
    tenants: Mapping[str, float] | None = None,
) -> Collected:
    """Apply retention once. ``retention``: the flows known here and their own periods (seconds; None: the
    default). ``tenants``: tenants with their own period (``[tenants.NAME] retention``), which applies to
    their runs of flows without their own period, instead of ``default``. ``default`` applies to known flows
    without their own period and, unless ``only_known``, to every other flow in the store. ``older_than``
    style (everything): pass ``retention={}`` and ``default``."""
    total = Collected()
    own = {name: seconds for name, seconds in retention.items() if seconds is not None}
    inherit = sorted(name for name, seconds in retention.items() if seconds is None)
    by_period: dict[float, list[str]] = {}
    for name, seconds in own.items():
        by_period.setdefault(seconds, []).append(name)
    for period, names in sorted(by_period.items()):
        _add(total, await store.collect_payloads(ended_before=now - period, flows=sorted(names)))
    # The flows the defaults (a tenant's, then [storage]'s) cover: known ones without their own period
    # (only_known), or every flow but those with their own.
    scope: dict[str, Any] = {"flows": inherit} if only_known else {"exclude": sorted(own)}
    if only_known and not inherit:
        return total
    special = dict(tenants or {})
    for tenant, period in sorted(special.items()):
        _add(total, await store.collect_payloads(ended_before=now - period, tenants=[tenant], **scope))
    if default is not None:
        others = sorted(special)
        rest = await store.collect_payloads(ended_before=now - default, exclude_tenants=others, **scope)
        _add(total, rest)
    return total


def _add(total: Collected, part: Collected) -> None:
    total.runs += part.runs
    total.payloads += part.payloads
    total.bytes += part.bytes
