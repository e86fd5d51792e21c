"""Cost and latency per flow and per model over time (``GET /api/stats``), computed through the ``Client``.

Runs are bucketed by when they were created, model calls by when they started; buckets are UTC hours or
days. A run's latency is ``ended_at - created_at`` (finished runs only, waits for people included); a model
call's latency is the one its completion reports. Costs are the dollars the model calls journaled (cache
hits cost nothing). Only the newest ``limit`` runs since ``since`` are read; ``truncated`` says when more
existed.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..acting import ActingClient
from ..client import Client
from ..errors import RunNotFoundError, UsageError
from ..records import Run
from ..types import parse_duration

BUCKETS = {"hour": 3600.0, "day": 86400.0}
DEFAULT_RANGE = {"hour": 24 * 3600.0, "day": 30 * 86400.0}
MAX_BUCKETS = 1000
PAGE = 1000


@dataclass(slots=True)
class _FlowCell:
    runs: int = 0
    completed: int = 0
    failed: int = 0
    cost: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def point(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "runs": self.runs,
            "completed": self.completed,
            "failed": self.failed,
            "cost": self.cost,
            "latency_avg": statistics.fmean(lat) if lat else None,
            "latency_p50": statistics.median(lat) if lat else None,
            "latency_max": max(lat) if lat else None,
        }


@dataclass(slots=True)
class _ModelCell:
    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def point(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "calls": self.calls,
            "cached": self.cached,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "latency_avg": statistics.fmean(lat) if lat else None,
            "latency_max": max(lat) if lat else None,
        }


def parse_since(value: str | None, bucket: str, now: float) -> float:
    """``since`` as seconds since the epoch: a number (epoch seconds), an ISO 8601 time (UTC unless it
    names a zone) or a duration ago (``"24h"``, ``"7d"``); None means a day of hours or 30 days."""
    if value is None or not value.strip():
        return now - DEFAULT_RANGE[bucket]
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    try:
        return now - parse_duration(text)
    except UsageError:
        raise UsageError(
            f"since must be epoch seconds, an ISO 8601 time or a duration ago like '24h' or '7d', "
            f"not {value!r}"
        ) from None


async def compute_stats(
    client: Client | ActingClient,
    *,
    bucket: str = "hour",
    since: str | None = None,
    flow: str | None = None,
    limit: int = 2000,
    now: float | None = None,
) -> dict[str, Any]:
    """Per-bucket cost and latency series per flow and per model (see the module's docstring)."""
    if bucket not in BUCKETS:
        raise UsageError(f"bucket must be 'hour' or 'day', not {bucket!r}")
    size = BUCKETS[bucket]
    until = time.time() if now is None else now
    start = parse_since(since, bucket, until)
    if not math.isfinite(start) or start >= until:
        raise UsageError("since must be in the past")
    first = math.floor(start / size) * size
    count = math.floor(until / size) - math.floor(start / size) + 1
    if count > MAX_BUCKETS:
        raise UsageError(
            f"that is {count} {bucket}s; at most {MAX_BUCKETS} buckets: use a later since or bucket=day"
        )

    def slot(ts: float) -> float:
        return math.floor(ts / size) * size

    runs: list[Run] = []
    truncated = False
    before: str | None = None
    while not truncated:
        page = await client.list(flow=flow, limit=PAGE, before=before)
        for run in page:
            if run.created_at < start:
                break
            if len(runs) == limit:
                truncated = True
                break
            runs.append(run)
        else:
            if len(page) == PAGE:
                before = page[-1].id
                continue
        break

    flows: dict[str, dict[float, _FlowCell]] = {}
    models: dict[str, dict[float, _ModelCell]] = {}
    for run in runs:
        try:
            rows = await client.timeline(run.id)
        except RunNotFoundError:
            continue
        cell = flows.setdefault(run.flow, {}).setdefault(slot(run.created_at), _FlowCell())
        cell.runs += 1
        cell.completed += run.status.value == "completed"
        cell.failed += run.status.value == "failed"
        if run.ended_at is not None and run.status.value in ("completed", "failed"):
            cell.latencies.append(max(0.0, run.ended_at - run.created_at))
        for row in rows:
            if row.kind != "step" or row.status != "ok" or not row.name.startswith(("model:", "embed:")):
                continue
            d = row.detail if isinstance(row.detail, dict) else {}
            cost = float(d.get("cost") or 0.0)
            cell.cost += cost
            name = str(d.get("served_by") or d.get("model") or row.name.partition(":")[2])
            at = row.started if row.started is not None else run.created_at
            mc = models.setdefault(name, {}).setdefault(slot(at), _ModelCell())
            raw = d.get("usage")
            usage: dict[str, Any] = raw if isinstance(raw, dict) else {}
            mc.calls += 1
            mc.cached += bool(d.get("cached"))
            mc.input_tokens += int(usage.get("input_tokens") or 0)
            mc.output_tokens += int(usage.get("output_tokens") or 0)
            mc.cost += cost
            latency = d.get("latency")
            if isinstance(latency, int | float) and not d.get("cached"):
                mc.latencies.append(float(latency))
            elif row.duration is not None and not d.get("cached"):
                mc.latencies.append(row.duration)

    def series(cells: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        return {
            name: [{"t": t, **c.point()} for t, c in sorted(by_slot.items())]
            for name, by_slot in sorted(cells.items())
        }

    def total(cells: dict[float, Any], make: type[Any]) -> dict[str, Any]:
        out = make()
        for c in cells.values():
            for f in out.__slots__:
                setattr(out, f, getattr(out, f) + getattr(c, f))
        return dict(out.point())

    return {
        "bucket": bucket,
        "size": size,
        "since": start,
        "until": until,
        "buckets": [first + i * size for i in range(count)],
        "runs": len(runs),
        "truncated": truncated,
        "flows": series(flows),
        "models": series(models),
        "totals": {
            "flows": {n: total(c, _FlowCell) for n, c in sorted(flows.items())},
            "models": {n: total(c, _ModelCell) for n, c in sorted(models.items())},
        },
    }
