"""The prompt registry's rows in PostgreSQL (mixed into ``PostgresStore``; see ``Store.prompt_*``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # psycopg is imported by the store itself, with the install hint if it is missing
    import psycopg

from .base import PromptLabelRecord, PromptMove, PromptRecord
from .prompt_rows import LABEL_COLS, MOVE_COLS, PROMPT_COLS, move_row, prompt_params, prompt_row

T = TypeVar("T")
_PLACES = ",".join(["%s"] * 10)


class PostgresPrompts:
    """``Store.prompt_*`` on the connection pool of the store it is mixed into."""

    # provided by PostgresStore
    def _conn(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError

    async def _retry(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        raise NotImplementedError

    async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def prompt_push(self, prompt: PromptRecord) -> tuple[PromptRecord, bool]:
        async def tx(conn: psycopg.AsyncConnection[Any]) -> tuple[PromptRecord, bool]:
            async with conn.transaction():
                # One pusher per name at a time: version numbers stay dense and the hash check is exact.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 8))", (prompt.name,))
                cur = await conn.execute(
                    f"SELECT {PROMPT_COLS} FROM prompt_versions WHERE name = %s AND hash = %s",
                    (prompt.name, prompt.hash),
                )
                row = await cur.fetchone()
                if row is not None:
                    return prompt_row(row), False
                cur = await conn.execute(
                    "SELECT coalesce(max(version), 0) FROM prompt_versions WHERE name = %s", (prompt.name,)
                )
                latest = await cur.fetchone()
                assert latest is not None
                params = prompt_params(prompt, latest[0] + 1)
                await conn.execute(f"INSERT INTO prompt_versions ({PROMPT_COLS}) VALUES ({_PLACES})", params)
                return prompt_row(params), True

        return await self._retry(tx)

    async def prompt_get(self, name: str, version: int) -> PromptRecord | None:
        row = await self._one(
            f"SELECT {PROMPT_COLS} FROM prompt_versions WHERE name = %s AND version = %s", (name, version)
        )
        return None if row is None else prompt_row(row)

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        rows = await self._all(
            f"SELECT {PROMPT_COLS} FROM prompt_versions WHERE name = %s ORDER BY version", (name,)
        )
        return [prompt_row(r) for r in rows]

    async def prompt_latest(self) -> list[PromptRecord]:
        rows = await self._all(
            f"SELECT DISTINCT ON (name) {PROMPT_COLS} FROM prompt_versions ORDER BY name, version DESC"
        )
        return [prompt_row(r) for r in rows]

    async def prompt_labels(self, name: str) -> list[PromptLabelRecord]:
        rows = await self._all(
            f"SELECT {LABEL_COLS} FROM prompt_labels WHERE name = %s ORDER BY label", (name,)
        )
        return [PromptLabelRecord(*r) for r in rows]

    async def prompt_label(self, name: str, label: str) -> PromptLabelRecord | None:
        row = await self._one(
            f"SELECT {LABEL_COLS} FROM prompt_labels WHERE name = %s AND label = %s", (name, label)
        )
        return None if row is None else PromptLabelRecord(*row)

    async def prompt_move(
        self, name: str, label: str, version: int, *, now: float, rollback: bool = False
    ) -> PromptLabelRecord:
        async def tx(conn: psycopg.AsyncConnection[Any]) -> PromptLabelRecord:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 9))", (f"{name}:{label}",)
                )
                cur = await conn.execute(
                    "SELECT version, rev FROM prompt_labels WHERE name = %s AND label = %s", (name, label)
                )
                old = await cur.fetchone()
                rev = 1 if old is None else old[1] + 1
                await conn.execute(
                    f"INSERT INTO prompt_labels ({LABEL_COLS}) VALUES (%s,%s,%s,%s,%s) "
                    "ON CONFLICT (name, label) DO UPDATE SET version = excluded.version, rev = excluded.rev, "
                    "updated_at = excluded.updated_at",
                    (name, label, version, rev, now),
                )
                await conn.execute(
                    f"INSERT INTO prompt_moves ({MOVE_COLS}) VALUES (%s,%s,%s,%s,%s,%s)",
                    (name, label, None if old is None else old[0], version, rollback, now),
                )
                return PromptLabelRecord(name, label, version, rev, now)

        return await self._retry(tx)

    async def prompt_moves(self, name: str, label: str) -> list[PromptMove]:
        rows = await self._all(
            f"SELECT {MOVE_COLS} FROM prompt_moves WHERE name = %s AND label = %s ORDER BY id", (name, label)
        )
        return [move_row(r) for r in rows]

    async def prompt_split_put(self, name: str, arms: Mapping[str, int] | None, *, now: float) -> None:
        if arms is None:
            await self._all("DELETE FROM prompt_splits WHERE name = %s RETURNING 1", (name,))
            return
        await self._one(
            "INSERT INTO prompt_splits (name, arms, updated_at) VALUES (%s,%s,%s) ON CONFLICT (name) "
            "DO UPDATE SET arms = excluded.arms, updated_at = excluded.updated_at RETURNING 1",
            (name, json.dumps(dict(arms)), now),
        )

    async def prompt_split(self, name: str) -> dict[str, int] | None:
        row = await self._one("SELECT arms FROM prompt_splits WHERE name = %s", (name,))
        return None if row is None else dict(json.loads(row[0]))
