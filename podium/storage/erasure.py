"""Erasing a data subject's runs in each store: what ``Client.erase_subject`` asks of storage.

A finished run's input, output, error and every journal entry's data are replaced by a marker, its token
stream is deleted, its audit entries' payloads are erased (their hashes stay in the chain), and its payload
references go, then every payload no run references. The skeleton stays:
which steps ran, when, in which order, with which status. Runs not finished yet are left alone (erasing a
live journal would break the run): the caller reports them.

On SQLite the erasure runs with ``secure_delete`` (freed bytes are zeroed) and the WAL is checkpointed
afterwards, so the values leave the files. PostgreSQL keeps dead row versions until ``VACUUM`` reuses them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .base import RunRecord
from .payloads import delete_blobs

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager

    from .base import Event
    from .payloads import PayloadOptions

ERASED: dict[str, Any] = {"erased": True}
"""What an erased value reads as."""
ERASED_ERROR: dict[str, Any] = {
    "type": "Erased",
    "message": "erased for its data subject",
    "retryable": False,
}
_ERASED = json.dumps(ERASED, separators=(",", ":"))
_ERASED_ERROR = json.dumps(ERASED_ERROR, separators=(",", ":"))
_TERMINAL = ("completed", "failed", "cancelled")


@dataclass(slots=True)
class Erased:
    """What an erasure did: runs and journal entries erased, payloads deleted (and their blob files)."""

    runs: list[str] = field(default_factory=list)
    events: int = 0
    payloads: int = 0
    files: list[str] = field(default_factory=list)
    audit: int = 0  # audit entries (about those runs) whose payload was erased


class MemoryErasure:
    """Erasure in the memory store."""

    if TYPE_CHECKING:
        _runs: dict[str, RunRecord]
        _events: dict[str, list[Event]]
        _chunks: dict[str, Any]

        async def audit_erase(self, subject: str) -> int: ...

    async def runs_of_subject(self, subject: str) -> list[RunRecord]:
        return [r for r in self._runs.values() if r.subject == subject]

    async def erase_runs(self, run_ids: Sequence[str]) -> Erased:
        done = Erased()
        for run_id in run_ids:
            run = self._runs.get(run_id)
            if run is None or not run.status.terminal:
                continue
            done.runs.append(run_id)
            run.input = None if run.input is None else dict(ERASED)
            run.output = None if run.output is None else dict(ERASED)
            run.error = None if run.error is None else dict(ERASED_ERROR)
            for e in self._events.get(run_id, []):
                if e.data is not None:
                    e.data = dict(ERASED)
                    done.events += 1
            self._chunks.pop(run_id, None)
            done.audit += await self.audit_erase(run_id)
        return done


class SQLiteErasure:
    """Erasure in the SQLite file, with ``secure_delete`` and a WAL checkpoint."""

    if TYPE_CHECKING:
        payloads: PayloadOptions

        @property
        def db(self) -> sqlite3.Connection: ...
        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    async def runs_of_subject(self, subject: str) -> list[RunRecord]:
        from .sqlite_rows import _RUN_COLS, _run

        rows = self.db.execute(f"SELECT {_RUN_COLS} FROM runs WHERE subject = ?", (subject,)).fetchall()
        return [_run(r) for r in rows]

    async def erase_runs(self, run_ids: Sequence[str]) -> Erased:
        done = Erased()
        if not run_ids:
            return done
        db = self.db
        db.execute("PRAGMA secure_delete = ON")  # freed bytes are zeroed, not left in free pages
        try:
            with self._tx() as tx:
                marks = ",".join("?" * len(run_ids))
                done.runs = [
                    r[0]
                    for r in tx.execute(
                        f"SELECT id FROM runs WHERE id IN ({marks}) AND status IN {_TERMINAL}", tuple(run_ids)
                    )
                ]
                if done.runs:
                    ids = tuple(done.runs)
                    marks = ",".join("?" * len(ids))
                    tx.execute(
                        "UPDATE runs SET input = CASE WHEN input IS NULL THEN NULL ELSE ? END, "
                        "output = CASE WHEN output IS NULL THEN NULL ELSE ? END, "
                        f"error = CASE WHEN error IS NULL THEN NULL ELSE ? END WHERE id IN ({marks})",
                        (_ERASED, _ERASED, _ERASED_ERROR, *ids),
                    )
                    done.events = tx.execute(
                        f"UPDATE events SET data = ? WHERE run_id IN ({marks}) AND data IS NOT NULL",
                        (_ERASED, *ids),
                    ).rowcount
                    tx.execute(f"DELETE FROM stream_chunks WHERE run_id IN ({marks})", ids)
                    done.audit = tx.execute(
                        f"UPDATE audit SET payload = NULL WHERE subject IN ({marks}) AND payload IS NOT NULL",
                        ids,
                    ).rowcount
                    tx.execute(f"DELETE FROM payload_refs WHERE run_id IN ({marks})", ids)
                    gone = tx.execute(
                        "DELETE FROM payloads WHERE hash NOT IN (SELECT hash FROM payload_refs) "
                        "RETURNING hash, in_file"
                    ).fetchall()
                    done.payloads = len(gone)
                    done.files = [g[0] for g in gone if g[1]]
        finally:
            db.execute("PRAGMA secure_delete = OFF")
        delete_blobs(self.payloads.blobs, done.files)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the old page images leave the WAL too
        return done


class PostgresErasure:
    """Erasure in PostgreSQL (dead row versions stay until ``VACUUM``)."""

    if TYPE_CHECKING:
        payloads: PayloadOptions

        async def _retry(self, fn: Callable[[Any], Awaitable[Any]]) -> Any: ...
        async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    async def runs_of_subject(self, subject: str) -> list[RunRecord]:
        from .sqlite_rows import _RUN_COLS, _run

        rows = await self._all(f"SELECT {_RUN_COLS} FROM runs WHERE subject = %s", (subject,))
        return [_run(r) for r in rows]

    async def erase_runs(self, run_ids: Sequence[str]) -> Erased:
        done = Erased()
        if not run_ids:
            return done

        async def tx(conn: Any) -> Erased:
            out = Erased()
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT id FROM runs WHERE id = ANY(%s) AND status = ANY(%s) FOR UPDATE",
                    (list(run_ids), list(_TERMINAL)),
                )
                out.runs = [r[0] for r in await cur.fetchall()]
                if not out.runs:
                    return out
                ids = out.runs
                await conn.execute(
                    "UPDATE runs SET input = CASE WHEN input IS NULL THEN NULL ELSE %s END, "
                    "output = CASE WHEN output IS NULL THEN NULL ELSE %s END, "
                    "error = CASE WHEN error IS NULL THEN NULL ELSE %s END WHERE id = ANY(%s)",
                    (_ERASED, _ERASED, _ERASED_ERROR, ids),
                )
                cur = await conn.execute(
                    "UPDATE events SET data = %s WHERE run_id = ANY(%s) AND data IS NOT NULL", (_ERASED, ids)
                )
                out.events = cur.rowcount
                await conn.execute("DELETE FROM stream_chunks WHERE run_id = ANY(%s)", (ids,))
                cur = await conn.execute(
                    "UPDATE audit SET payload = NULL WHERE subject = ANY(%s) AND payload IS NOT NULL", (ids,)
                )
                out.audit = cur.rowcount
                await conn.execute("DELETE FROM payload_refs WHERE run_id = ANY(%s)", (ids,))
                cur = await conn.execute(
                    "DELETE FROM payloads p WHERE NOT EXISTS "
                    "(SELECT 1 FROM payload_refs r WHERE r.hash = p.hash) RETURNING hash, in_file"
                )
                gone = await cur.fetchall()
                out.payloads = len(gone)
                out.files = [g[0] for g in gone if g[1]]
            return out

        done = cast(Erased, await self._retry(tx))
        delete_blobs(self.payloads.blobs, done.files)
        return done
