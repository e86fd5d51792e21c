"""Persistence: the Store protocol and its implementations."""

from .base import Event, Outcome, RunRecord, Store, Transition, Write
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["Event", "MemoryStore", "Outcome", "RunRecord", "SQLiteStore", "Store", "Transition", "Write"]
