"""What only the PostgreSQL store has to show: migrations under concurrency, disjoint claims by several
processes' stores, a gap-free global feed while writers commit out of order, JSON kept exactly as SQLite
keeps it, and the configuration around it (URL, the extra, ``podium db migrate``).

The Store contract itself (tests/test_store_contract.py) and the engine suites run on PostgreSQL through
the ``postgres`` param of ``conftest.store_url``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PostgresSchemas

import podium
from podium.errors import ConfigError
from podium.runtime import make_store
from podium.storage.base import Event, Outcome, RunRecord, Transition, Write
from podium.storage.sqlite import SQLiteStore
from podium.types import RunStatus

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_000.0


@pytest.fixture
def fresh(postgres_schemas: PostgresSchemas) -> Iterator[str]:
    """A URL on a new schema that no store has migrated yet."""
    conn = postgres_schemas.admin()
    schema = f"m_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_schemas.url(schema)
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
async def pg(postgres_schemas: PostgresSchemas) -> AsyncIterator[Any]:
    schema = postgres_schemas.take()
    store = make_store(podium.Settings(database_url=postgres_schemas.url(schema)))
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        postgres_schemas.give_back(schema)


def record(run_id: str, *, flow: str = "f", input: Any = None, at: float = T0) -> tuple[RunRecord, Event]:
    run = RunRecord(id=run_id, flow=flow, status=RunStatus.PENDING, input=input, created_at=at, updated_at=at)
    return run, Event(run_id, "start", "", flow, {"input": input}, at)


async def test_stores_opening_at_once_apply_each_migration_once(fresh: str) -> None:
    from podium.storage.postgres import PostgresStore, migration_files

    stores = [PostgresStore(fresh) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        latest = migration_files()[-1][0]
        assert [s.version for s in stores] == [latest] * 4
        rows = await stores[0]._all("SELECT version, name FROM podium_migrations ORDER BY version")
        assert [r[0] for r in rows] == [n for n, _, _ in migration_files()]
        assert all(r[1].endswith(".postgres.sql") for r in rows)
    finally:
        await asyncio.gather(*(s.close() for s in stores))


def test_each_sqlite_migration_has_a_postgres_twin() -> None:
    names = os.listdir(ROOT / "podium" / "storage" / "migrations")
    sqlite = sorted(n.removesuffix(".sqlite.sql") for n in names if n.endswith(".sqlite.sql"))
    postgres = sorted(n.removesuffix(".postgres.sql") for n in names if n.endswith(".postgres.sql"))
    assert sqlite == postgres


async def test_concurrent_claims_take_disjoint_runs(postgres_schemas: PostgresSchemas) -> None:
    schema = postgres_schemas.take()
    url = postgres_schemas.url(schema)
    stores = [make_store(podium.Settings(database_url=url)) for _ in range(3)]  # three "processes"
    for s in stores:
        await s.open()
    try:
        await stores[0].create_runs([record(f"r{i:03}") for i in range(150)])

        async def drain(i: int) -> list[str]:
            got: list[str] = []
            while True:
                runs = await stores[i].claim(f"w{i}", ["f"], now=T0 + 1, lease_until=T0 + 60, limit=7)
                if not runs:
                    return got
                got += [r.id for r in runs]

        taken = await asyncio.gather(*(drain(i) for i in range(3)))
        flat = [r for t in taken for r in t]
        assert sorted(flat) == [f"r{i:03}" for i in range(150)]  # each run exactly once
        assert all(taken), "every claimer got some (SKIP LOCKED: none waits for another)"
    finally:
        for s in stores:
            await s.close()
        postgres_schemas.give_back(schema)


async def test_the_global_feed_never_skips_an_event_that_commits_late(pg: Any) -> None:
    """Writers draw seqs in one order and commit in another; a reader paging with ``after`` must still
    see every event (PostgreSQL sequences are not transactional)."""
    n_runs = 12
    await pg.create_runs([record(f"r{i}") for i in range(n_runs)])
    for i in range(n_runs):
        assert await pg.claim_run(f"r{i}", "w", now=T0 + 1, lease_until=T0 + 600) is not None
    seen: list[int] = []
    stop = asyncio.Event()

    async def reader() -> None:
        after = 0
        while True:
            done = stop.is_set()
            batch = await pg.events_after(after, limit=1000)
            seen.extend(e.seq for e in batch)
            if batch:
                after = batch[-1].seq
            elif done:
                return
            await asyncio.sleep(0)

    async def writer(i: int) -> None:
        for k in range(15):
            w = Write(f"r{i}", [Event(f"r{i}", "step", str(k), "s", {"result": k})])
            assert await pg.commit("w", [w], now=T0 + 2, lease_until=T0 + 600) == [Outcome.OK]

    task = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i) for i in range(n_runs)))
    stop.set()
    await task
    everything = [e.seq for e in await pg.events_after(0, limit=10_000)]
    assert len(everything) == n_runs * 16
    assert seen == everything  # in order, none skipped, none twice


@pytest.mark.parametrize(
    "value",
    [
        {"z": 1, "a": [1.5, 1e20, -0.0, 1e-7, 2.5e-300], "m": {"nested": {"b": None, "a": True}}},
        {"text": 'héllo \u0000 \n "quoted" 🎉', "big": 2**70, "neg": -(2**63)},
        [None, 0.1, 3.0, float("inf"), float("-inf")],
        None,
    ],
    ids=["floats-and-key-order", "strings-and-big-ints", "list", "none"],
)
async def test_json_round_trip_is_identical_to_sqlite(pg: Any, tmp_path: Path, value: Any) -> None:
    lite = SQLiteStore(tmp_path / "lite.db")
    await lite.open()
    try:
        for store in (pg, lite):
            run, first = record("r1", input=value)
            await store.create_run(run, first)
            await store.claim_run("r1", "w", now=T0 + 1, lease_until=T0 + 60)
            end = Event("r1", "end", "", None, {"status": "completed", "output": value})
            w = Write("r1", [end], transition=Transition.COMPLETE, output=value)
            assert await store.commit("w", [w], now=T0 + 2, lease_until=T0 + 60) == [Outcome.OK]
        a, b = await pg.get_run("r1"), await lite.get_run("r1")
        assert a is not None and b is not None
        assert json.dumps(a.input) == json.dumps(b.input) == json.dumps(value)  # same types, same key order
        assert json.dumps(a.output) == json.dumps(b.output)
        ea, eb = await pg.load_events("r1"), await lite.load_events("r1")
        assert [json.dumps(e.data) for e in ea] == [json.dumps(e.data) for e in eb]
    finally:
        await lite.close()


async def test_a_store_error_names_the_server_without_the_password() -> None:
    store = make_store(podium.Settings(database_url="postgresql://podium:s3cret@127.0.0.1:1/nowhere"))
    with pytest.raises(podium.StoreError) as info:
        await store.open()
    assert "cannot connect to PostgreSQL" in str(info.value) and "s3cret" not in str(info.value)


def test_postgres_urls_are_accepted_settings() -> None:
    for url in ("postgresql://u@h:5432/db", "postgres://u@h/db?sslmode=disable"):
        assert podium.Settings(database_url=url).database_url == url
    with pytest.raises(ConfigError, match="postgresql://"):
        podium.Settings(database_url="mysql://u@h/db")


def test_without_the_extra_the_error_names_the_install_command() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import podium\nfrom podium.runtime import make_store\n"
        "try:\n"
        "    make_store(podium.Settings(database_url='postgresql://u@h/db'))\n"
        "except podium.ConfigError as exc:\n"
        "    print(exc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "pip install podium[postgres]" in r.stdout


def test_podium_db_migrate(fresh: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from podium.cli import app
    from podium.storage.postgres import migration_files

    latest = migration_files()[-1][0]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for url in (fresh, fresh, f"sqlite:///{tmp_path}/podium.db"):  # twice: the second has nothing to do
        r = runner.invoke(app, ["db", "migrate"], env={"PODIUM_DATABASE_URL": url, "COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert f"schema version {latest}" in r.output
    r = runner.invoke(app, ["db", "migrate", "--db", "postgresql://u:pw@127.0.0.1:1/x"])
    assert r.exit_code == 1 and "cannot connect to PostgreSQL" in r.output
    assert "pw@" not in r.output
