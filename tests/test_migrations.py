"""Numbered migrations: a migration missing from a database runs, whatever its number (branches developed side
by side land numbers out of order), and never twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from podium.storage.postgres import PostgresStore
from podium.storage.sqlite import SQLiteStore


async def test_sqlite_runs_a_migration_it_missed_and_none_twice(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = SQLiteStore(path)
    await store.open()
    latest = store.version
    await store.close()
    # A database that missed migration 9 (say it was made on a branch that jumped to a later number).
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TABLE feedback")
        db.execute("DELETE FROM podium_migrations WHERE version = 9")
    db.close()
    store = SQLiteStore(path)
    await store.open()
    assert store.version == latest
    await store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM feedback").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM podium_migrations WHERE version = 9").fetchone() == (1,)
    db.close()


async def test_a_database_from_before_the_migrations_table_counts_user_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TABLE podium_migrations")  # as a database made before the table existed
    db.close()
    store = SQLiteStore(path)
    await store.open()  # must not run migration 1 again (its CREATE TABLE would fail)
    await store.close()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_postgres_runs_a_migration_it_missed(store_url: str) -> None:
    import psycopg

    store = PostgresStore(store_url)
    await store.open()
    latest = store.version
    await store.close()
    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute("DROP TABLE feedback")
        conn.execute("DELETE FROM podium_migrations WHERE version = 9")
    store = PostgresStore(store_url)
    await store.open()
    assert store.version == latest
    await store.close()
    with psycopg.connect(store_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (0,)
