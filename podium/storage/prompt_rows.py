"""The prompt registry's rows in SQLite (mixed into ``SQLiteStore``; see ``Store.prompt_*``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from .base import PromptLabelRecord, PromptMove, PromptRecord

PROMPT_COLS = "name, version, hash, template, system, variables, model, params, metadata, created_at"
LABEL_COLS = "name, label, version, rev, updated_at"
MOVE_COLS = "name, label, from_version, to_version, rollback, at"


def prompt_row(row: Sequence[Any]) -> PromptRecord:
    return PromptRecord(
        name=row[0],
        version=row[1],
        hash=row[2],
        template=row[3],
        system=row[4],
        variables=json.loads(row[5]),
        model=row[6],
        params=json.loads(row[7]),
        metadata=json.loads(row[8]),
        created_at=row[9],
    )


def prompt_params(p: PromptRecord, version: int) -> tuple[Any, ...]:
    return (
        p.name,
        version,
        p.hash,
        p.template,
        p.system,
        json.dumps(list(p.variables)),
        p.model,
        json.dumps(p.params, ensure_ascii=False),
        json.dumps(p.metadata, ensure_ascii=False),
        p.created_at,
    )


def move_row(row: Sequence[Any]) -> PromptMove:
    return PromptMove(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


class SQLitePrompts:
    """``Store.prompt_*`` on the SQLite connection of the store it is mixed into."""

    @property
    def db(self) -> sqlite3.Connection:  # provided by SQLiteStore
        raise NotImplementedError

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:  # provided by SQLiteStore
        raise NotImplementedError

    async def prompt_push(self, prompt: PromptRecord) -> tuple[PromptRecord, bool]:
        with self._tx() as db:
            row = db.execute(
                f"SELECT {PROMPT_COLS} FROM prompt_versions WHERE name = ? AND hash = ?",
                (prompt.name, prompt.hash),
            ).fetchone()
            if row is not None:
                return prompt_row(row), False
            (latest,) = db.execute(
                "SELECT coalesce(max(version), 0) FROM prompt_versions WHERE name = ?", (prompt.name,)
            ).fetchone()
            params = prompt_params(prompt, latest + 1)
            db.execute(f"INSERT INTO prompt_versions ({PROMPT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)", params)
            return prompt_row(params), True

    async def prompt_get(self, name: str, version: int) -> PromptRecord | None:
        row = self.db.execute(
            f"SELECT {PROMPT_COLS} FROM prompt_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return None if row is None else prompt_row(row)

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        rows = self.db.execute(
            f"SELECT {PROMPT_COLS} FROM prompt_versions WHERE name = ? ORDER BY version", (name,)
        )
        return [prompt_row(r) for r in rows]

    async def prompt_latest(self) -> list[PromptRecord]:
        rows = self.db.execute(
            f"SELECT {PROMPT_COLS} FROM prompt_versions p WHERE version = "
            "(SELECT max(version) FROM prompt_versions q WHERE q.name = p.name) ORDER BY name"
        )
        return [prompt_row(r) for r in rows]

    async def prompt_labels(self, name: str) -> list[PromptLabelRecord]:
        rows = self.db.execute(
            f"SELECT {LABEL_COLS} FROM prompt_labels WHERE name = ? ORDER BY label", (name,)
        )
        return [PromptLabelRecord(*r) for r in rows]

    async def prompt_label(self, name: str, label: str) -> PromptLabelRecord | None:
        row = self.db.execute(
            f"SELECT {LABEL_COLS} FROM prompt_labels WHERE name = ? AND label = ?", (name, label)
        ).fetchone()
        return None if row is None else PromptLabelRecord(*row)

    async def prompt_move(
        self, name: str, label: str, version: int, *, now: float, rollback: bool = False
    ) -> PromptLabelRecord:
        with self._tx() as db:
            old = db.execute(
                "SELECT version, rev FROM prompt_labels WHERE name = ? AND label = ?", (name, label)
            ).fetchone()
            rev = 1 if old is None else old[1] + 1
            db.execute(
                f"INSERT INTO prompt_labels ({LABEL_COLS}) VALUES (?,?,?,?,?) ON CONFLICT (name, label) "
                "DO UPDATE SET version = excluded.version, rev = excluded.rev, "
                "updated_at = excluded.updated_at",
                (name, label, version, rev, now),
            )
            db.execute(
                f"INSERT INTO prompt_moves ({MOVE_COLS}) VALUES (?,?,?,?,?,?)",
                (name, label, None if old is None else old[0], version, int(rollback), now),
            )
            return PromptLabelRecord(name, label, version, rev, now)

    async def prompt_moves(self, name: str, label: str) -> list[PromptMove]:
        rows = self.db.execute(
            f"SELECT {MOVE_COLS} FROM prompt_moves WHERE name = ? AND label = ? ORDER BY id", (name, label)
        )
        return [move_row(r) for r in rows]

    async def prompt_split_put(self, name: str, arms: Mapping[str, int] | None, *, now: float) -> None:
        with self._tx() as db:
            if arms is None:
                db.execute("DELETE FROM prompt_splits WHERE name = ?", (name,))
            else:
                db.execute(
                    "INSERT INTO prompt_splits (name, arms, updated_at) VALUES (?,?,?) ON CONFLICT (name) "
                    "DO UPDATE SET arms = excluded.arms, updated_at = excluded.updated_at",
                    (name, json.dumps(dict(arms)), now),
                )

    async def prompt_split(self, name: str) -> dict[str, int] | None:
        row = self.db.execute("SELECT arms FROM prompt_splits WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))
