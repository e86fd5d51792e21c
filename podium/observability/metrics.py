"""Prometheus metrics of runs, steps and model calls, in a registry of their own.

| metric | type | labels |
|---|---|---|
| ``podium_runs_started_total`` | counter | ``flow`` (a run's first execution, once per run) |
| ``podium_runs_finished_total`` | counter | ``flow``, ``status`` (``completed``, ``failed``, ``cancelled``) |
| ``podium_run_duration_seconds`` | histogram | ``flow``, ``status`` (creation to end, waits included) |
| ``podium_steps_total`` | counter | ``flow``, ``step``, ``status`` (``ok``, ``failed``) |
| ``podium_step_duration_seconds`` | histogram | ``flow``, ``step`` (retries and their delays included) |
| ``podium_step_retries_total`` | counter | ``flow``, ``step`` |
| ``podium_model_calls_total`` | counter | ``model`` |
| ``podium_model_cache_hits_total`` | counter | ``model`` |
| ``podium_model_tokens_total`` | counter | ``model``, ``direction`` (``input``, ``output``; no cache hits) |
| ``podium_model_cost_usd_total`` | counter | ``model`` |
| ``podium_runs_unfinished`` | gauge | ``flow``, ``status`` (``pending``, ``running``, ``waiting``) |

Counters and histograms count what *this process* did (Prometheus sums the workers). The unfinished runs are
not counted from events, which no single process sees all of: a collector asks the store at each scrape
(``MetricsObserver(store=...)`` or ``watch(store)``), so every worker reports the same, whole-system figure.

```python
metrics = MetricsObserver()
client = podium.Client(settings, observers=[metrics])
body, content_type = render_metrics(metrics.registry)       # what GET /metrics answers
```
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from ..hooks import EngineEvent, Observer
from ..storage.base import Store
from ..types import RunStatus

__all__ = ["MetricsObserver", "RunStateCollector", "find_metrics", "render_metrics", "serve_metrics"]

log = logging.getLogger("podium.metrics")

STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
RUN_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING)


def render_metrics(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The registry in Prometheus' text format (or OpenMetrics, if ``accept`` asks for it): the body and
    content type of a ``GET /metrics`` answer.

    The unfinished-runs collector queries the store on the store's event loop; called *on* that loop (an
    async route), it shows the figure of the previous scrape. Call it in a thread there
    (``await asyncio.to_thread(render_metrics, registry)``) or ``await metrics.refresh()`` first.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class RunStateCollector(Collector):
    """``podium_runs_unfinished{flow,status}``: runs pending, running and waiting, counted in the store.

    Counting pages through ``Store.list_runs`` (the store protocol has no count query), so a scrape costs
    time in proportion to the unfinished runs; ``limit`` caps the rows read per status."""

    def __init__(
        self,
        store: Store,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        timeout: float = 5.0,
        limit: int = 100_000,
    ) -> None:
        self.store = store
        self.loop = loop
        self.timeout = timeout
        self.limit = limit
        self.counts: dict[tuple[str, str], int] = {}

    async def refresh(self) -> None:
        """Count now (on the store's loop)."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        counts: dict[tuple[str, str], int] = {}
        for status in UNFINISHED:
            before, seen = None, 0
            while seen < self.limit:
                page = await self.store.list_runs(status=[status], limit=1000, before=before)
                for r in page:
                    counts[r.flow, status.value] = counts.get((r.flow, status.value), 0) + 1
                seen += len(page)
                if len(page) < 1000:
                    break
                before = page[-1].id
        self.counts = counts

    def _update(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # cannot wait for our own loop: keep the previous figures
            return
        try:
            asyncio.run_coroutine_threadsafe(self.refresh(), loop).result(self.timeout)
        except Exception as exc:
            log.warning("podium_runs_unfinished: counting runs in the store failed: %r", exc)

    def describe(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "podium_runs_unfinished", "Runs not finished, by flow and status", labels=["flow", "status"]
        )

    def collect(self) -> Iterable[Metric]:
        self._update()
        family = GaugeMetricFamily(
            "podium_runs_unfinished",
            "Runs not finished (pending, running, waiting), counted in the store at scrape time",
            labels=["flow", "status"],
        )
        for (flow, status), n in sorted(self.counts.items()):
            family.add_metric([flow, status], n)
        yield family


class MetricsObserver:
    """An ``Observer`` that keeps Prometheus metrics in ``self.registry`` (its own ``CollectorRegistry``,
    never the global one). ``store`` (or a later ``watch(store)``) adds ``podium_runs_unfinished``;
    ``process=True`` adds the process and Python metrics of ``prometheus_client``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        store: Store | None = None,
        process: bool = False,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.runs_started = Counter("podium_runs_started", "Runs started", ["flow"], registry=r)
        self.runs_finished = Counter(
            "podium_runs_finished", "Runs finished, by final status", ["flow", "status"], registry=r
        )
        self.run_duration = Histogram(
            "podium_run_duration_seconds",
            "Run duration from creation to end (waits included)",
            ["flow", "status"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.steps = Counter("podium_steps", "Steps executed", ["flow", "step", "status"], registry=r)
        self.step_duration = Histogram(
            "podium_step_duration_seconds",
            "Step latency, from its first attempt's start to its end",
            ["flow", "step"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.step_retries = Counter(
            "podium_step_retries", "Failed attempts retried", ["flow", "step"], registry=r
        )
        self.model_calls = Counter("podium_model_calls", "Model and embedding calls", ["model"], registry=r)
        self.cache_hits = Counter(
            "podium_model_cache_hits", "Model calls answered from the response cache", ["model"], registry=r
        )
        self.tokens = Counter("podium_model_tokens", "Model tokens", ["model", "direction"], registry=r)
        self.cost = Counter("podium_model_cost_usd", "Model spending in US dollars", ["model"], registry=r)
        self._step_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.collector: RunStateCollector | None = None
        if store is not None:
            self.watch(store)
        if process:
            from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

    def watch(self, store: Store, *, loop: asyncio.AbstractEventLoop | None = None) -> RunStateCollector:
        """Report ``podium_runs_unfinished`` from ``store``, queried on ``loop`` (default: the running loop,
        else the loop of the first event observed)."""
        if self.collector is None:
            if loop is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    loop = None
            self.collector = RunStateCollector(store, loop=loop)
            self.registry.register(self.collector)
        return self.collector

    async def refresh(self) -> None:
        """Count the unfinished runs now; for a scrape served on the store's own loop."""
        if self.collector is not None:
            await self.collector.refresh()

    def observe(self, event: EngineEvent) -> None:
        kind, flow = event.kind, event.flow
        if kind == "step.ended":
            key = (flow, event.name, event.status)
            children = self._step_children.get(key)
            if children is None:  # labels() costs microseconds: look each combination up once
                children = (self.steps.labels(*key), self.step_duration.labels(flow, event.name))
                self._step_children[key] = children
            children[0].inc()
            if event.duration is not None:
                children[1].observe(event.duration)
            if event.data:
                self._model(event.data)
        elif kind == "step.retrying":
            self.step_retries.labels(flow, event.name).inc()
        elif kind == "run.claimed":
            if event.attempt <= 1:  # the run's first claim
                self.runs_started.labels(flow).inc()
            if self.collector is not None and self.collector.loop is None:
                try:
                    self.collector.loop = asyncio.get_running_loop()
                except RuntimeError:
                    pass
        elif kind == "run.ended" and event.status in ("completed", "failed", "cancelled"):
            self.runs_finished.labels(flow, event.status).inc()
            if event.duration is not None:
                self.run_duration.labels(flow, event.status).observe(event.duration)

    def _model(self, data: Mapping[str, Any]) -> None:
        model = str(data.get("served_by") or data.get("model") or "unknown")
        self.model_calls.labels(model).inc()
        if data.get("cached"):  # no model processed any token of it, and it cost nothing
            self.cache_hits.labels(model).inc()
            return
        self.tokens.labels(model, "input").inc(int(data.get("input_tokens") or 0))
        self.tokens.labels(model, "output").inc(int(data.get("output_tokens") or 0))
        self.cost.labels(model).inc(float(data.get("cost") or 0.0))


def find_metrics(observers: Iterable[Observer]) -> MetricsObserver | None:
    """The ``MetricsObserver`` among ``observers`` (a ``Client``'s), if any."""
    return next((o for o in observers if isinstance(o, MetricsObserver)), None)


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``registry`` at ``http://host:port/metrics`` with prometheus_client's own HTTP server (a daemon
    thread). Returns the server: ``server.server_port`` is the port (useful with ``port=0``),
    ``server.shutdown()`` stops it."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
