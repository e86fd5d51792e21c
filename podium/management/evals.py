"""Evaluations: run a flow over a dataset under several variants, score every output, compare.

```python
report = await client.evaluate(
    "tickets", triage,
    variants={"v3": {"prompt:triage": "3"}, "v4": {"prompt:triage": "4"}},
    scorers=["exact", "judge:smart"], concurrency=8,
)
for v in report.variants:
    print(v.name, v.score, v.scores, v.cost, v.latency_p50)
```
Each item under each variant is one durable run of the flow, started with the idempotency key
``eval:<eval id>:<variant>:<item id>`` and the variant's run pins. An evaluation killed halfway resumes (same
dataset, flow, variants and scorers, or the same ``eval_id``) without running finished items again: their
results are stored, and runs in flight are found again by their keys. Results (scores, cost, latency per
item) and per-variant summaries are stored, so evaluations can be listed and compared over time.

A run that fails scores 0 on every scorer and counts as an error. A variant's ``score`` is the mean of its
scorers' means.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..engine.timeline import usage
from ..errors import NotFoundError, RunError, UsageError
from ..storage.base import EvalRecord, EvalResultRecord
from ..types import JSON, new_id
from ..workflow.flow import Flow, resolve_flow
from .datasets import DatasetItem
from .scorers import EmbeddingSimilarity, Scorer, as_scorer

if TYPE_CHECKING:
    from ..client import Client

FLUSH_ITEMS = 64
FLUSH_SECONDS = 0.5
"""Results are stored in batches (one transaction for up to ``FLUSH_ITEMS``, at least every ``FLUSH_SECONDS``
while items finish). A kill loses at most the last batch of *results*: those items' runs are finished and
found again by their keys, so resuming only scores them again; no step runs twice."""
BASE = "base"
"""The name of the one variant an evaluation without variants runs (no pins)."""
Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as items finish (and once at the start)."""


@dataclass(frozen=True, slots=True)
class Variant:
    """A named set of run pins (``{"prompt:triage": "3"}``, ``{"model:default": "smart"}``, ...)."""

    name: str
    pins: dict[str, str] = field(default_factory=dict)


def _pin(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not eq or not key or not value:
        raise UsageError(f"a pin is KEY=VALUE (e.g. prompt=triage@3, model=smart, arm=B), not {text!r}")
    if key == "prompt":  # prompt=triage@3 -> prompt:triage = 3 (a version or a label)
        name, at, ref = value.partition("@")
        if not at or not name or not ref:
            raise UsageError(f"expected prompt=NAME@VERSION or prompt=NAME@LABEL, not {text!r}")
        return f"prompt:{name}", ref
    if key == "model":
        return "model:default", value
    return key, value


def parse_variant(text: str) -> Variant:
    """``NAME=PIN,PIN``, just ``PIN,PIN`` (then the text names the variant), or just ``NAME`` (no pins: the
    baseline). A pin is ``prompt=NAME@V`` (pin ``prompt:NAME`` to version or label V), ``model=X``
    (``model:default``), or any ``KEY=VALUE``."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("a variant is NAME=PIN,PIN (e.g. v3=prompt=triage@3) or PIN,PIN")
    if "=" not in text:  # just a name: a variant without pins (the baseline)
        return Variant(text.strip())
    head, eq, rest = text.partition("=")
    if eq and rest and head and head not in ("prompt", "model") and ":" not in head and "=" in rest:
        name, pins = head.strip(), rest
    else:
        name, pins = text.strip(), text
    return Variant(name, dict(_pin(p) for p in pins.split(",") if p.strip()))


def _variants(value: Any) -> list[Variant]:
    if value is None:
        return [Variant(BASE)]
    if isinstance(value, Mapping):
        items = [
            Variant(str(k), {str(a): str(b) for a, b in dict(v or {}).items()}) for k, v in value.items()
        ]
    elif isinstance(value, str):
        items = [parse_variant(value)]
    else:
        items = [v if isinstance(v, Variant) else parse_variant(v) for v in value]
    if not items:
        return [Variant(BASE)]
    names = [v.name for v in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"variant names must differ: {', '.join(dup)} given twice")
    return items


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item under one variant: its run, output, scores, dollars, seconds and error (if it failed)."""

    variant: str
    item_id: str
    run_id: str | None
    output: JSON
    scores: dict[str, float | None]
    cost: float
    latency: float
    error: str | None

    @classmethod
    def _of(cls, r: EvalResultRecord) -> ItemResult:
        return cls(r.variant, r.item_id, r.run_id, r.output, r.scores, r.cost, r.latency, r.error)


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """A variant's aggregates: mean per scorer (None: no item applied), ``score`` (mean of those),
    errors, total dollars and latency percentiles (seconds)."""

    name: str
    pins: dict[str, str]
    items: int
    scores: dict[str, float | None]
    score: float | None
    errors: int
    cost: float
    latency_p50: float
    latency_p90: float

    def to_json(self) -> dict[str, Any]:
        return {
            "pins": self.pins, "items": self.items, "scores": self.scores, "score": self.score,
            "errors": self.errors, "cost": self.cost, "latency_p50": self.latency_p50,
            "latency_p90": self.latency_p90,
        }  # fmt: skip

    @classmethod
    def from_json(cls, name: str, d: Mapping[str, Any]) -> VariantSummary:
        return cls(
            name, dict(d.get("pins") or {}), int(d.get("items", 0)), dict(d.get("scores") or {}),
            d.get("score"), int(d.get("errors", 0)), float(d.get("cost", 0.0)),
            float(d.get("latency_p50", 0.0)), float(d.get("latency_p90", 0.0)),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EvalReport:
    """An evaluation: what ran (dataset version, flow, scorers), per-variant summaries and, when loaded
    with them, every item's result."""

    id: str
    dataset: str
    dataset_version: int
    flow: str
    scorers: list[str]
    status: str
    created_at: float
    finished_at: float | None
    variants: list[VariantSummary]
    results: list[ItemResult] = field(default_factory=list)

    def variant(self, name: str) -> VariantSummary:
        for v in self.variants:
            if v.name == name:
                return v
        raise UsageError(f"evaluation {self.id} has no variant {name!r}")

    def failing(self, threshold: float) -> list[VariantSummary]:
        """Variants whose ``score`` is below ``threshold`` (or that have no score)."""
        return [v for v in self.variants if v.score is None or v.score < threshold]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values`` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(
    variant: Variant, scorers: Sequence[str], results: Sequence[EvalResultRecord]
) -> VariantSummary:
    """A variant's aggregates from its items' results."""
    means: dict[str, float | None] = {}
    for s in scorers:
        vals = [v for r in results if (v := r.scores.get(s)) is not None]
        means[s] = sum(vals) / len(vals) if vals else None
    known = [m for m in means.values() if m is not None]
    latencies = [r.latency for r in results if r.error is None]
    return VariantSummary(
        variant.name, variant.pins, len(results), means, sum(known) / len(known) if known else None,
        sum(1 for r in results if r.error is not None), sum(r.cost for r in results),
        percentile(latencies, 50), percentile(latencies, 90),
    )  # fmt: skip


def _report(rec: EvalRecord, results: Sequence[EvalResultRecord] | None) -> EvalReport:
    summary = rec.summary if isinstance(rec.summary, dict) else {}
    if results is not None:
        variants = [
            summarize(Variant(n, p), rec.scorers, [r for r in results if r.variant == n])
            for n, p in rec.variants.items()
        ]
    else:
        variants = [
            VariantSummary.from_json(n, summary.get(n) or {"pins": p}) for n, p in rec.variants.items()
        ]
    return EvalReport(
        rec.id, rec.dataset, rec.dataset_version, rec.flow, list(rec.scorers), rec.status, rec.created_at,
        rec.finished_at, variants, [ItemResult._of(r) for r in results or ()],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    """An item whose score moved between two evaluations (``before`` and ``after``: the mean of its
    scores, 0 for a failed run; None when no scorer applied)."""

    variant: str
    item_id: str
    before: float | None
    after: float | None


def _item_score(r: ItemResult) -> float | None:
    vals = [v for v in r.scores.values() if v is not None]
    return sum(vals) / len(vals) if vals else None


def compare(
    before: EvalReport, after: EvalReport, *, variants: Mapping[str, str] | None = None
) -> list[Change]:
    """Items in both evaluations (loaded with their results) whose score differs, worst drop first.

    Variants are matched by name, or by ``variants`` (``{after's name: before's name}``) — e.g. to compare
    the ``v4`` of today with the ``v3`` of last week."""
    pairs = dict(variants or {v.name: v.name for v in after.variants})
    old = {(r.variant, r.item_id): _item_score(r) for r in before.results}
    out = []
    for r in after.results:
        if r.variant not in pairs:
            continue
        key = (pairs[r.variant], r.item_id)
        if key not in old:  # a new variant or a new item: nothing to compare with
            continue
        was, now = old[key], _item_score(r)
        if was != now:
            out.append(Change(r.variant, r.item_id, was, now))
    out.sort(key=lambda c: ((c.after or 0.0) - (c.before or 0.0), c.variant, c.item_id))
    return out


async def get_eval(client: Client, eval_id: str) -> EvalReport:
    """An evaluation with every item's result; ``NotFoundError`` if there is none."""
    client._check_open()
    rec = await client.store.eval_get(eval_id)
    if rec is None:
        raise NotFoundError(f"no evaluation with id {eval_id!r} (see podium eval list)")
    return _report(rec, await client.store.eval_results(eval_id))


async def list_evals(client: Client, *, dataset: str | None = None, limit: int = 50) -> list[EvalReport]:
    """Evaluations, newest first, with their per-variant summaries (without item results)."""
    client._check_open()
    if not 1 <= limit <= 1000:
        raise UsageError("limit must be between 1 and 1000")
    return [_report(r, None) for r in await client.store.eval_list(dataset=dataset, limit=limit)]


class _Runner:
    """One evaluation's work: items under variants, at most ``concurrency`` at once, their runs started in
    batches (one transaction for the runs of the slots that came free together)."""

    def __init__(
        self,
        client: Client,
        rec: EvalRecord,
        fl: Flow[Any, Any],
        scorers: list[Scorer],
        progress: Progress | None,
    ) -> None:
        self.client, self.rec, self.flow, self.scorers, self.progress = client, rec, fl, scorers, progress
        self.models = _models(client)
        self.done = 0
        self.total = 0
        self.pending: list[EvalResultRecord] = []
        self.flushed = time.monotonic()

    async def flush(self) -> None:
        """Store the results gathered so far, in one transaction."""
        batch, self.pending = self.pending, []
        self.flushed = time.monotonic()
        if batch:
            await self.client.store.eval_results_put(batch)

    async def start(self, batch: list[tuple[Variant, DatasetItem]]) -> list[asyncio.Task[None]]:
        """Start the batch's runs in one transaction (``start_many``: one commit for all); a task per item
        that waits for its run and scores it. An input that does not fit the flow fails its item only."""
        ok: list[tuple[Variant, DatasetItem]] = []
        bad: list[tuple[Variant, DatasetItem, str]] = []
        for variant, item in batch:
            try:
                self.flow.validate_input(item.input)
            except UsageError as exc:
                bad.append((variant, item, f"{type(exc).__name__}: {exc}"))
            else:
                ok.append((variant, item))
        handles = []
        if ok:
            handles = await self.client.start_many(
                [(self.flow, i.input, f"eval:{self.rec.id}:{v.name}:{i.id}", v.pins or None) for v, i in ok]
            )
        tasks = [
            asyncio.ensure_future(self.finish(v, i, h.id, None))
            for (v, i), h in zip(ok, handles, strict=True)
        ]
        tasks.extend(asyncio.ensure_future(self.finish(v, i, None, error)) for v, i, error in bad)
        return tasks

    async def finish(
        self, variant: Variant, item: DatasetItem, run_id: str | None, error: str | None
    ) -> None:
        """Wait for the item's run, score its output, keep the result (stored with the next batch)."""
        client = self.client
        output: JSON = None
        cost = latency = 0.0
        if run_id is not None:
            try:
                await client.result(run_id)
            except RunError:
                pass
            run = await client.store.get_run(run_id)
            assert run is not None
            cost = usage(await client.store.load_events(run_id)).cost
            latency = max(0.0, (run.ended_at or client.clock()) - run.created_at)
            if run.status.value == "completed":
                output = run.output
            else:
                err = run.error or {}
                error = f"{err.get('type', run.status.value)}: {err.get('message', '')}".rstrip(": ")
        scores: dict[str, float | None] = {}
        for s in self.scorers:
            if error is not None:
                scores[s.name] = 0.0
                continue
            try:
                scores[s.name] = await s.score(output, item, self.models)
            except UsageError:
                raise
            except Exception as exc:  # a judge that timed out: this score is missing, the eval goes on
                scores[s.name] = None
                error = f"scorer {s.name}: {type(exc).__name__}: {exc}"
        self.pending.append(
            EvalResultRecord(
                self.rec.id,
                variant.name,
                item.id,
                run_id,
                output,
                scores,
                cost,
                latency,
                error,
                client.clock(),
            )
        )
        if len(self.pending) >= FLUSH_ITEMS or time.monotonic() - self.flushed >= FLUSH_SECONDS:
            await self.flush()
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _models(client: Client) -> Any:
    """The models scorers may call: the worker's, or those the settings configure."""
    if client.worker is not None:
        return client.worker.models
    from ..models.registry import Models

    return Models.from_config(client.settings.config)


def _check_models(scorers: list[Scorer], models: Any) -> None:
    """Judges and embedding scorers name models that exist (before any run starts)."""
    for s in scorers:
        model = getattr(s, "model", None)
        if isinstance(model, str):
            spec = models.spec(model)  # UnknownModelError names the configured ones
            if isinstance(s, EmbeddingSimilarity) and spec.kind != "embedding":
                raise UsageError(f"scorer {s.name}: model {model!r} is not an embedding model")


async def _find(
    client: Client, dataset: str, version: int, flow: str, variants: list[Variant], scorers: list[str]
) -> EvalRecord | None:
    """An unfinished evaluation of the same dataset version, flow, variants and scorers (to resume)."""
    pins = {v.name: v.pins for v in variants}
    for rec in await client.store.eval_list(dataset=dataset, limit=20):
        same = (rec.flow, rec.dataset_version, rec.variants, rec.scorers) == (flow, version, pins, scorers)
        if rec.status == "running" and same:
            return rec
    return None


async def evaluate(
    client: Client,
    dataset: str,
    flow: Flow[Any, Any] | str,
    *,
    variants: Mapping[str, Mapping[str, str]] | Iterable[Variant | str] | str | None = None,
    scorers: Iterable[Any] = ("exact",),
    concurrency: int = 8,
    eval_id: str | None = None,
    resume: bool = True,
    version: int | None = None,
    progress: Progress | None = None,
    load: Callable[[str], ModuleType] | None = None,
) -> EvalReport:
    """Run ``flow`` on every item of ``dataset`` (at ``version``, default the latest) under each variant
    (default: one, ``base``, without pins), score the outputs and store the results.

    ``variants``: ``{"name": {pin: value}}``, ``Variant``s or ``"NAME=PIN,PIN"`` strings (see
    ``parse_variant``). ``scorers``: spec strings, ``Scorer`` objects or functions (``podium.management.
    scorers``). ``eval_id`` names the evaluation (to resume it); otherwise, with ``resume``, an unfinished
    evaluation of the same dataset version, flow, variants and scorers is resumed.
    """
    client._check_open()
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be a positive integer, not {concurrency!r}")
    fl = resolve_flow(flow)
    vs = _variants(variants)
    objs = [as_scorer(s, load=load) for s in scorers]
    if not objs:
        raise UsageError("an evaluation needs at least one scorer (e.g. exact)")
    _check_models(objs, _models(client))
    names = [s.name for s in objs]
    if len(set(names)) != len(names):
        raise UsageError(f"scorer names must differ: {', '.join(names)}")
    ds = await client.datasets.get(dataset)
    rec = await client.store.eval_get(eval_id) if eval_id is not None else None
    if rec is not None:
        if (rec.dataset, rec.flow) != (dataset, fl.name):
            raise UsageError(f"evaluation {eval_id} ran flow {rec.flow!r} on dataset {rec.dataset!r}")
        vs = [Variant(n, p) for n, p in rec.variants.items()]
        if rec.scorers != names:
            raise UsageError(f"evaluation {eval_id} used scorers {', '.join(rec.scorers)}")
    else:
        at = ds.version if version is None else version
        if not 0 <= at <= ds.version:
            raise UsageError(f"dataset {dataset!r} has versions 0 to {ds.version}, not {at}")
        if eval_id is None and resume:
            rec = await _find(client, dataset, at, fl.name, vs, names)
        if rec is None:
            rec = EvalRecord(
                eval_id or new_id(), dataset, at, fl.name, {v.name: v.pins for v in vs}, names,
                created_at=client.clock(),
            )  # fmt: skip
            await client.store.eval_put(rec)
    items = await client.datasets.items(dataset, version=rec.dataset_version)
    if not items:
        raise UsageError(f"dataset {dataset!r} has no items at version {rec.dataset_version}")
    finished = {(r.variant, r.item_id) for r in await client.store.eval_results(rec.id)}
    runner = _Runner(client, rec, fl, objs, progress)
    todo = [(v, i) for v in vs for i in items if (v.name, i.id) not in finished]
    runner.total = len(vs) * len(items)
    runner.done = runner.total - len(todo)
    if progress is not None:
        progress(runner.done, runner.total)
    waiting = collections.deque(todo)
    in_flight: set[asyncio.Task[None]] = set()
    try:
        while waiting or in_flight:  # keep `concurrency` items in flight; start the free slots' runs at once
            room = min(concurrency - len(in_flight), len(waiting))
            if room > 0:
                in_flight.update(await runner.start([waiting.popleft() for _ in range(room)]))
            done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            failed = [exc for task in done if (exc := task.exception()) is not None]  # each one retrieved
            if failed:
                raise failed[0]  # a scorer's UsageError ends the evaluation
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await runner.flush()
    results = await client.store.eval_results(rec.id)
    report = _report(rec, results)
    rec.status, rec.finished_at = "finished", client.clock()
    rec.summary = {v.name: v.to_json() for v in report.variants}
    await client.store.eval_put(rec)
    return _report(rec, results)
