"""Prometheus metrics: exact counts after real runs, parsed from the exposition text; the unfinished-runs
gauge asked of the store; and a real ``podium worker --metrics-port`` scraped over HTTP."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import WAIT_SECONDS, close_within, eventually, wait_status
from prometheus_client.parser import text_string_to_metric_families
from subproc import Podium

import podium
from podium.observability.metrics import MetricsObserver, find_metrics, render_metrics
from podium.runtime import make_observers

ECHO = {
    "provider": "function",
    "model": "podium.testing:echo_model",
    "price": {"input": 1, "output": 2},
    "temperature": 0,  # deterministic: the response cache answers repeats
}
MODELS = {"models": {"echo": ECHO}}
ATTEMPTS: dict[str, int] = {}
STARTED = asyncio.Event()


@podium.step
async def double(x: int) -> int:
    return 2 * x


@podium.step(retries=2)
async def flaky(tag: str) -> str:
    ATTEMPTS[tag] = ATTEMPTS.get(tag, 0) + 1
    if ATTEMPTS[tag] < 3:
        raise ValueError("not yet")
    return tag


@podium.step
async def fails() -> None:
    raise podium.ApplicationError("no", retryable=False)


@podium.step
async def forever() -> None:
    STARTED.set()
    await asyncio.sleep(60)


@podium.flow(name="metrics.ok")
async def ok(ctx: podium.Context, x: int) -> str:
    await double(x)
    await ctx.model("echo").generate("hi")
    return await ctx.model("echo").generate("hi")


@podium.flow(name="metrics.flaky")
async def flaky_flow(ctx: podium.Context) -> str:
    return await flaky("f")


@podium.flow(name="metrics.broken")
async def broken(ctx: podium.Context) -> None:
    await fails()


@podium.flow(name="metrics.stuck")
async def stuck(ctx: podium.Context) -> None:
    await forever()


@podium.flow(name="metrics.waits")
async def waits(ctx: podium.Context) -> None:
    await ctx.wait_for_signal("go")


@pytest.fixture(autouse=True)
def _reset() -> None:
    ATTEMPTS.clear()
    STARTED.clear()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: bytes) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_counters_histograms_and_gauges_after_real_runs(tmp_path: Path) -> None:
    metrics = MetricsObserver()
    settings = podium.Settings(
        database_url=f"sqlite:///{tmp_path}/m.db", poll_seconds=0.05, lease_seconds=2, config=MODELS
    )
    client = podium.Client(settings, observers=[metrics])
    await client.open()
    try:
        metrics.watch(client.store)
        for x in range(3):
            await (await client.start(ok, x)).result(timeout=WAIT_SECONDS)
        await (await client.start(flaky_flow)).result(timeout=WAIT_SECONDS)
        with pytest.raises(podium.RunFailedError):
            await (await client.start(broken)).result(timeout=WAIT_SECONDS)
        h = await client.start(stuck)
        await asyncio.wait_for(STARTED.wait(), WAIT_SECONDS)
        await client.cancel(h.id)  # held by the worker: the worker ends it, and says so
        await wait_status(client, h.id, podium.RunStatus.CANCELLED)
        waiting = [await client.start(waits) for _ in range(2)]
        for w in waiting:
            await wait_status(client, w.id, podium.RunStatus.WAITING)
        # scraped from another thread, as an HTTP server does: the gauge asks the store on its loop
        body, content_type = await asyncio.to_thread(render_metrics, metrics.registry)
    finally:
        await close_within(client)
    assert content_type.startswith("text/plain; version=0.0.4")
    s = parse(body)
    assert value(s, "podium_runs_started_total", flow="metrics.ok") == 3
    assert value(s, "podium_runs_started_total", flow="metrics.waits") == 2
    assert value(s, "podium_runs_finished_total", flow="metrics.ok", status="completed") == 3
    assert value(s, "podium_runs_finished_total", flow="metrics.flaky", status="completed") == 1
    assert value(s, "podium_runs_finished_total", flow="metrics.broken", status="failed") == 1
    assert value(s, "podium_runs_finished_total", flow="metrics.stuck", status="cancelled") == 1
    assert value(s, "podium_runs_finished_total", flow="metrics.waits", status="completed") is None
    assert value(s, "podium_run_duration_seconds_count", flow="metrics.ok", status="completed") == 3
    assert value(s, "podium_steps_total", flow="metrics.ok", step="double", status="ok") == 3
    assert value(s, "podium_steps_total", flow="metrics.broken", step="fails", status="failed") == 1
    assert value(s, "podium_step_duration_seconds_count", flow="metrics.ok", step="double") == 3
    assert value(s, "podium_step_duration_seconds_count", flow="metrics.ok", step="model:echo") == 6
    bucket = value(s, "podium_step_duration_seconds_bucket", flow="metrics.ok", step="double", le="+Inf")
    assert bucket == 3
    assert value(s, "podium_step_retries_total", flow="metrics.flaky", step="flaky") == 2
    # six calls of the same prompt at temperature 0: one reaches the model, five are cache hits
    assert value(s, "podium_model_calls_total", model="echo") == 6
    assert value(s, "podium_model_cache_hits_total", model="echo") == 5
    assert value(s, "podium_model_tokens_total", model="echo", direction="input") == 1
    assert value(s, "podium_model_tokens_total", model="echo", direction="output") == 1
    assert value(s, "podium_model_cost_usd_total", model="echo") == pytest.approx(3e-6)  # 1×$1 + 1×$2 per 1M
    assert value(s, "podium_runs_unfinished", flow="metrics.waits", status="waiting") == 2
    assert value(s, "podium_runs_unfinished", flow="metrics.ok", status="waiting") is None


async def test_the_gauge_on_the_stores_own_loop_after_refresh() -> None:
    settings = podium.Settings(database_url="memory://", poll_seconds=0.05)
    async with podium.Client(settings, worker=False) as control:
        await control.start(waits)  # pending: no worker here
        metrics = MetricsObserver(store=control.store)  # built on the loop: it knows it
        stale = parse(render_metrics(metrics.registry)[0])  # on the loop itself: the previous figure
        assert value(stale, "podium_runs_unfinished", flow="metrics.waits", status="pending") is None
        await metrics.refresh()
        fresh = parse(render_metrics(metrics.registry)[0])
        assert value(fresh, "podium_runs_unfinished", flow="metrics.waits", status="pending") == 1


def test_openmetrics_when_asked() -> None:
    metrics = MetricsObserver()
    body, content_type = render_metrics(metrics.registry, accept="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


async def test_switched_on_by_settings_for_a_clients_worker() -> None:
    assert find_metrics(make_observers(podium.Settings(database_url="memory://"))) is None
    settings = podium.Settings(database_url="memory://", poll_seconds=0.05, metrics=True)
    async with podium.Client(settings) as client:
        metrics = find_metrics(client.observers)
        assert metrics is not None
        await (await client.start(flaky_flow)).result(timeout=WAIT_SECONDS)
        h = await client.start(waits)
        await wait_status(client, h.id, podium.RunStatus.WAITING)
        await metrics.refresh()
        s = parse(render_metrics(metrics.registry)[0])
    assert value(s, "podium_runs_finished_total", flow="metrics.flaky", status="completed") == 1
    assert value(s, "podium_runs_unfinished", flow="metrics.waits", status="waiting") == 1
    env = {"PODIUM_METRICS": "1"}
    assert podium.Settings.from_env(env).observability.metrics is True
    assert podium.Settings.from_env({"PODIUM_METRICS": "0"}).observability.metrics is False


# -- a real worker process ------------------------------------------------------------------------------

FLOWS = """
import podium

@podium.step
async def add(a: int, b: int) -> int:
    return a + b

@podium.flow(name="cli.sum")
async def total(ctx: podium.Context, n: int) -> int:
    return await add(n, n)

@podium.flow(name="cli.waits")
async def waits(ctx: podium.Context) -> None:
    await ctx.wait_for_signal("go")
"""


async def test_podium_worker_serves_metrics_over_http(tmp_path: Path) -> None:
    (tmp_path / "metrics_cli_flows.py").write_text(textwrap.dedent(FLOWS))
    url = f"sqlite:///{tmp_path}/podium.db"
    sys.path.insert(0, str(tmp_path))
    try:
        import metrics_cli_flows as flows  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    async with podium.Client(podium.Settings(database_url=url), worker=False) as control:
        done = [await control.start(flows.total, n) for n in (1, 2)]
        held = await control.start(flows.waits)
    env = {"PODIUM_DATABASE_URL": url, "PODIUM_POLL_SECONDS": "0.05"}
    worker = await Podium.start(
        "worker", str(tmp_path / "metrics_cli_flows.py"), "--metrics-port", "0", env=env
    )
    try:
        line = await worker.wait_for("metrics on http://127.0.0.1:")
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        async with httpx.AsyncClient() as http:

            async def scrape() -> Samples:
                r = await http.get(f"http://127.0.0.1:{port}/metrics")
                assert r.status_code == 200
                return parse(r.content)

            s = await eventually(
                scrape,
                lambda s: (
                    value(s, "podium_runs_finished_total", flow="cli.sum", status="completed") == 2
                    and value(s, "podium_runs_unfinished", flow="cli.waits", status="waiting") == 1
                ),
                what="the worker's metrics to show two completed runs and one waiting",
            )
        assert value(s, "podium_runs_started_total", flow="cli.sum") == 2
        assert value(s, "podium_steps_total", flow="cli.sum", step="add", status="ok") == 2
        assert value(s, "process_cpu_seconds_total") is not None  # process metrics of the worker itself
        async with podium.Client(podium.Settings(database_url=url), worker=False) as control:
            assert [(await control.get(h.id)).status for h in done] == [podium.RunStatus.COMPLETED] * 2
            assert (await control.get(held.id)).status is podium.RunStatus.WAITING
    finally:
        text = await worker.stop()
    assert worker.proc.returncode == 0, text
    assert "releasing held runs" in text
