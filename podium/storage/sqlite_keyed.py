"""API keys, the model cache and daily spending in SQLite (the ``SQLiteStore`` part of them): small keyed
tables beside the runs."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .base import KeyRecord
from .sqlite_rows import _dump, _load

_KEY_COLS = "id, name, role, hash, created_at, revoked_at, tenant, expires_at"


class SQLiteKeyed:
    """The API key, cache and spend methods of ``SQLiteStore``."""

    if TYPE_CHECKING:

        @property
        def db(self) -> sqlite3.Connection: ...

        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    async def key_add(self, key: KeyRecord) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT INTO api_keys ({_KEY_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    key.id,
                    key.name,
                    key.role,
                    key.hash,
                    key.created_at,
                    key.revoked_at,
                    key.tenant,
                    key.expires_at,
                ),
            )

    async def key_find(self, hash: str) -> KeyRecord | None:
        row = self.db.execute(
            f"SELECT {_KEY_COLS} FROM api_keys WHERE hash = ? AND revoked_at IS NULL",
            (hash,),
        ).fetchone()
        return None if row is None else KeyRecord(*row)

    async def key_list(self) -> list[KeyRecord]:
        rows = self.db.execute(f"SELECT {_KEY_COLS} FROM api_keys ORDER BY created_at, id")
        return [KeyRecord(*r) for r in rows]

    async def key_revoke(self, key_id: str, *, now: float) -> bool:
        with self._tx() as db:
            return bool(
                db.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, key_id)
                ).rowcount
            )

    async def cache_get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else _load(row[0])  # hits are counted in memory: a read stays a read

    async def cache_put(self, key: str, value: Any, *, now: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO cache (key, value, created_at) VALUES (?, ?, ?)",
                (key, _dump(value), now),
            )

    async def cache_scan(self, prefix: str, *, limit: int = 10_000) -> list[tuple[str, Any]]:
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\uffff"
        rows = self.db.execute(
            "SELECT key, value FROM cache WHERE key >= ? AND key < ? ORDER BY created_at LIMIT ?",
            (prefix, upper, limit),
        )
        return [(r[0], _load(r[1])) for r in rows]

    async def spend_add(self, flow: str, day: str, cost: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO spend (flow, day, cost) VALUES (?, ?, ?) "
                "ON CONFLICT (flow, day) DO UPDATE SET cost = cost + excluded.cost",
                (flow, day, cost),
            )

    async def spend_get(self, flow: str, day: str) -> float:
        row = self.db.execute("SELECT cost FROM spend WHERE flow = ? AND day = ?", (flow, day)).fetchone()
        return 0.0 if row is None else float(row[0])
