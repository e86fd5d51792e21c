"""The PostgreSQL store's connections (the ``PostgresStore`` part of them): opening (migrations first), the
pool, transactions retried when the server picks them as a deadlock's victim, and LISTEN for NOTIFY."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, StoreError

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql as pg_sql
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:  # pragma: no cover - exercised by a test that hides psycopg
    raise ConfigError(
        "a postgresql:// database URL needs psycopg 3 and psycopg-pool: pip install podium[postgres]"
    ) from exc

T = TypeVar("T")
log = logging.getLogger("podium.postgres")

_RETRIES = 5
_LISTEN_CHECK_SECONDS = 10.0
"""How often an idle listening connection is checked (a round trip) to notice a silent drop."""
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def migration_files() -> list[tuple[int, str, str]]:
    """``(number, file name, SQL)`` of every PostgreSQL migration, in order."""
    out = []
    for f in resources.files("podium.storage").joinpath("migrations").iterdir():
        if f.name.endswith(".postgres.sql"):
            out.append((int(f.name.split("_", 1)[0]), f.name, f.read_text()))
    return sorted(out)


class PostgresConnection:
    """The connection methods of ``PostgresStore`` (which sets these attributes in ``__init__``)."""

    if TYPE_CHECKING:
        url: str
        _min_size: int
        _max_size: int
        _timeout: float
        _pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None
        _feed_lock: int
        channel: str
        version: int

    async def open(self) -> None:
        if self._pool is not None:
            return
        # One plain connection first: an unreachable server is one clear error at once (a pool would retry
        # in the background), and it applies the migrations before any other statement runs.
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL ({_safe(self.url)}): {exc}") from exc
        try:
            self.version = await self._migrate(conn)
            cur = await conn.execute(
                "SELECT hashtextextended('podium.feed:' || current_schema(), 0), "
                "left('podium:' || current_schema(), 63)"
            )
            row = await cur.fetchone()
            assert row is not None
            self._feed_lock = int(row[0])
            self.channel = str(row[1])
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        finally:
            await conn.close()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            kwargs={"autocommit": True},
            open=False,
            name="podium",
        )
        await pool.open(wait=False)
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def listen(self, callback: Callable[[str | None], None]) -> Callable[[], Awaitable[None]]:
        """Call ``callback(flow)`` whenever a run of ``flow`` becomes runnable (or gets a timer), as told
        by NOTIFY from the transaction that did it (migration 0006); returns an async function that stops.

        One connection of its own, outside the pool. After it drops it is made again, and ``callback(None)``
        is called at every (re)connection: something may have become runnable while nobody listened.
        """
        task = asyncio.create_task(self._listen(callback), name="podium-listen")

        async def stop() -> None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

        return stop

    async def _listen(self, callback: Callable[[str | None], None]) -> None:
        delay = 0.1
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5, application_name="podium-listen"
                )
                await conn.execute(pg_sql.SQL("LISTEN {}").format(pg_sql.Identifier(self.channel)))
                if delay > 0.1:
                    log.info("listening to PostgreSQL again")
                delay = 0.1
                callback(None)
                while True:
                    async for note in conn.notifies(timeout=_LISTEN_CHECK_SECONDS):
                        callback(note.payload)
                    await conn.execute("SELECT 1")  # a connection that died silently raises here
            except Exception as exc:  # psycopg.Error, OSError: the server is gone or restarting
                log.warning("lost the PostgreSQL listening connection (retrying in %.1fs): %s", delay, exc)
            finally:
                if conn is not None:
                    try:
                        await conn.close()
                    except Exception:  # pragma: no cover - closing a broken connection
                        pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise StoreError("the PostgreSQL store is not open")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            if isinstance(exc, _RETRYABLE):
                raise
            raise StoreError(f"PostgreSQL: {exc}") from exc

    async def _retry(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run a transaction, again if the server chose it as a deadlock's victim."""
        for attempt in range(_RETRIES):
            try:
                async with self._conn() as conn:
                    return await fn(conn)
            except _RETRYABLE as exc:
                if attempt == _RETRIES - 1:
                    raise StoreError(f"PostgreSQL: {exc} (after {_RETRIES} attempts)") from exc
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        async with self._conn() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self._conn() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Apply the migrations this database has not had yet; the schema version afterwards.

        Cheap when there is nothing to do (one query). Otherwise one transaction under an advisory lock:
        a second process starting at the same moment waits, then finds the work done.
        """
        files = migration_files()
        latest = files[-1][0] if files else 0
        try:
            cur = await conn.execute("SELECT max(version), count(*) FROM podium_migrations")
            row = await cur.fetchone()
            if row is not None and row[0] is not None and row[0] >= latest and row[1] >= len(files):
                return int(row[0])
        except pg_errors.UndefinedTable:
            pass
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('podium.migrate:' || current_schema(), 0))"
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS podium_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            # A migration missing from the table runs, whatever its number: branches developed side by
            # side may land numbers out of order.
            cur = await conn.execute("SELECT version FROM podium_migrations")
            applied = {int(r[0]) for r in await cur.fetchall()}
            version = max(applied, default=0)
            for number, name, sql in files:
                if number not in applied:
                    await conn.execute(sql.encode())  # several statements: no parameters allowed
                    await conn.execute(
                        "INSERT INTO podium_migrations (version, name) VALUES (%s, %s)", (number, name)
                    )
                    version = max(version, number)
        return version


def _safe(url: str) -> str:
    """``url`` without a password, for error messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:
        return "the configured URL"
    return " ".join(f"{k}={v}" for k, v in parts.items() if k in ("host", "port", "dbname", "user"))
