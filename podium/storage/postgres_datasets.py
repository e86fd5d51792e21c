"""Datasets, feedback and evaluation results in PostgreSQL (the ``PostgresStore`` part of them; tables of
migration 0009). Statement for statement the semantics of ``podium.storage.sqlite_datasets``."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from .base import DatasetRecord, EvalRecord, EvalResultRecord, FeedbackRecord, ItemRecord
from .sqlite_datasets import (
    DATASET_SELECT,
    EVAL_COLS,
    FEEDBACK_COLS,
    ITEM_COLS,
    RESULT_COLS,
    dump,
    eval_of,
    eval_params,
    feedback_of,
    feedback_params,
    latest,
    result_of,
    result_params,
)

if TYPE_CHECKING:
    import psycopg


def _marks(n: int) -> str:
    return ",".join(["%s"] * n)


class PostgresDatasets:
    """The dataset, feedback and evaluation methods of ``PostgresStore``."""

    if TYPE_CHECKING:

        def _conn(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]: ...

        async def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None: ...

        async def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]: ...

    async def dataset_create(self, dataset: DatasetRecord) -> bool:
        row = await self._one(
            "INSERT INTO datasets (name, description, created_at) VALUES (%s,%s,%s) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            (dataset.name, dataset.description, dataset.created_at),
        )
        return row is not None

    async def dataset_get(self, name: str) -> DatasetRecord | None:
        row = await self._one(f"{DATASET_SELECT} WHERE d.name = %s", (name,))
        return None if row is None else DatasetRecord(*row)

    async def dataset_list(self) -> list[DatasetRecord]:
        return [DatasetRecord(*r) for r in await self._all(f"{DATASET_SELECT} ORDER BY d.name")]

    async def dataset_append(self, name: str, items: Sequence[ItemRecord], *, now: float) -> int | None:
        async with self._conn() as conn, conn.transaction():
            # The dataset's row lock orders concurrent appends: versions are dense and unique.
            cur = await conn.execute("SELECT 1 FROM datasets WHERE name = %s FOR UPDATE", (name,))
            if await cur.fetchone() is None:
                return None
            cur = await conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM dataset_items WHERE dataset = %s", (name,)
            )
            row = await cur.fetchone()
            version = int(row[0]) if row is not None else 0
            rows = []
            for item in items:
                version += 1
                rows.append(
                    (name, version, item.id, dump(item.input), dump(item.expected), dump(item.metadata),
                     dump(item.source), now)
                )  # fmt: skip
            async with conn.cursor() as c:
                await c.executemany(
                    "INSERT INTO dataset_items (dataset, version, id, input, expected, metadata, source, "
                    f"created_at) VALUES ({_marks(8)})",
                    rows,
                )
            return version

    async def dataset_items(self, name: str, *, version: int | None = None) -> list[ItemRecord]:
        rows = await self._all(
            f"SELECT {ITEM_COLS} FROM dataset_items WHERE dataset = %s AND version <= %s ORDER BY version",
            (name, 2**62 if version is None else version),
        )
        return latest(rows)

    async def feedback_add(self, feedback: FeedbackRecord) -> bool:
        row = await self._one(
            f"INSERT INTO feedback ({FEEDBACK_COLS}) VALUES ({_marks(16)}) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            feedback_params(feedback),
        )
        return row is not None

    async def feedback_list(self, *, run_id: str | None = None, limit: int = 100) -> list[FeedbackRecord]:
        where, args = ("WHERE run_id = %s ", [run_id]) if run_id is not None else ("", [])
        rows = await self._all(
            f"SELECT {FEEDBACK_COLS} FROM feedback {where}ORDER BY created_at DESC, id DESC LIMIT %s",
            (*args, limit),
        )
        return [feedback_of(r) for r in rows]

    async def eval_put(self, record: EvalRecord) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in EVAL_COLS.split(", ")[1:])
        await self._one(
            f"INSERT INTO evals ({EVAL_COLS}) VALUES ({_marks(10)}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates} RETURNING 1",
            eval_params(record),
        )

    async def eval_get(self, eval_id: str) -> EvalRecord | None:
        row = await self._one(f"SELECT {EVAL_COLS} FROM evals WHERE id = %s", (eval_id,))
        return None if row is None else eval_of(row)

    async def eval_list(self, *, dataset: str | None = None, limit: int = 50) -> list[EvalRecord]:
        where, args = ("WHERE dataset = %s ", [dataset]) if dataset is not None else ("", [])
        rows = await self._all(
            f"SELECT {EVAL_COLS} FROM evals {where}ORDER BY created_at DESC, id DESC LIMIT %s", (*args, limit)
        )
        return [eval_of(r) for r in rows]

    async def eval_results_put(self, results: Sequence[EvalResultRecord]) -> None:
        if not results:
            return
        updates = ", ".join(f"{c} = excluded.{c}" for c in RESULT_COLS.split(", ")[3:])
        async with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO eval_results ({RESULT_COLS}) VALUES ({_marks(10)}) "
                f"ON CONFLICT (eval_id, variant, item_id) DO UPDATE SET {updates}",
                [result_params(r) for r in results],
            )

    async def eval_results(self, eval_id: str) -> list[EvalResultRecord]:
        rows = await self._all(
            f"SELECT {RESULT_COLS} FROM eval_results WHERE eval_id = %s "
            "ORDER BY variant, created_at, item_id",
            (eval_id,),
        )
        return [result_of(r) for r in rows]
