"""The audit trail's records and their storage in each store: an append-only, hash-chained table.

Each entry covers the previous entry's hash and the SHA-256 of its own payload, so any edited, inserted,
deleted or reordered entry breaks the chain at that point. A payload can be erased (set to NULL) for a
data subject while its hash stays, so the chain still verifies. Appends take the chain's lock (SQLite's write
lock, a PostgreSQL advisory lock), so many processes extend one chain.

Verification and signed checkpoints live in ``podium.observability.audit``; this module only stores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager

GENESIS = "0" * 64
"""The ``prev`` of the first entry."""


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry to append: what happened (``action``), to what (``subject``), by whom (``actor``)."""

    action: str
    at: float
    actor: str | None = None
    subject: str | None = None
    payload: Any = None


class AuditRecord(NamedTuple):
    """A stored entry of the chain. ``payload`` is None once erased; ``payload_hash`` stays. (A named
    tuple: verification reads a million of them.)"""

    seq: int
    at: float
    actor: str | None
    action: str
    subject: str | None
    payload: str | None  # canonical JSON text, as hashed
    payload_hash: str
    prev: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """A signature (Ed25519) over the chain's head at ``seq``."""

    seq: int
    hash: str
    at: float
    public_key: str  # hex
    signature: str  # hex


def canonical(payload: Any) -> str:
    """The JSON text a payload is stored and hashed as (sorted keys, no spaces)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def payload_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry_hash(
    prev: str, seq: int, at: float, actor: str | None, action: str, subject: str | None, phash: str
) -> str:
    """The hash an entry must have: over the previous hash and every field but the payload itself."""
    line = f"{prev}\n{seq}\n{at!r}\n{actor or ''}\n{action}\n{subject or ''}\n{phash}"
    return hashlib.sha256(line.encode()).hexdigest()


def chain(drafts: Sequence[AuditDraft], seq: int, prev: str) -> list[AuditRecord]:
    """Records for ``drafts`` following the entry ``seq`` whose hash is ``prev``."""
    out: list[AuditRecord] = []
    for d in drafts:
        seq += 1
        text = canonical(d.payload)
        ph = payload_hash(text)
        h = entry_hash(prev, seq, d.at, d.actor, d.action, d.subject, ph)
        out.append(AuditRecord(seq, d.at, d.actor, d.action, d.subject, text, ph, prev, h))
        prev = h
    return out


_COLS = "seq, at, actor, action, subject, payload, payload_hash, prev, hash"
_CP_COLS = "seq, hash, at, public_key, signature"


class MemoryAudit:
    """The audit chain in a list (the memory store's)."""

    _audit: list[AuditRecord]
    _checkpoints: list[AuditCheckpoint]

    def _audit_init(self) -> None:
        self._audit = []
        self._checkpoints = []

    async def audit_append(self, drafts: Sequence[AuditDraft]) -> list[AuditRecord]:
        last = self._audit[-1] if self._audit else None
        records = chain(drafts, last.seq if last else 0, last.hash if last else GENESIS)
        self._audit.extend(records)
        return records

    async def audit_scan(self, after: int = 0, *, limit: int = 10_000) -> list[AuditRecord]:
        return [r for r in self._audit if r.seq > after][:limit]

    async def audit_erase(self, subject: str) -> int:
        n = 0
        for i, r in enumerate(self._audit):
            if r.subject == subject and r.payload is not None:
                self._audit[i] = r._replace(payload=None)
                n += 1
        return n

    async def audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        self._checkpoints = [c for c in self._checkpoints if c.seq != checkpoint.seq] + [checkpoint]
        self._checkpoints.sort(key=lambda c: c.seq)

    async def audit_checkpoints(self) -> list[AuditCheckpoint]:
        return list(self._checkpoints)


class SQLiteAudit:
    """The audit chain in the SQLite file (tables ``audit`` and ``audit_checkpoints``)."""

    if TYPE_CHECKING:

        @property
        def db(self) -> sqlite3.Connection: ...
        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    async def audit_append(self, drafts: Sequence[AuditDraft]) -> list[AuditRecord]:
        if not drafts:
            return []
        with self._tx() as db:  # BEGIN IMMEDIATE: the write lock orders appends across processes
            row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            records = chain(drafts, row[0] if row else 0, row[1] if row else GENESIS)
            db.executemany(f"INSERT INTO audit ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?)", records)
        return records

    async def audit_scan(self, after: int = 0, *, limit: int = 10_000) -> list[AuditRecord]:
        rows = self.db.execute(
            f"SELECT {_COLS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return list(map(AuditRecord._make, rows))

    async def audit_erase(self, subject: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE audit SET payload = NULL WHERE subject = ? AND payload IS NOT NULL", (subject,)
            )
            return cur.rowcount

    async def audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO audit_checkpoints ({_CP_COLS}) VALUES (?,?,?,?,?)",
                (checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.public_key, checkpoint.signature),
            )

    async def audit_checkpoints(self) -> list[AuditCheckpoint]:
        rows = self.db.execute(f"SELECT {_CP_COLS} FROM audit_checkpoints ORDER BY seq").fetchall()
        return [AuditCheckpoint(*r) for r in rows]


class PostgresAudit:
    """The audit chain in PostgreSQL: appends serialize on a transaction-scoped advisory lock per schema."""

    if TYPE_CHECKING:

        async def _retry(self, fn: Callable[[Any], Awaitable[Any]]) -> Any: ...
        async def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None: ...
        async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    async def audit_append(self, drafts: Sequence[AuditDraft]) -> list[AuditRecord]:
        if not drafts:
            return []

        async def tx(conn: Any) -> list[AuditRecord]:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended('podium.audit:' || current_schema(), 0))"
                )
                cur = await conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                row = await cur.fetchone()
                records = chain(drafts, row[0] if row else 0, row[1] if row else GENESIS)
                async with conn.cursor() as c:
                    await c.executemany(
                        f"INSERT INTO audit ({_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        records,
                    )
            return records

        result: list[AuditRecord] = await self._retry(tx)
        return result

    async def audit_scan(self, after: int = 0, *, limit: int = 10_000) -> list[AuditRecord]:
        sql = f"SELECT {_COLS} FROM audit WHERE seq > %s ORDER BY seq LIMIT %s"
        rows = await self._all(sql, (after, limit))
        return list(map(AuditRecord._make, rows))

    async def audit_erase(self, subject: str) -> int:
        rows = await self._all(
            "UPDATE audit SET payload = NULL WHERE subject = %s AND payload IS NOT NULL RETURNING seq",
            (subject,),
        )
        return len(rows)

    async def audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        await self._one(
            f"INSERT INTO audit_checkpoints ({_CP_COLS}) VALUES (%s,%s,%s,%s,%s) "
            "ON CONFLICT (seq) DO UPDATE SET hash = EXCLUDED.hash, at = EXCLUDED.at, "
            "public_key = EXCLUDED.public_key, signature = EXCLUDED.signature RETURNING 1",
            (checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.public_key, checkpoint.signature),
        )

    async def audit_checkpoints(self) -> list[AuditCheckpoint]:
        rows = await self._all(f"SELECT {_CP_COLS} FROM audit_checkpoints ORDER BY seq")
        return [AuditCheckpoint(*r) for r in rows]
