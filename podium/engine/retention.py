"""Retention: release the payloads of finished runs after a flow's retention period.

A flow's own ``@podium.flow(retention="30d")`` wins; ``[storage] retention`` in ``podium.toml`` is the default
for the others; a flow with neither keeps its payloads. Only payloads go: each run's skeleton (its row, its
journal's steps, timings, statuses, references with their sizes) stays for audit. A payload that an unfinished
run (or the parent waiting on a finished child) references is never deleted (``Store.collect_payloads``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..storage.base import Store
from ..storage.payloads import Collected


async def collect_garbage(
    store: Store,
    *,
    now: float,
    retention: Mapping[str, float | None],
    default: float | None = None,
    only_known: bool = False,
) -> Collected:
    """Apply retention once. ``retention``: the flows known here and their own periods (seconds; None: the
    default). ``default`` applies to known flows without their own period and, unless ``only_known``, to every
    other flow in the store. ``older_than`` style (everything): pass ``retention={}`` and ``default``."""
    total = Collected()
    by_period: dict[float, list[str]] = {}
    for name, seconds in retention.items():
        period = seconds if seconds is not None else default
        if period is not None:
            by_period.setdefault(period, []).append(name)
    for period, names in sorted(by_period.items()):
        _add(total, await store.collect_payloads(ended_before=now - period, flows=sorted(names)))
    if default is not None and not only_known:
        own = sorted(name for name, seconds in retention.items() if seconds is not None)
        _add(total, await store.collect_payloads(ended_before=now - default, exclude=own))
    return total


def _add(total: Collected, part: Collected) -> None:
    total.runs += part.runs
    total.payloads += part.payloads
    total.bytes += part.bytes
