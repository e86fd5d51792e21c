"""Token streams' rows (``stream_chunks``, migration 0011) for SQLite and PostgreSQL.

A streaming step writes its text in chunks while it runs; readers (the REST API's token stream) follow them
by ``id``. Each execution of the step that streams is an *epoch*; the second and later epochs begin with a
reset row, so a reader that showed an earlier epoch's text knows to drop it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .base import StreamChunk

_COLS = 'id, run_id, step, epoch, "offset", text, at'
_TERMINAL = "('completed', 'failed', 'cancelled')"


def _chunk(row: Sequence[Any]) -> StreamChunk:
    return StreamChunk(
        id=int(row[0]),
        run_id=row[1],
        step=row[2],
        epoch=int(row[3]),
        offset=int(row[4]),
        text=row[5],
        at=float(row[6]),
    )


def sqlite_held(db: sqlite3.Connection, run_id: str, owner: str | None) -> bool:
    """No owner to check, or ``owner`` holds the running run's lease."""
    if owner is None:
        return True
    row = db.execute(
        "SELECT 1 FROM runs WHERE id = ? AND lease_owner = ? AND status = 'running'", (run_id, owner)
    ).fetchone()
    return row is not None


def sqlite_begin(db: sqlite3.Connection, run_id: str, step: str, now: float) -> int:
    row = db.execute(
        "SELECT max(epoch) FROM stream_chunks WHERE run_id = ? AND step = ?", (run_id, step)
    ).fetchone()
    if row is None or row[0] is None:
        return 1
    epoch = int(row[0]) + 1
    db.execute(
        f"INSERT INTO stream_chunks ({_COLS}) VALUES (NULL, ?, ?, ?, 0, NULL, ?)", (run_id, step, epoch, now)
    )
    return epoch


def sqlite_append(
    db: sqlite3.Connection, run_id: str, step: str, epoch: int, offset: int, text: str, now: float
) -> None:
    db.execute(
        f"INSERT INTO stream_chunks ({_COLS}) VALUES (NULL, ?, ?, ?, ?, ?, ?)",
        (run_id, step, epoch, offset, text, now),
    )


def sqlite_read(db: sqlite3.Connection, run_id: str, after: int, limit: int) -> list[StreamChunk]:
    rows = db.execute(
        f"SELECT {_COLS} FROM stream_chunks WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
        (run_id, after, limit),
    ).fetchall()
    return [_chunk(r) for r in rows]


def sqlite_forget(db: sqlite3.Connection, ended_before: float) -> int:
    """Drop the streams of runs that finished before ``ended_before`` (their text is in the journal)."""
    return db.execute(
        "DELETE FROM stream_chunks WHERE run_id IN (SELECT id FROM runs WHERE ended_at IS NOT NULL "
        f"AND ended_at < ? AND status IN {_TERMINAL})",
        (ended_before,),
    ).rowcount


PG_LOCK_RUN = "SELECT 1 FROM runs WHERE id = %s FOR UPDATE"
_PG_HELD = (
    "(%(owner)s::text IS NULL OR EXISTS (SELECT 1 FROM runs WHERE id = %(run)s "
    "AND lease_owner = %(owner)s AND status = 'running'))"
)
PG_BEGIN = (
    f"WITH held AS (SELECT {_PG_HELD} AS ok), "
    "prev AS (SELECT max(epoch) AS e FROM stream_chunks WHERE run_id = %(run)s AND step = %(step)s), "
    'ins AS (INSERT INTO stream_chunks (run_id, step, epoch, "offset", text, at) '
    "SELECT %(run)s, %(step)s, e + 1, 0, NULL, %(now)s FROM prev, held WHERE e IS NOT NULL AND held.ok "
    "RETURNING epoch) "
    "SELECT CASE WHEN (SELECT ok FROM held) THEN coalesce((SELECT epoch FROM ins), 1) END"
)
PG_APPEND = (
    'INSERT INTO stream_chunks (run_id, step, epoch, "offset", text, at) '
    f"SELECT %(run)s, %(step)s, %(epoch)s, %(offset)s, %(text)s, %(now)s WHERE {_PG_HELD} RETURNING id"
)
PG_READ = f"SELECT {_COLS} FROM stream_chunks WHERE run_id = %s AND id > %s ORDER BY id LIMIT %s"
PG_FORGET = (
    "DELETE FROM stream_chunks WHERE run_id IN (SELECT id FROM runs WHERE ended_at IS NOT NULL "
    f"AND ended_at < %s AND status IN {_TERMINAL})"
)


def pg_chunks(rows: Sequence[Sequence[Any]]) -> list[StreamChunk]:
    return [_chunk(r) for r in rows]
