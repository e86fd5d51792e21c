"""API keys, the model cache and daily spending in PostgreSQL (the ``PostgresStore`` part of them). Statement
for statement the semantics of ``podium.storage.sqlite_keyed``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import errors as pg_errors  # psycopg's absence is reported by postgres_conn, imported first

from ..errors import StoreError
from .base import KeyRecord
from .sqlite_rows import _dump, _load

_KEY_COLS = "id, name, role, hash, created_at, revoked_at, tenant, expires_at"


class PostgresKeyed:
    """The API key, cache and spend methods of ``PostgresStore``."""

    if TYPE_CHECKING:

        async def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None: ...

        async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    # -- model cache and spending -------------------------------------------------------------
    async def cache_get(self, key: str) -> Any:
        row = await self._one("SELECT value FROM cache WHERE key = %s", (key,))
        return None if row is None else _load(row[0])

    async def cache_put(self, key: str, value: Any, *, now: float) -> None:
        await self._one(
            "INSERT INTO cache (key, value, created_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING "
            "RETURNING 1",
            (key, _dump(value), now),
        )

    async def cache_scan(self, prefix: str, *, limit: int = 10_000) -> list[tuple[str, Any]]:
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\uffff"
        rows = await self._all(
            "SELECT key, value FROM cache WHERE key >= %s AND key < %s ORDER BY created_at LIMIT %s",
            (prefix, upper, limit),
        )
        return [(r[0], _load(r[1])) for r in rows]

    async def spend_add(self, flow: str, day: str, cost: float) -> None:
        await self._one(
            "INSERT INTO spend (flow, day, cost) VALUES (%s, %s, %s) "
            "ON CONFLICT (flow, day) DO UPDATE SET cost = spend.cost + excluded.cost RETURNING 1",
            (flow, day, cost),
        )

    async def spend_get(self, flow: str, day: str) -> float:
        row = await self._one("SELECT cost FROM spend WHERE flow = %s AND day = %s", (flow, day))
        return 0.0 if row is None else float(row[0])

    # -- API keys -----------------------------------------------------------------------------
    async def key_add(self, key: KeyRecord) -> None:
        try:
            await self._one(
                f"INSERT INTO api_keys ({_KEY_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) RETURNING 1",
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
        except StoreError as exc:
            if isinstance(exc.__cause__, pg_errors.UniqueViolation):
                raise StoreError("an API key with this id or hash exists already") from exc
            raise

    async def key_find(self, hash: str) -> KeyRecord | None:
        row = await self._one(
            f"SELECT {_KEY_COLS} FROM api_keys WHERE hash = %s AND revoked_at IS NULL", (hash,)
        )
        return None if row is None else KeyRecord(*row)

    async def key_list(self) -> list[KeyRecord]:
        rows = await self._all(f"SELECT {_KEY_COLS} FROM api_keys ORDER BY created_at, id")
        return [KeyRecord(*r) for r in rows]

    async def key_revoke(self, key_id: str, *, now: float) -> bool:
        row = await self._one(
            "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL RETURNING 1",
            (now, key_id),
        )
        return row is not None
