"""Schedules in SQLite (the ``SQLiteStore`` part of them): cron schedules and their claimed fires."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from .base import ScheduleFire, SchedulePlan, ScheduleRecord
from .sqlite_rows import _SCHEDULE_COLS, _dump, _load, _schedule


class SQLiteSchedules:
    """The schedule methods of ``SQLiteStore``."""

    if TYPE_CHECKING:

        @property
        def db(self) -> sqlite3.Connection: ...

        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    async def schedule_put(self, schedule: ScheduleRecord) -> ScheduleRecord:
        s = schedule
        with self._tx() as db:
            row = db.execute(
                f"INSERT INTO schedules ({_SCHEDULE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
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
                    int(s.paused),
                    s.next_at,
                    s.last_at,
                    s.created_at,
                    s.updated_at,
                    s.tenant,
                ),
            ).fetchone()
        return _schedule(row)

    async def schedule_get(self, name: str) -> ScheduleRecord | None:
        row = self.db.execute(f"SELECT {_SCHEDULE_COLS} FROM schedules WHERE name = ?", (name,)).fetchone()
        return None if row is None else _schedule(row)

    async def schedule_list(self) -> list[ScheduleRecord]:
        rows = self.db.execute(f"SELECT {_SCHEDULE_COLS} FROM schedules ORDER BY name")
        return [_schedule(r) for r in rows]

    async def schedule_delete(self, name: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM schedule_fires WHERE name = ?", (name,))
            return db.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount > 0

    async def schedule_set_paused(
        self, name: str, paused: bool, *, now: float, next_at: float | None = None
    ) -> ScheduleRecord | None:
        with self._tx() as db:
            row = db.execute(
                "UPDATE schedules SET paused = ?, next_at = COALESCE(?, next_at), updated_at = ? "
                f"WHERE name = ? RETURNING {_SCHEDULE_COLS}",
                (int(paused), next_at, now, name),
            ).fetchone()
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
        marks = ",".join("?" * len(names))
        out: list[ScheduleFire] = []
        with self._tx() as db:
            rows = db.execute(
                "UPDATE schedule_fires SET owner = ?, lease_until = ? WHERE rowid IN (SELECT rowid FROM "
                f"schedule_fires WHERE lease_until < ? AND flow IN ({marks}) ORDER BY at LIMIT ?) "
                "RETURNING name, flow, input, at, tenant",
                (owner, lease_until, now, *names, limit),
            ).fetchall()
            out.extend(ScheduleFire(r[0], r[1], _load(r[2]), r[3], r[4]) for r in rows)
            due = db.execute(
                f"SELECT {_SCHEDULE_COLS} FROM schedules WHERE paused = 0 AND next_at <= ? "
                f"AND flow IN ({marks}) ORDER BY next_at LIMIT ?",
                (now, *names, limit),
            ).fetchall()
            for row in due:
                s = _schedule(row)
                times, next_at = plan(s, now)
                last = max(times) if times else None
                advanced = db.execute(  # compare-and-set: only if no one advanced it since we read it
                    "UPDATE schedules SET next_at = ?, last_at = COALESCE(?, last_at), updated_at = ? "
                    "WHERE name = ? AND next_at = ? AND paused = 0",
                    (next_at, last, now, s.name, s.next_at),
                ).rowcount
                if not advanced or not times:
                    continue
                fires = [ScheduleFire(s.name, s.flow, s.input, t, s.tenant) for t in times]
                db.executemany(
                    "INSERT OR IGNORE INTO schedule_fires "
                    "(name, at, flow, input, owner, lease_until, tenant) VALUES (?,?,?,?,?,?,?)",
                    [(f.name, f.at, f.flow, _dump(f.input), owner, lease_until, f.tenant) for f in fires],
                )
                out.extend(fires)
        return out

    async def schedule_fired(self, fires: Sequence[ScheduleFire]) -> None:
        if not fires:
            return
        with self._tx() as db:
            db.executemany(
                "DELETE FROM schedule_fires WHERE name = ? AND at = ?", [(f.name, f.at) for f in fires]
            )

    async def schedule_next_at(self, flows: Collection[str]) -> float | None:
        if not flows:
            return None
        names = list(flows)
        marks = ",".join("?" * len(names))
        row = self.db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(next_at) AS t FROM schedules "
            f"WHERE paused = 0 AND flow IN ({marks}) "
            f"UNION ALL SELECT MIN(lease_until) FROM schedule_fires WHERE flow IN ({marks}))",
            (*names, *names),
        ).fetchone()
        return None if row is None else row[0]
