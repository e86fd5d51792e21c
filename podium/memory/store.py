"""The seam between the memory layer and its storage, and the process-wide store registry.

``VectorStore`` is the small protocol a backend implements: the embedded SQLite one
(``SQLiteMemoryStore``) and the PostgreSQL/pgvector one (``PostgresMemoryStore``); the memory tests'
contract suite runs against both.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..config import Settings
from ..errors import ConfigError
from .query import path_of
from .sqlite import ANN_MIN, SQLiteMemoryStore
from .types import Hit, Item, SpaceInfo


class VectorStore(Protocol):
    """What the memory layer needs from a store: spaces (collections and namespaces) of items with text,
    vectors and metadata; hybrid search; staged document ingestion; conversation threads."""

    def ensure_space(self, name: str, *, kind: str, model: str, dim: int) -> SpaceInfo: ...
    def require(self, name: str) -> tuple[int, str, str, int, int]: ...
    def info(self, name: str) -> SpaceInfo | None: ...
    def spaces(self, kind: str | None = None) -> list[SpaceInfo]: ...
    def delete_space(self, name: str) -> bool: ...
    def upsert(self, name: str, items: Sequence[Item], *, now: float | None = None) -> list[str]: ...
    def get(self, name: str, key: str, *, now: float | None = None) -> Hit | None: ...
    def keys(self, name: str, *, now: float | None = None) -> list[str]: ...
    def delete(self, name: str, keys: Sequence[str]) -> int: ...
    def purge_expired(self, *, now: float | None = None) -> int: ...
    def search(
        self,
        name: str,
        *,
        vector: Any = None,
        text: str | None = None,
        k: int = 10,
        filters: dict[str, Any] | None = None,
        now: float | None = None,
        candidates: int | None = None,
    ) -> list[Hit]: ...
    def cache_get(self, name: str, key: str) -> Any: ...
    def cache_put(self, name: str, key: str, vector: Any) -> None: ...
    def doc_hashes(self, name: str) -> dict[str, str]: ...
    def stage(self, run: str, doc: str, first: int, chunks: Iterable[tuple[str, dict[str, Any]]]) -> int: ...
    def unstage(self, run: str, doc: str | None = None) -> None: ...
    def staged_texts(self, run: str, doc: str, lo: int, hi: int) -> list[tuple[int, str]]: ...
    def stage_vectors(self, run: str, doc: str, name: str, rows: Sequence[tuple[int, Any]]) -> None: ...
    def commit_doc(
        self, name: str, run: str, doc: str, *, hash: str, source: str, now: float | None = None
    ) -> int: ...
    def remove_docs(self, name: str, docs: Sequence[str]) -> int: ...
    def append_messages(
        self, thread: str, batch: str, messages: Sequence[tuple[str, str, int]]
    ) -> list[int]: ...
    def messages(self, thread: str, *, after: int = -1) -> list[tuple[int, str, str, int]]: ...
    def latest_summary(self, thread: str, model: str, upto: int) -> tuple[int, str] | None: ...
    def put_summary(self, thread: str, model: str, upto: int, text: str) -> None: ...
    def threads(self, prefix: str = "") -> list[str]: ...
    def delete_thread(self, thread: str) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


_KEYS = {"url", "embed", "chunk_size", "overlap", "batch", "ann_min"}


def memory_config(settings: Settings) -> Mapping[str, Any]:
    """The ``[memory]`` table of ``podium.toml`` (validated): ``url`` (default: the run store's
    database), ``embed`` (the embedding model, default ``embed``), ``chunk_size``, ``overlap``, ``batch``,
    ``ann_min``."""
    section = settings.config.get("memory") or {}
    if not isinstance(section, Mapping):
        raise ConfigError("[memory] in podium.toml must be a table")
    unknown = set(section) - _KEYS
    if unknown:
        raise ConfigError(f"[memory]: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("chunk_size", "overlap", "batch", "ann_min"):
        if key in section and (not isinstance(section[key], int) or section[key] < 0):
            raise ConfigError(f"[memory] {key} must be a non-negative integer")
    return section


_STORES: dict[str, VectorStore] = {}
_LOCK = threading.Lock()


def store_for(settings: Settings) -> VectorStore:
    """The process's memory store on the settings' database (or ``[memory] url``), opened once: a
    ``postgresql://`` URL opens a ``PostgresMemoryStore`` (pgvector), ``sqlite:///PATH`` or ``memory://`` a
    ``SQLiteMemoryStore``."""
    section = memory_config(settings)
    url = str(section.get("url") or settings.database_url)
    if url.startswith(("postgresql://", "postgres://")):
        with _LOCK:
            store = _STORES.get(url)
            if store is None:
                from .postgres import PostgresMemoryStore  # psycopg only when a PostgreSQL URL is used

                options = {"ann_min": int(section["ann_min"])} if "ann_min" in section else {}
                store = _STORES[url] = PostgresMemoryStore(url, **options)
            return store
    ann_min = int(section.get("ann_min", ANN_MIN))
    path = path_of(url)
    key = path if path == ":memory:" else str(Path(path).resolve())
    with _LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = SQLiteMemoryStore(path, ann_min=ann_min)
        return store


def close_stores() -> None:
    """Close every memory store this process opened (saving ANN indexes that changed)."""
    with _LOCK:
        stores = list(_STORES.values())
        _STORES.clear()
    for s in stores:
        try:
            s.close()
        except Exception:
            pass


atexit.register(close_stores)
