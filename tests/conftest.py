"""Shared fixtures: every engine test runs on the memory store, on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import pytest

import podium
from podium.engine.worker import Worker

T = TypeVar("T")

WAIT_SECONDS = 20.0
"""Generous upper bound for anything a test waits for; only there so a broken engine cannot hang CI."""


def settings_for(url: str) -> podium.Settings:
    """The settings every test client uses: fast polling, short leases."""
    return podium.Settings(database_url=url, poll_seconds=0.05, lease_seconds=2)


POSTGRES_URL = os.environ.get("PODIUM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
"""The PostgreSQL server the ``postgres`` params run on. Each test gets a schema of its own in it."""


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """``memory://``, a fresh SQLite file under ``tmp_path``, or an empty schema on PostgreSQL."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/podium.db"
    else:
        schemas: PostgresSchemas = request.getfixturevalue("postgres_schemas")
        schema = schemas.take()
        try:
            yield schemas.url(schema)
        finally:
            schemas.give_back(schema)


@pytest.fixture(params=["sqlite", "postgres"])
def memory_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The memory stores' contract: a fresh SQLite file under ``tmp_path``, or an empty schema on PostgreSQL
    (with pgvector: missing is a skip, or a failure under ``PODIUM_REQUIRE_POSTGRES``)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/podium.db"
        return
    schemas: PostgresSchemas = request.getfixturevalue("postgres_schemas")
    available = "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    if schemas.admin().execute(available).fetchone() is None:
        _unavailable(f"pgvector is not installed on {POSTGRES_URL} (./dev test builds it)")
    schema = schemas.take()
    try:
        yield schemas.url(schema)
    finally:
        schemas.give_back(schema)


class PostgresSchemas:
    """This test process's schemas on ``POSTGRES_URL``: each test gets one of its own, empty.

    Creating and migrating a schema costs about 100 ms; emptying a used one (``DELETE`` from each table,
    restart the journal's sequence) a few: schemas are kept and reused, and all dropped when the session
    ends. Their sessions set ``synchronous_commit=off``: tests check semantics, not the server's crash safety,
    and need not wait for its disk (bench/scale.py measures with it on). PostgreSQL unreachable is a skip, or
    with ``PODIUM_REQUIRE_POSTGRES`` set (CI: .ci/run) a failure. ``./dev test`` starts the local cluster if
    it is down.
    """

    def __init__(self) -> None:
        self.free: list[str] = []
        self.made: list[str] = []
        self._conn: Any = None

    def admin(self) -> Any:
        try:
            import psycopg
        except ImportError:
            _unavailable("psycopg is not installed: pip install podium[postgres]")
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                _unavailable(f"no PostgreSQL at {POSTGRES_URL} ({str(exc).strip()})")
            self._conn.execute("SET lock_timeout = '5s'")
        return self._conn

    def url(self, schema: str) -> str:
        options = quote(f"-csearch_path={schema} -csynchronous_commit=off")
        return f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options={options}"

    def take(self) -> str:
        conn = self.admin()
        if self.free:
            return self.free.pop()
        schema = f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE SCHEMA {schema}")
        self.made.append(schema)
        return schema

    def give_back(self, schema: str) -> None:
        conn = self.admin()
        try:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> %s",
                    (schema, "podium_migrations"),
                )
            ]
            sequences = [
                r[0]
                for r in conn.execute(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = %s", (schema,)
                )
            ]
            with conn.transaction():
                for t in tables:
                    conn.execute(f"DELETE FROM {schema}.{t}")
                for q in sequences:
                    conn.execute(f"ALTER SEQUENCE {schema}.{q} RESTART")
        except Exception:  # a connection the test left open holds a lock: let the session's end drop it
            return
        self.free.append(schema)

    def drop_all(self) -> None:
        if self._conn is None:
            return
        for schema in self.made:
            try:
                self._conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            except Exception:
                pass
        self._conn.close()


@pytest.fixture(scope="session")
def postgres_schemas() -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas()
    try:
        yield schemas
    finally:
        schemas.drop_all()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("PODIUM_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
async def client(store_url: str) -> AsyncIterator[podium.Client]:
    """An opened client (with its in-process worker) on ``store_url``."""
    c = podium.Client(settings_for(store_url))
    await c.open()
    try:
        yield c
    finally:
        await close_within(c)


async def close_within(client: podium.Client, seconds: float = 10.0) -> None:
    """Close ``client``; fail (instead of hanging the suite) if a run's task never lets go."""
    try:
        async with asyncio.timeout(seconds):
            await client.close()
    except TimeoutError:
        pytest.fail(f"client.close() did not return within {seconds}s: a run's task is stuck")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    what: str,
    timeout: float = WAIT_SECONDS,
) -> T:
    """Poll ``probe()`` until ``accept`` holds for its value; fail the test (never hang) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.01)


async def wait_status(client: podium.Client, run_id: str, *statuses: podium.RunStatus) -> podium.Run:
    """Wait until the run is in one of ``statuses``."""
    return await eventually(
        lambda: client.get(run_id),
        lambda r: r.status in statuses,
        what=f"run {run_id} to be {'/'.join(s.value for s in statuses)}",
    )


async def wait_approval(client: podium.Client, run_id: str) -> list[podium.PendingApproval]:
    """Wait until the run has asked for an approval that has no decision yet."""
    return await eventually(
        lambda: client.pending_approvals(run_id),
        bool,
        what=f"run {run_id} to request an approval",
    )


@asynccontextmanager
async def workers_on(
    store_url: str, settings: podium.Settings, n: int = 2
) -> AsyncIterator[tuple[podium.Client, list[Worker]]]:
    """A control-plane client and ``n`` started workers on one database, each with a store of its own (on
    ``memory://``, the one store object they all share); the workers stop, and their stores close, on exit."""
    from podium.runtime import make_store

    shared = make_store(settings) if store_url == "memory://" else None
    stores = [shared or make_store(settings) for _ in range(n)]
    async with podium.Client(settings, store=stores[0], worker=False) as client:
        for s in stores[1:]:
            if s is not shared:
                await s.open()
        workers = [Worker(s, settings) for s in stores]
        for w in workers:
            await w.start()
        try:
            yield client, workers
        finally:
            for w in workers:
                await w.stop()
            for s in stores[1:]:
                if s is not shared:
                    await s.close()
