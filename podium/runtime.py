"""Wiring: settings to concrete parts. The one place that picks a store class."""

from __future__ import annotations

from .config import Settings
from .storage.base import Store
from .storage.memory import MemoryStore
from .storage.sqlite import SQLiteStore


def make_store(settings: Settings) -> Store:
    """The store named by ``settings.database_url``."""
    url = settings.database_url
    if url.startswith("memory://"):
        return MemoryStore()
    return SQLiteStore.from_url(url)


def scratch_store() -> Store:
    """A throwaway store that keeps step results in JSON form, as a durable store does (for replays)."""
    return MemoryStore(json_results=True)
