"""OpenTelemetry traces: one trace per run across suspends and workers, step and GenAI spans with the engine's
own times, child runs linked to their parents, OTLP/HTTP export to a real receiver, and nothing at all when
tracing is not configured."""

from __future__ import annotations

import gzip
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, wait_status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import podium
from podium.errors import ConfigError
from podium.observability.tracing import TracingObserver, run_span_context, run_trace_id, traces_url
from podium.runtime import make_observers
from podium.testing import ManualClock

ROOT = Path(__file__).resolve().parent.parent
ECHO = {"provider": "function", "model": "podium.testing:echo_model", "price": {"input": 1, "output": 2}}
MODELS = {"models": {"echo": ECHO}}
ATTEMPTS: dict[str, int] = {}
CLOCK: list[ManualClock] = []


@podium.step(retries=1)
async def flaky(tag: str) -> str:
    ATTEMPTS[tag] = ATTEMPTS.get(tag, 0) + 1
    if ATTEMPTS[tag] == 1:
        raise ValueError("first try fails")
    return tag


@podium.step
async def fails() -> None:
    raise podium.ApplicationError("no", retryable=False)


@podium.flow(name="tracing.waits")
async def waits(ctx: podium.Context) -> str:
    a = await flaky("a")
    reply = await ctx.model("echo").generate("hello")
    await ctx.wait_for_signal("go")
    try:
        await fails()
    except podium.StepError:
        pass
    return a + reply


@podium.step
async def five_seconds() -> int:
    CLOCK[0].advance("5s")  # the engine's clock, not the wall clock: spans must use it
    return 5


@podium.flow(name="tracing.timed")
async def timed(ctx: podium.Context) -> int:
    return await five_seconds()


@podium.flow(name="tracing.kid")
async def kid(ctx: podium.Context, x: int) -> int:
    return x * 2


@podium.flow(name="tracing.parent")
async def parent(ctx: podium.Context) -> int:
    return await ctx.child(kid, 21)


@podium.flow(name="tracing.broken")
async def broken(ctx: podium.Context) -> None:
    await fails()


@pytest.fixture(autouse=True)
def _reset() -> None:
    ATTEMPTS.clear()
    CLOCK.clear()


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_one_trace_across_a_suspend_and_two_workers(tmp_path: Path) -> None:
    settings = podium.Settings(
        database_url=f"sqlite:///{tmp_path}/p.db", poll_seconds=0.05, lease_seconds=2, config=MODELS
    )
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    a = podium.Client(settings, observers=[TracingObserver(exporter=first)])
    await a.open()
    try:
        h = await a.start(waits)
        await wait_status(a, h.id, podium.RunStatus.WAITING)
    finally:
        await close_within(a)  # the first worker is gone; another one resumes the run
    b = podium.Client(settings, observers=[TracingObserver(exporter=second)])
    await b.open()
    try:
        await b.signal(h.id, "go")
        assert await b.result(h.id, timeout=WAIT_SECONDS) == "ahello"
        journal = await b.journal(h.id)
    finally:
        await close_within(b)

    spans_a, spans_b = list(first.get_finished_spans()), list(second.get_finished_spans())
    assert sorted(s.name for s in spans_a) == [
        "chat podium.testing:echo_model",
        "execute tracing.waits",
        "step flaky",
    ]
    assert sorted(s.name for s in spans_b) == ["execute tracing.waits", "run tracing.waits", "step fails"]
    spans = spans_a + spans_b
    assert {s.context.trace_id for s in spans} == {run_trace_id(h.id)}  # one trace, two processes' worth

    root = by_name(spans_b)["run tracing.waits"][0]
    assert root.parent is None and root.context.span_id == run_span_context(h.id).span_id
    assert attrs(root)["podium.status"] == "completed"
    exec_a = by_name(spans_a)["execute tracing.waits"][0]
    exec_b = by_name(spans_b)["execute tracing.waits"][0]
    assert parent_id(exec_a) == parent_id(exec_b) == root.context.span_id
    assert attrs(exec_a)["podium.outcome"] == "suspended" and attrs(exec_b)["podium.outcome"] == "completed"
    assert attrs(exec_a)["podium.claim"] == 1 and attrs(exec_b)["podium.claim"] == 2
    for s in spans_a:
        if s is not exec_a:
            assert parent_id(s) == exec_a.context.span_id
    assert parent_id(by_name(spans_b)["step fails"][0]) == exec_b.context.span_id
    # the root covers the whole run: from its creation to its end, the wait included
    assert root.start_time is not None and root.end_time is not None
    assert root.start_time <= exec_a.start_time and exec_b.end_time <= root.end_time  # type: ignore[operator]

    steps = {e.position: e.data for e in journal if e.kind == "step"}
    for s in spans:
        if s.name.startswith(("step ", "chat ")):
            a_ = attrs(s)
            assert a_["podium.run_id"] == h.id and a_["podium.flow"] == "tracing.waits"
            data: Any = steps[a_["podium.position"]]
            assert a_["podium.step"] in ("flaky", "model:echo", "fails")
            assert s.start_time == int(data["started"] * 1e9)  # the engine's times, from the events
            # (a failed step's journal end and its event are two reads of the clock, microseconds apart)
            assert s.end_time is not None and abs(s.end_time - int(data["ended"] * 1e9)) <= 1_000_000

    flaky_span = by_name(spans_a)["step flaky"][0]
    assert attrs(flaky_span)["podium.attempt"] == 2 and flaky_span.status.status_code is StatusCode.UNSET
    (retry,) = flaky_span.events
    assert retry.name == "retry" and dict(retry.attributes or {})["exception.message"] == "first try fails"
    assert dict(retry.attributes or {})["exception.type"] == "ValueError"

    failed = by_name(spans_b)["step fails"][0]
    assert failed.status.status_code is StatusCode.ERROR and failed.status.description == "no"
    assert attrs(failed)["error.type"] == "ApplicationError"
    assert [(e.name, dict(e.attributes or {})["exception.type"]) for e in failed.events] == [
        ("exception", "ApplicationError")
    ]

    model = by_name(spans_a)["chat podium.testing:echo_model"][0]
    m = attrs(model)
    assert model.kind.name == "CLIENT"
    assert m["gen_ai.operation.name"] == "chat"
    assert m["gen_ai.system"] == "function"
    assert m["gen_ai.request.model"] == "podium.testing:echo_model"
    assert m["gen_ai.usage.input_tokens"] >= 1 and m["gen_ai.usage.output_tokens"] >= 1
    # price: $1 per million input tokens, $2 per million output tokens
    expected = (m["gen_ai.usage.input_tokens"] * 1 + m["gen_ai.usage.output_tokens"] * 2) / 1e6
    assert m["podium.cost_usd"] == pytest.approx(expected)
    assert m["podium.cached"] is False and m["podium.model"] == "echo" and m["podium.served_by"] == "echo"


async def test_spans_carry_the_engine_clock_not_the_wall_clock() -> None:
    clock = ManualClock(start=1_000_000.0)
    CLOCK.append(clock)
    exporter = InMemorySpanExporter()
    settings = podium.Settings(database_url="memory://", poll_seconds=0.05)
    async with podium.Client(settings, clock=clock, observers=[TracingObserver(exporter=exporter)]) as c:
        h = await c.start(timed)
        assert await h.result(timeout=WAIT_SECONDS) == 5
    spans = by_name(list(exporter.get_finished_spans()))
    step = spans["step five_seconds"][0]
    assert step.start_time == 1_000_000 * 10**9 and step.end_time == 1_000_005 * 10**9
    root = spans["run tracing.timed"][0]
    assert root.start_time == 1_000_000 * 10**9 and root.end_time == 1_000_005 * 10**9
    execution = spans["execute tracing.timed"][0]
    assert execution.start_time == 1_000_000 * 10**9 and execution.end_time == 1_000_005 * 10**9


async def test_a_child_run_has_its_own_trace_linked_to_its_parent_run() -> None:
    exporter = InMemorySpanExporter()
    settings = podium.Settings(database_url="memory://", poll_seconds=0.05)
    async with podium.Client(settings, observers=[TracingObserver(exporter=exporter)]) as c:
        h = await c.start(parent)
        assert await h.result(timeout=WAIT_SECONDS) == 42
        (child,) = await c.list(flow="tracing.kid")
    spans = list(exporter.get_finished_spans())
    kid_spans = [s for s in spans if attrs(s)["podium.run_id"] == child.id]
    assert sorted(s.name for s in kid_spans) == ["execute tracing.kid", "run tracing.kid"]
    parent_root = run_span_context(h.id)
    for s in kid_spans:
        assert s.context.trace_id == run_trace_id(child.id) != run_trace_id(h.id)
        assert attrs(s)["podium.parent_run_id"] == h.id
        (link,) = s.links
        assert link.context.trace_id == parent_root.trace_id
        assert link.context.span_id == parent_root.span_id
    (root,) = [s for s in spans if s.name == "run tracing.parent"]
    assert root.context.span_id == parent_root.span_id  # the link points at a span that exists


async def test_a_failed_run_is_an_error_on_its_execution_and_root() -> None:
    exporter = InMemorySpanExporter()
    settings = podium.Settings(database_url="memory://", poll_seconds=0.05)
    async with podium.Client(settings, observers=[TracingObserver(exporter=exporter)]) as c:
        h = await c.start(broken)
        with pytest.raises(podium.RunFailedError):
            await h.result(timeout=WAIT_SECONDS)
    spans = by_name(list(exporter.get_finished_spans()))
    for name in ("run tracing.broken", "execute tracing.broken", "step fails"):
        (s,) = spans[name]
        assert s.status.status_code is StatusCode.ERROR, name
        assert [e.name for e in s.events] == ["exception"], name
    assert attrs(spans["run tracing.broken"][0])["podium.status"] == "failed"


# -- export over OTLP/HTTP ------------------------------------------------------------------------------


class Receiver(http.server.ThreadingHTTPServer):
    """A minimal OTLP/HTTP collector: keeps the body of every POST to /v1/traces."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.requests.append((self.path, headers, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_otlp_http_export_to_a_real_receiver(receiver: Receiver) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    settings = podium.Settings(
        database_url="memory://", poll_seconds=0.05, otlp_endpoint=endpoint, config=MODELS
    )
    client = podium.Client(settings)  # no observers given: the settings' ones (make_observers)
    async with client:
        assert [type(o).__name__ for o in client.observers] == ["TracingObserver"]
        h = await client.start(waits)
        await wait_status(client, h.id, podium.RunStatus.WAITING)
        await client.signal(h.id, "go")
        await h.result(timeout=WAIT_SECONDS)
    # closing the client flushed the batch: the spans are at the receiver now
    assert receiver.requests, "nothing was exported"
    spans: list[Any] = []
    for path, headers, body in receiver.requests:
        assert path == "/v1/traces"
        assert headers["content-type"] == "application/x-protobuf"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            assert resource["service.name"] == "podium"
            for ss in rs.scope_spans:
                assert ss.scope.name == "podium"
                spans.extend(ss.spans)
    names = sorted(s.name for s in spans)
    assert names == [
        "chat podium.testing:echo_model",
        "execute tracing.waits",
        "execute tracing.waits",
        "run tracing.waits",
        "step fails",
        "step flaky",
    ]
    assert {s.trace_id for s in spans} == {run_trace_id(h.id).to_bytes(16, "big")}
    model = next(s for s in spans if s.name.startswith("chat "))
    got = {kv.key: kv.value for kv in model.attributes}
    assert got["gen_ai.request.model"].string_value == "podium.testing:echo_model"
    assert got["gen_ai.usage.input_tokens"].int_value >= 1
    assert got["podium.cached"].bool_value is False
    assert got["podium.run_id"].string_value == h.id


def test_traces_url() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"


# -- configuration -----------------------------------------------------------------------------------------


def test_the_endpoint_comes_from_the_variable_or_podium_toml(tmp_path: Path) -> None:
    toml = tmp_path / "podium.toml"
    toml.write_text('[observability]\notlp_endpoint = "http://from-file:4318"\n')
    env = {"PODIUM_CONFIG": str(toml)}
    assert podium.Settings.from_env(env).observability.otlp_endpoint == "http://from-file:4318"
    env["PODIUM_OTLP_ENDPOINT"] = "http://from-env:4318"
    assert podium.Settings.from_env(env).observability.otlp_endpoint == "http://from-env:4318"
    assert podium.Settings.from_env({}).observability.otlp_endpoint is None
    with pytest.raises(ConfigError, match="must be an http"):
        podium.Settings(otlp_endpoint="collector:4318")
    with pytest.raises(ConfigError, match="unknown key"):
        podium.Settings(config={"observability": {"otlp": "http://x"}})


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_nothing_configured_imports_nothing_and_starts_no_thread() -> None:
    assert make_observers(podium.Settings(database_url="memory://")) == []
    code = """
import asyncio, json, sys, threading
import podium

@podium.flow(name="idle")
async def idle(ctx):
    return 1

async def main():
    before = threading.active_count()
    async with podium.Client(podium.Settings(database_url="memory://")) as c:
        await (await c.start(idle)).result()
        observers = list(c.observers)
        during = threading.active_count()
    print(json.dumps({
        "observers": len(observers), "threads": [before, during],
        "loaded": sorted(m for m in ("opentelemetry", "prometheus_client") if m in sys.modules),
    }))

asyncio.run(main())
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report == {"observers": 0, "threads": [1, 1], "loaded": []}


def test_a_missing_extra_names_the_install_command() -> None:
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if podium[otel] were not installed
import podium
from podium.errors import ConfigError
from podium.runtime import make_observers
try:
    make_observers(podium.Settings(database_url="memory://", otlp_endpoint="http://127.0.0.1:4318"))
except ConfigError as exc:
    print(exc)
try:
    import podium.observability.tracing
except ImportError as exc:
    print(exc)
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.endswith("pip install podium[otel]") for line in lines), lines
    assert lines[0].startswith("otlp_endpoint is set, but tracing cannot start")
