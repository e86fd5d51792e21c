"""Schedules in PostgreSQL (the ``PostgresStore`` part of them). Statement for statement the semantics of
``podium.storage.sqlite_schedules``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from .base import ScheduleFire, SchedulePlan, ScheduleRecord
from .sqlite_rows import _SCHEDULE_COLS, _dump, _load, _schedule

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")


class PostgresSchedules:
    """The schedule methods of ``PostgresStore``."""

    if TYPE_CHECKING:

        def _conn(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]: ...

        async def _retry(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T: ...

        async def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None: ...

        async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    async def schedule_put(self, schedule: ScheduleRecord) -> ScheduleRecord:
        s = schedule
        row = await self._one(
            f"INSERT INTO schedules ({_SCHEDULE_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (name) DO UPDATE SET flow = excluded.flow, cron = excluded.cron, "
            "tz = excluded.tz, input = excluded.input, missed = excluded.missed, "
            "paused = excluded.paused, next_at = excluded.next_at, last_at = excluded.last_at, "
            "updated_at = excluded.updated_at, tenant = excluded.tenant "
            f"RETURNING {_SCHEDULE_COLS}",
            (
                s.name,
                s.flow,
                s.cron,
                s.tz,
                _dump(s.input),
                s.missed,
                bool(s.paused),
                s.next_at,
                s.last_at,
                s.created_at,
                s.updated_at,
                s.tenant,
            ),
        )
        assert row is not None
        return _schedule(row)

    async def schedule_get(self, name: str) -> ScheduleRecord | None:
        row = await self._one(f"SELECT {_SCHEDULE_COLS} FROM schedules WHERE name = %s", (name,))
        return None if row is None else _schedule(row)

    async def schedule_list(self) -> list[ScheduleRecord]:
        return [
            _schedule(r) for r in await self._all(f"SELECT {_SCHEDULE_COLS} FROM schedules ORDER BY name")
        ]

    async def schedule_delete(self, name: str) -> bool:
        async with self._conn() as conn, conn.pipeline(), conn.transaction():
            await conn.execute("DELETE FROM schedule_fires WHERE name = %s", (name,))
            cur = await conn.execute("DELETE FROM schedules WHERE name = %s RETURNING 1", (name,))
            return await cur.fetchone() is not None

    async def schedule_set_paused(
        self, name: str, paused: bool, *, now: float, next_at: float | None = None
    ) -> ScheduleRecord | None:
        row = await self._one(
            "UPDATE schedules SET paused = %s, next_at = COALESCE(%s, next_at), updated_at = %s "
            f"WHERE name = %s RETURNING {_SCHEDULE_COLS}",
            (paused, next_at, now, name),
        )
        return None if row is None else _schedule(row)

    async def schedule_claim_due(
        self,
        owner: str,
        flows: Collection[str],
        *,
        now: float,
        lease_until: float,
        limit: int,
        plan: SchedulePlan,
    ) -> list[ScheduleFire]:
        if not flows:
            return []
        names = list(flows)

        async def tx(conn: psycopg.AsyncConnection[Any]) -> list[ScheduleFire]:
            out: list[ScheduleFire] = []
            async with conn.pipeline(), conn.transaction():
                expired = await conn.execute(
                    "UPDATE schedule_fires SET owner = %s, lease_until = %s WHERE (name, at) IN "
                    "(SELECT name, at FROM schedule_fires WHERE lease_until < %s AND flow = ANY(%s) "
                    "ORDER BY at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING name, flow, input, at, tenant",
                    (owner, lease_until, now, names, limit),
                )
                due_cur = await conn.execute(  # locked: a concurrent claimer skips these schedules
                    f"SELECT {_SCHEDULE_COLS} FROM schedules WHERE NOT paused AND next_at <= %s "
                    "AND flow = ANY(%s) ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED",
                    (now, names, limit),
                )
                rows = sorted(await expired.fetchall(), key=lambda r: r[3])
                out.extend(ScheduleFire(r[0], r[1], _load(r[2]), r[3], r[4]) for r in rows)
                planned: list[tuple[list[ScheduleFire], Any]] = []
                for row in await due_cur.fetchall():
                    s = _schedule(row)
                    times, next_at = plan(s, now)
                    last = max(times) if times else None
                    fires = [ScheduleFire(s.name, s.flow, s.input, t, s.tenant) for t in times]
                    cur = await conn.execute(  # compare-and-set, as in SQLite (the row lock makes it hold)
                        "WITH s AS (UPDATE schedules SET next_at = %(next)s, "
                        "last_at = COALESCE(%(last)s, last_at), updated_at = %(now)s "
                        "WHERE name = %(name)s AND next_at = %(old)s AND NOT paused RETURNING name), "
                        "f AS (INSERT INTO schedule_fires "
                        "(name, at, flow, input, owner, lease_until, tenant) "
                        "SELECT s.name, t.at, %(flow)s, %(input)s, %(owner)s, %(until)s, %(tenant)s "
                        "FROM s CROSS JOIN unnest(%(times)s::float8[]) AS t(at) ON CONFLICT DO NOTHING) "
                        "SELECT count(*) FROM s",
                        {
                            "next": next_at,
                            "last": last,
                            "now": now,
                            "name": s.name,
                            "old": s.next_at,
                            "flow": s.flow,
                            "input": _dump(s.input),
                            "owner": owner,
                            "until": lease_until,
                            "times": times,
                            "tenant": s.tenant,
                        },
                    )
                    planned.append((fires, cur))
                for fires, cur in planned:
                    advanced = await cur.fetchone()
                    if advanced is not None and advanced[0]:
                        out.extend(fires)
            return out

        return await self._retry(tx)

    async def schedule_fired(self, fires: Sequence[ScheduleFire]) -> None:
        if not fires:
            return
        async with self._conn() as conn:
            await conn.execute(
                "DELETE FROM schedule_fires f USING unnest(%s::text[], %s::float8[]) AS d(name, at) "
                "WHERE f.name = d.name AND f.at = d.at",
                ([f.name for f in fires], [f.at for f in fires]),
            )

    async def schedule_next_at(self, flows: Collection[str]) -> float | None:
        if not flows:
            return None
        names = list(flows)
        row = await self._one(
            "SELECT LEAST((SELECT MIN(next_at) FROM schedules WHERE NOT paused AND flow = ANY(%s)), "
            "(SELECT MIN(lease_until) FROM schedule_fires WHERE flow = ANY(%s)))",
            (names, names),
        )
        return None if row is None or row[0] is None else float(row[0])
