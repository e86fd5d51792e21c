"""Datasets, feedback and evaluation results kept in memory (the ``MemoryStore`` part of them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any, TypeVar

from .base import DatasetRecord, EvalRecord, EvalResultRecord, FeedbackRecord, ItemRecord

R = TypeVar("R", DatasetRecord, ItemRecord, FeedbackRecord, EvalRecord, EvalResultRecord)


def _copy(value: Any) -> Any:
    """A copy of a JSON value (callers may change what they get back without touching the store)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _clone(record: R) -> R:
    """A copy of a record whose JSON fields are copied too (much cheaper than ``copy.deepcopy``)."""
    return replace(record, **{f.name: _copy(getattr(record, f.name)) for f in fields(record)})


class MemoryDatasets:
    """The dataset, feedback and evaluation methods of ``MemoryStore``."""

    def _init_datasets(self) -> None:
        self._datasets: dict[str, DatasetRecord] = {}
        self._revisions: dict[str, list[ItemRecord]] = {}
        self._feedback: dict[str, FeedbackRecord] = {}
        self._evals: dict[str, EvalRecord] = {}
        self._eval_results: dict[tuple[str, str, str], EvalResultRecord] = {}

    async def dataset_create(self, dataset: DatasetRecord) -> bool:
        if dataset.name in self._datasets:
            return False
        self._datasets[dataset.name] = DatasetRecord(dataset.name, dataset.description, dataset.created_at)
        self._revisions[dataset.name] = []
        return True

    async def dataset_get(self, name: str) -> DatasetRecord | None:
        d = self._datasets.get(name)
        if d is None:
            return None
        revisions = self._revisions[name]
        items = len({r.id for r in revisions})
        return DatasetRecord(d.name, d.description, d.created_at, len(revisions), items)

    async def dataset_list(self) -> list[DatasetRecord]:
        out = []
        for name in sorted(self._datasets):
            d = await self.dataset_get(name)
            assert d is not None
            out.append(d)
        return out

    async def dataset_append(self, name: str, items: Sequence[ItemRecord], *, now: float) -> int | None:
        revisions = self._revisions.get(name)
        if revisions is None:
            return None
        for item in items:
            rev = _clone(item)
            rev.version, rev.created_at = len(revisions) + 1, now
            revisions.append(rev)
        return len(revisions)

    async def dataset_items(self, name: str, *, version: int | None = None) -> list[ItemRecord]:
        latest: dict[str, ItemRecord] = {}
        for rev in self._revisions.get(name, []):
            if version is None or rev.version <= version:
                latest[rev.id] = rev  # a dict keeps the position of an item's first revision
        return [_clone(r) for r in latest.values()]

    async def feedback_add(self, feedback: FeedbackRecord) -> bool:
        if feedback.id in self._feedback:
            return False
        self._feedback[feedback.id] = _clone(feedback)
        return True

    async def feedback_list(self, *, run_id: str | None = None, limit: int = 100) -> list[FeedbackRecord]:
        found = [f for f in self._feedback.values() if run_id is None or f.run_id == run_id]
        found.reverse()  # newest first; stable for equal times
        found.sort(key=lambda f: -f.created_at)
        return [_clone(f) for f in found[:limit]]

    async def eval_put(self, record: EvalRecord) -> None:
        self._evals[record.id] = _clone(record)

    async def eval_get(self, eval_id: str) -> EvalRecord | None:
        e = self._evals.get(eval_id)
        return None if e is None else _clone(e)

    async def eval_list(self, *, dataset: str | None = None, limit: int = 50) -> list[EvalRecord]:
        found = [e for e in self._evals.values() if dataset is None or e.dataset == dataset]
        found.reverse()
        found.sort(key=lambda e: -e.created_at)
        return [_clone(e) for e in found[:limit]]

    async def eval_results_put(self, results: Sequence[EvalResultRecord]) -> None:
        for r in results:
            self._eval_results[(r.eval_id, r.variant, r.item_id)] = _clone(r)

    async def eval_results(self, eval_id: str) -> list[EvalResultRecord]:
        found = [r for k, r in self._eval_results.items() if k[0] == eval_id]
        found.sort(key=lambda r: (r.variant, r.created_at))  # stable
        return [_clone(r) for r in found]
