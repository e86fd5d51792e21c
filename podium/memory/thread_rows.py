"""Conversation threads' rows in the SQLite memory store (a part of ``SQLiteMemoryStore``)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager


class ThreadRows:
    """Messages and summaries of threads; mixed into ``SQLiteMemoryStore``, which provides the connection,
    its lock and write transactions."""

    db: sqlite3.Connection
    _lock: threading.RLock

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def append_messages(self, thread: str, batch: str, messages: Sequence[tuple[str, str, int]]) -> list[int]:
        """Append messages (role, content, tokens) to a thread as one contiguous block, once per ``batch``
        (a retried append with the same batch id writes nothing and returns the first sequence numbers)."""
        with self._tx() as db:
            old = [
                r[0]
                for r in db.execute(
                    "SELECT seq FROM mem_messages WHERE thread = ? AND batch = ? ORDER BY seq",
                    (thread, batch),
                )
            ]
            if old:
                return old
            last = db.execute("SELECT max(seq) FROM mem_messages WHERE thread = ?", (thread,)).fetchone()[0]
            start = 0 if last is None else last + 1
            now = time.time()
            db.executemany(
                "INSERT INTO mem_messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(thread, start + i, r, c, t, batch, now) for i, (r, c, t) in enumerate(messages)],
            )
            return list(range(start, start + len(messages)))

    def messages(self, thread: str, *, after: int = -1) -> list[tuple[int, str, str, int]]:
        with self._lock:
            return [
                (r[0], r[1], r[2], r[3])
                for r in self.db.execute(
                    "SELECT seq, role, content, tokens FROM mem_messages WHERE thread = ? AND seq > ? "
                    "ORDER BY seq",
                    (thread, after),
                )
            ]

    def summary(self, thread: str, model: str, upto: int) -> str | None:
        with self._lock:
            r = self.db.execute(
                "SELECT text FROM mem_summaries WHERE thread = ? AND model = ? AND upto = ?",
                (thread, model, upto),
            ).fetchone()
        return None if r is None else str(r[0])

    def latest_summary(self, thread: str, model: str, upto: int) -> tuple[int, str] | None:
        """The summary of the longest prefix of the thread up to ``upto`` that was summarised."""
        with self._lock:
            r = self.db.execute(
                "SELECT upto, text FROM mem_summaries WHERE thread = ? AND model = ? AND upto <= ? "
                "ORDER BY upto DESC LIMIT 1",
                (thread, model, upto),
            ).fetchone()
        return None if r is None else (int(r[0]), str(r[1]))

    def put_summary(self, thread: str, model: str, upto: int, text: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO mem_summaries VALUES (?, ?, ?, ?)", (thread, upto, model, text)
            )

    def threads(self, prefix: str = "") -> list[str]:
        with self._lock:
            rows = self.db.execute(
                "SELECT DISTINCT thread FROM mem_messages WHERE substr(thread, 1, ?) = ? ORDER BY thread",
                (len(prefix), prefix),
            ).fetchall()
        return [r[0] for r in rows]

    def delete_thread(self, thread: str) -> int:
        with self._tx() as db:
            n = db.execute("DELETE FROM mem_messages WHERE thread = ?", (thread,)).rowcount
            db.execute("DELETE FROM mem_summaries WHERE thread = ?", (thread,))
        return int(n)
