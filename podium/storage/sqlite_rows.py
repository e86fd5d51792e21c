"""Rows of the SQLite store as records, and back: the column lists and JSON codecs of runs, journal events
and schedules. The PostgreSQL store reads the same columns and shares them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..types import RunStatus
from .base import Event, RunRecord, ScheduleRecord

_RUN_COLS = (
    "id, flow, status, key, input, output, error, parent_id, parent_step, created_at, updated_at, "
    "ended_at, lease_owner, lease_until, wake_at, deadline, inbox_seq, claims, priority, queue, tenant, "
    "subject"
)
_EVENT_COLS = "seq, run_id, kind, step, name, data, at"


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        flow=row[1],
        status=RunStatus(row[2]),
        key=row[3],
        input=_load(row[4]),
        output=_load(row[5]),
        error=_load(row[6]),
        parent_id=row[7],
        parent_step=row[8],
        created_at=row[9],
        updated_at=row[10],
        ended_at=row[11],
        lease_owner=row[12],
        lease_until=row[13],
        wake_at=row[14],
        deadline=row[15],
        inbox_seq=row[16],
        claims=row[17],
        priority=row[18],
        queue=row[19],
        tenant=row[20],
        subject=row[21],
    )


def _event(row: Sequence[Any]) -> Event:
    return Event(
        seq=row[0], run_id=row[1], kind=row[2], step=row[3], name=row[4], data=_load(row[5]), at=row[6]
    )


_SCHEDULE_COLS = (
    "name, flow, cron, tz, input, missed, paused, next_at, last_at, created_at, updated_at, tenant"
)


def _schedule(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row[0],
        flow=row[1],
        cron=row[2],
        tz=row[3],
        input=_load(row[4]),
        missed=row[5],
        paused=bool(row[6]),
        next_at=float(row[7]),
        last_at=None if row[8] is None else float(row[8]),
        created_at=float(row[9]),
        updated_at=float(row[10]),
        tenant=str(row[11]),
    )
