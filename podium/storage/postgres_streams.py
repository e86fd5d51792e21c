"""Resumable token streams in PostgreSQL (the ``PostgresStore`` part of them; rows and statements in
``podium.storage.stream_rows``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import stream_rows
from .base import StreamChunk

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")


class PostgresStreams:
    """The token stream methods of ``PostgresStore``."""

    if TYPE_CHECKING:

        async def _retry(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    async def stream_begin(
        self, run_id: str, step: str, *, now: float, owner: str | None = None
    ) -> int | None:
        params = {"run": run_id, "step": step, "now": now, "owner": owner}

        async def tx(conn: psycopg.AsyncConnection[Any]) -> int | None:
            async with conn.pipeline(), conn.transaction():
                await conn.execute(stream_rows.PG_LOCK_RUN, (run_id,))
                cur = await conn.execute(stream_rows.PG_BEGIN, params)
            row = await cur.fetchone()
            return None if row is None or row[0] is None else int(row[0])

        return await self._retry(tx)

    async def stream_append(
        self,
        run_id: str,
        step: str,
        epoch: int,
        offset: int,
        text: str,
        *,
        now: float,
        owner: str | None = None,
    ) -> bool:
        params = {
            "run": run_id,
            "step": step,
            "epoch": epoch,
            "offset": offset,
            "text": text,
            "now": now,
            "owner": owner,
        }

        async def tx(conn: psycopg.AsyncConnection[Any]) -> bool:
            async with conn.pipeline(), conn.transaction():
                await conn.execute(stream_rows.PG_LOCK_RUN, (run_id,))
                cur = await conn.execute(stream_rows.PG_APPEND, params)
            return await cur.fetchone() is not None

        return await self._retry(tx)

    async def stream_read(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[StreamChunk]:
        return stream_rows.pg_chunks(await self._all(stream_rows.PG_READ, (run_id, after, limit)))
