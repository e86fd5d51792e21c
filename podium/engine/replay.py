"""Replay a recorded journal against the current code, running nothing: the safety check before a deploy.

Every effect must come from the journal; code that asks for anything else is a ``NondeterminismError``
naming the position, what the journal holds and what the code asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import NondeterminismError
from ..storage.base import Event, RunRecord, Store
from ..types import JSON, RunStatus
from ..workflow.flow import Flow
from .execution import Execution
from .worker import Worker


@dataclass(frozen=True, slots=True)
class Replayed:
    """What the current code did with a recorded journal."""

    status: str  # "completed" | "failed" | "cancelled" | "stopped" (it stopped short, e.g. at a wait)
    output: JSON = None
    error: dict[str, Any] | None = None
    nondeterminism: NondeterminismError | None = None


async def replay_events(flow: Flow[Any, Any], events: list[Event], store: Store) -> Replayed:
    """Replay ``flow`` against ``events`` (a run's journal, in order) on ``store``, a throwaway store that
    keeps results in JSON form (``runtime.scratch_store()``)."""
    run_id = events[0].run_id if events else "replay"
    start = next((e for e in events if e.kind == "start"), None)
    if start is None:
        raise ValueError("the journal has no 'start' event")
    inbox = [e for e in events if e.kind not in ("start", "end")]
    worker = Worker(
        store, Settings(database_url="memory://", hold_seconds=0), flows=[flow.name], replay_only=True
    )
    now = time.time()
    run = RunRecord(
        id=run_id,
        flow=flow.name,
        status=RunStatus.RUNNING,
        input=(start.data or {}).get("input"),
        created_at=now,
        updated_at=now,
        lease_owner=worker.owner,
        lease_until=now + 3600,
        claims=1,
        queue=flow.queue,
    )
    await store.create_run(run, Event(run_id, "start", "", flow.name, start.data, now))
    ex = Execution(worker, run, flow, [*await store.load_events(run_id), *inbox])
    outcome = await ex.execute()
    rec = await store.get_run(run_id)
    assert rec is not None
    if ex.nondeterminism is not None:
        return Replayed("failed", error=ex.nondeterminism.to_dict(), nondeterminism=ex.nondeterminism)
    if outcome in ("completed", "failed", "cancelled"):
        return Replayed(outcome, rec.output, rec.error)
    return Replayed("stopped")
