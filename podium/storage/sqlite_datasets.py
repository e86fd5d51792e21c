"""Datasets, feedback and evaluation results in SQLite (the ``SQLiteStore`` part of them; tables of
migration 0009). JSON values are stored as text, as everywhere in the SQLite store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .base import DatasetRecord, EvalRecord, EvalResultRecord, FeedbackRecord, ItemRecord

FEEDBACK_COLS = (
    "id, run_id, step, kind, step_name, score, comment, original, correction, model, served_by, prompt, "
    "dataset, item_id, author, created_at"
)
EVAL_COLS = "id, dataset, dataset_version, flow, variants, scorers, status, created_at, finished_at, summary"
RESULT_COLS = "eval_id, variant, item_id, run_id, output, scores, cost, latency, error, created_at"
ITEM_COLS = "id, input, expected, metadata, source, version, created_at"
DATASET_SELECT = (
    "SELECT d.name, d.description, d.created_at, "
    "(SELECT COALESCE(MAX(version), 0) FROM dataset_items i WHERE i.dataset = d.name), "
    "(SELECT COUNT(DISTINCT id) FROM dataset_items i WHERE i.dataset = d.name) FROM datasets d"
)


def dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def feedback_params(f: FeedbackRecord) -> tuple[Any, ...]:
    return (
        f.id, f.run_id, f.step, f.kind, f.step_name, f.score, f.comment, dump(f.original),
        dump(f.correction), f.model, f.served_by, dump(f.prompt), f.dataset, f.item_id, f.author,
        f.created_at,
    )  # fmt: skip


def feedback_of(row: Sequence[Any]) -> FeedbackRecord:
    r = list(row)
    for i in (7, 8, 11):
        r[i] = load(r[i])
    return FeedbackRecord(*r)


def eval_params(e: EvalRecord) -> tuple[Any, ...]:
    return (
        e.id, e.dataset, e.dataset_version, e.flow, dump(e.variants), dump(e.scorers), e.status,
        e.created_at, e.finished_at, dump(e.summary),
    )  # fmt: skip


def eval_of(row: Sequence[Any]) -> EvalRecord:
    r = list(row)
    for i in (4, 5, 9):
        r[i] = load(r[i])
    return EvalRecord(*r)


def result_params(r: EvalResultRecord) -> tuple[Any, ...]:
    return (
        r.eval_id, r.variant, r.item_id, r.run_id, dump(r.output), dump(r.scores), r.cost, r.latency,
        r.error, r.created_at,
    )  # fmt: skip


def result_of(row: Sequence[Any]) -> EvalResultRecord:
    r = list(row)
    r[4], r[5] = load(r[4]), load(r[5])
    return EvalResultRecord(*r)


def item_of(row: Sequence[Any]) -> ItemRecord:
    return ItemRecord(row[0], load(row[1]), load(row[2]), load(row[3]) or {}, load(row[4]), row[5], row[6])


def latest(rows: Sequence[Sequence[Any]]) -> list[ItemRecord]:
    """The newest revision of each item, from revisions in version order, in first-added order."""
    found: dict[str, Sequence[Any]] = {}
    for row in rows:
        found[row[0]] = row  # a dict keeps the position of an item's first revision
    return [item_of(r) for r in found.values()]


class SQLiteDatasets:
    """The dataset, feedback and evaluation methods of ``SQLiteStore``."""

    if TYPE_CHECKING:

        @property
        def db(self) -> sqlite3.Connection: ...

        def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...

    async def dataset_create(self, dataset: DatasetRecord) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO datasets (name, description, created_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                (dataset.name, dataset.description, dataset.created_at),
            )
            return bool(cur.rowcount)

    async def dataset_get(self, name: str) -> DatasetRecord | None:
        row = self.db.execute(f"{DATASET_SELECT} WHERE d.name = ?", (name,)).fetchone()
        return None if row is None else DatasetRecord(*row)

    async def dataset_list(self) -> list[DatasetRecord]:
        return [DatasetRecord(*r) for r in self.db.execute(f"{DATASET_SELECT} ORDER BY d.name")]

    async def dataset_append(self, name: str, items: Sequence[ItemRecord], *, now: float) -> int | None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone() is None:
                return None
            version: int = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM dataset_items WHERE dataset = ?", (name,)
            ).fetchone()[0]
            rows = []
            for item in items:
                version += 1
                rows.append(
                    (name, version, item.id, dump(item.input), dump(item.expected), dump(item.metadata),
                     dump(item.source), now)
                )  # fmt: skip
            db.executemany(
                "INSERT INTO dataset_items (dataset, version, id, input, expected, metadata, source, "
                "created_at) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            return version

    async def dataset_items(self, name: str, *, version: int | None = None) -> list[ItemRecord]:
        rows = self.db.execute(
            f"SELECT {ITEM_COLS} FROM dataset_items WHERE dataset = ? AND version <= ? ORDER BY version",
            (name, 2**62 if version is None else version),
        ).fetchall()
        return latest(rows)

    async def feedback_add(self, feedback: FeedbackRecord) -> bool:
        with self._tx() as db:
            cur = db.execute(
                f"INSERT INTO feedback ({FEEDBACK_COLS}) VALUES ({','.join('?' * 16)}) "
                "ON CONFLICT DO NOTHING",
                feedback_params(feedback),
            )
            return bool(cur.rowcount)

    async def feedback_list(self, *, run_id: str | None = None, limit: int = 100) -> list[FeedbackRecord]:
        where, args = ("WHERE run_id = ? ", [run_id]) if run_id is not None else ("", [])
        rows = self.db.execute(
            f"SELECT {FEEDBACK_COLS} FROM feedback {where}ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [feedback_of(r) for r in rows]

    async def eval_put(self, record: EvalRecord) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO evals ({EVAL_COLS}) VALUES ({','.join('?' * 10)})",
                eval_params(record),
            )

    async def eval_get(self, eval_id: str) -> EvalRecord | None:
        row = self.db.execute(f"SELECT {EVAL_COLS} FROM evals WHERE id = ?", (eval_id,)).fetchone()
        return None if row is None else eval_of(row)

    async def eval_list(self, *, dataset: str | None = None, limit: int = 50) -> list[EvalRecord]:
        where, args = ("WHERE dataset = ? ", [dataset]) if dataset is not None else ("", [])
        rows = self.db.execute(
            f"SELECT {EVAL_COLS} FROM evals {where}ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [eval_of(r) for r in rows]

    async def eval_results_put(self, results: Sequence[EvalResultRecord]) -> None:
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO eval_results ({RESULT_COLS}) VALUES ({','.join('?' * 10)}) "
                "ON CONFLICT (eval_id, variant, item_id) DO UPDATE SET run_id = excluded.run_id, "
                "output = excluded.output, scores = excluded.scores, cost = excluded.cost, "
                "latency = excluded.latency, error = excluded.error, created_at = excluded.created_at",
                [result_params(r) for r in results],
            )

    async def eval_results(self, eval_id: str) -> list[EvalResultRecord]:
        rows = self.db.execute(
            f"SELECT {RESULT_COLS} FROM eval_results WHERE eval_id = ? ORDER BY variant, created_at, rowid",
            (eval_id,),
        )
        return [result_of(r) for r in rows]
