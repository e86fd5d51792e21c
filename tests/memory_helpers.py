"""Helpers of the memory tests: settings with the hashing embedder, stores on SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import podium
from podium.memory import SQLiteMemoryStore, VectorStore
from podium.testing import HASH_EMBED_CONFIG


def open_store(url: str, **options: Any) -> VectorStore:
    """A memory store on ``url`` (``sqlite:///PATH`` or ``postgresql://``), opened directly (no registry)."""
    if url.startswith("postgresql://"):
        from podium.memory.postgres import PostgresMemoryStore

        return PostgresMemoryStore(url, **options)
    return SQLiteMemoryStore(url.removeprefix("sqlite:///"), **options)


def sql_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query run on the memory store's database by a connection of its own."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            return list(conn.execute(query).fetchall())
    import sqlite3

    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def hash_settings(path: Path | str, **memory: Any) -> podium.Settings:
    """Settings on a SQLite file (or a database URL) with the deterministic hashing embedder as
    ``embed``."""
    config: dict[str, Any] = {"models": {"embed": HASH_EMBED_CONFIG}}
    if memory:
        config["memory"] = memory
    return podium.Settings(
        database_url=path if isinstance(path, str) else f"sqlite:///{path}",
        poll_seconds=0.05,
        lease_seconds=2,
        config=config,
    )
