"""OpenTelemetry traces of runs, their executions, steps and model calls. Needs ``pip install podium[otel]``.

Every run is **one trace**, whatever worker executed it: the trace id is derived from the run id, so a run
that suspends for a week and resumes on another machine adds to the same trace. Its spans:

- ``run {flow}``: the run's creation to its end, emitted when it ends; the trace's root. A child run's root
  links to its parent run's root.
- ``execute {flow}``: one execution, ``run.claimed`` to ``run.suspended`` or ``run.ended``; under the root.
- ``step {name}``: ``step.started`` to ``step.ended``, under its execution. Retries are span events named
  ``retry``; a failure is an error status, ``error.type`` and an ``exception`` event.
- ``chat {model}`` / ``embeddings {model}``: a model or embedding step, with the OpenTelemetry GenAI
  attributes (``gen_ai.*``) and ``podium.cost_usd``, ``podium.cached``.

The root span's id is derived from the run id too, so executions name it as their parent before it exists; a
viewer shows the executions of a run that is still waiting under a root it has not received yet. Every span
carries ``podium.run_id`` and ``podium.flow``; step spans also ``podium.position``, ``podium.step`` and
``podium.attempt``. Times are the engine's own (the events' ``started``/``at``), not the observer's.

```python
from podium.observability.tracing import TracingObserver

client = podium.Client(settings, observers=[TracingObserver(endpoint="http://localhost:4318")])
```
``podium.runtime.make_observers`` builds one when ``PODIUM_OTLP_ENDPOINT`` (or ``[observability]
otlp_endpoint``) is set; when it is not, nothing of OpenTelemetry is imported or started.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..hooks import EngineEvent

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
    )
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
except ImportError as exc:  # pragma: no cover - tested in a subprocess without the package
    hint = "pip install podium[otel]"
    raise ImportError(f"OpenTelemetry tracing needs the otel extra ({exc}): {hint}") from exc

__all__ = ["TracingObserver", "run_span_context", "run_trace_id", "traces_url"]

_NO_PARENT = Context()  # an explicit empty context: a user's current span never becomes our parent


def run_trace_id(run_id: str) -> int:
    """The trace id of a run: the same in every process, so all its executions share one trace."""
    value = int.from_bytes(hashlib.sha256(b"podium.trace/" + run_id.encode()).digest()[:16], "big")
    return value or 1


def _run_span_id(run_id: str) -> int:
    value = int.from_bytes(hashlib.sha256(b"podium.run/" + run_id.encode()).digest()[:8], "big")
    return value or 1


def run_span_context(run_id: str) -> SpanContext:
    """The context of a run's root span (``run {flow}``): link to it, or start spans under it."""
    return SpanContext(
        run_trace_id(run_id), _run_span_id(run_id), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (``http://host:4318`` → ``.../v1/traces``); a URL
    that already ends in ``/v1/traces`` is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class _RunIds(RandomIdGenerator):
    """Random ids, except while ``forced`` is active: then the ids of a run's root span."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def forced(self, trace_id: int, span_id: int) -> Iterator[None]:
        self._local.ids = (trace_id, span_id)
        try:
            yield
        finally:
            self._local.ids = None

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids else super().generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[1] if ids else super().generate_span_id()


@dataclass(slots=True)
class _Step:
    """A step span in the making: it becomes a ``ReadableSpan`` when the step ends."""

    name: str
    kind: SpanKind
    attrs: dict[str, Any]
    start: int
    events: list[Event] = field(default_factory=list)


@dataclass
class _Execution:
    """One execution of a run in this process: its span and its open steps."""

    span: Span
    last_at: float
    steps: dict[str, _Step] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.context = self.span.get_span_context()
        self.recording = self.span.is_recording()  # sampled: its steps are too (parent-based)


class TracingObserver:
    """An ``Observer`` that turns engine events into OpenTelemetry spans in its own ``TracerProvider``.

    Give it ``endpoint`` (an OTLP/HTTP collector: spans are batched and sent from a background thread) or an
    ``exporter`` of your own (exported as each span ends, or batched with ``batch=True``). It never touches
    OpenTelemetry's global tracer provider. ``close()`` ends the spans of executions still open (the worker
    stopped while they ran) and flushes.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        exporter: SpanExporter | None = None,
        batch: bool | None = None,
        service_name: str = "podium",
        resource: Mapping[str, Any] | None = None,
    ) -> None:
        if (endpoint is None) == (exporter is None):
            raise ValueError("TracingObserver needs exactly one of endpoint= and exporter=")
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=traces_url(endpoint))
            batch = True if batch is None else batch
        assert exporter is not None
        self.exporter = exporter
        processor: SpanProcessor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self._processor = processor
        self._ids = _RunIds()
        attrs: dict[str, Any] = {"service.name": service_name, **(resource or {})}
        self.provider = TracerProvider(resource=Resource.create(attrs), id_generator=self._ids)
        self.provider.add_span_processor(processor)
        from .. import __version__

        self.tracer = self.provider.get_tracer("podium", __version__)
        self._scope = InstrumentationScope("podium", __version__)
        self._open: dict[str, _Execution] = {}
        self._closed = False

    # -- the observer ------------------------------------------------------------------------
    def observe(self, event: EngineEvent) -> None:
        kind = event.kind
        if kind == "step.started":
            self._step_started(event)
        elif kind == "step.ended":
            self._step_ended(event)
        elif kind == "step.retrying":
            self._step_retrying(event)
        elif kind == "run.claimed":
            self._claimed(event)
        elif kind == "run.suspended":
            self._finish_execution(event, "suspended")
        elif kind == "run.ended":
            self._finish_execution(event, event.status)
            if event.status != "continued":  # a run continued as new keeps its id, and so its trace
                self._root(event)

    def _run_attrs(self, event: EngineEvent) -> dict[str, Any]:
        attrs: dict[str, Any] = {"podium.run_id": event.run_id, "podium.flow": event.flow}
        if event.parent_id:
            attrs["podium.parent_run_id"] = event.parent_id
        return attrs

    def _links(self, event: EngineEvent) -> list[Link]:
        if not event.parent_id:
            return []
        return [Link(run_span_context(event.parent_id), {"podium.link": "parent_run"})]

    def _claimed(self, event: EngineEvent) -> None:
        old = self._open.pop(event.run_id, None)
        if old is not None:  # the previous execution here stopped without a word (lease lost, store error)
            self._abandon(old, "interrupted")
        parent = trace.set_span_in_context(trace.NonRecordingSpan(run_span_context(event.run_id)), _NO_PARENT)
        attrs = self._run_attrs(event)
        if event.kind == "run.claimed":
            attrs["podium.claim"] = event.attempt
        span = self.tracer.start_span(
            f"execute {event.flow}",
            context=parent,
            attributes=attrs,
            links=self._links(event),
            start_time=_ns(event.at),
        )
        self._open[event.run_id] = _Execution(span, event.at)

    def _execution(self, event: EngineEvent) -> _Execution:
        ex = self._open.get(event.run_id)
        if ex is None:  # an observer added while the run was executing: start its execution now
            self._claimed(event)
            ex = self._open[event.run_id]
        ex.last_at = max(ex.last_at, event.at)
        return ex

    def _step_started(self, event: EngineEvent) -> None:
        ex = self._execution(event)
        ex.steps[event.position] = self._start_step(ex, event)

    def _start_step(self, ex: _Execution, event: EngineEvent) -> _Step:
        attrs = self._run_attrs(event)
        attrs["podium.position"] = event.position
        attrs["podium.step"] = event.name
        attrs["podium.attempt"] = event.attempt
        op, alias = _model_op(event.name)
        if op is None:
            name, kind = f"step {event.name}", SpanKind.INTERNAL
        else:
            name, kind = f"{op} {alias}", SpanKind.CLIENT
            attrs.update({"gen_ai.operation.name": op, "gen_ai.request.model": alias, "podium.model": alias})
        started = event.started if event.started is not None else event.at
        return _Step(name, kind, attrs, _ns(started))

    def _step_retrying(self, event: EngineEvent) -> None:
        ex = self._execution(event)
        step = ex.steps.get(event.position)
        if step is None:
            return
        attrs: dict[str, Any] = {"podium.attempt": event.attempt}
        if event.error:
            attrs["exception.type"] = str(event.error.get("type", ""))
            attrs["exception.message"] = str(event.error.get("message", ""))
        delay = (event.data or {}).get("delay")
        if isinstance(delay, int | float):
            attrs["podium.retry_delay_s"] = float(delay)
        step.events.append(Event("retry", attrs, _ns(event.at)))

    def _step_ended(self, event: EngineEvent) -> None:
        ex = self._execution(event)
        step = ex.steps.pop(event.position, None)
        if step is None:
            step = self._start_step(ex, event)
        step.attrs["podium.attempt"] = event.attempt
        op, _ = _model_op(event.name)
        if op is not None and event.data:
            model = _model_attrs(step.attrs, op, event.data)
            if model:
                step.name = f"{op} {model}"
        status = _OK
        if event.status == "failed":
            status, kind, message = _error_parts(event.error)
            step.attrs["error.type"] = kind
            step.events.append(_exception(kind, message, event.at))
        started = event.started if event.started is not None else event.at
        ended = started + event.duration if event.duration is not None else event.at
        self._emit(ex, step, _ns(ended), status)

    def _emit(self, ex: _Execution, step: _Step, end: int, status: Status) -> None:
        """Hand a finished step's span to the processor. Made directly as a ``ReadableSpan``, not through
        ``start_span``/``end``: a step's whole span is known when it ends, and this costs a fraction."""
        if not ex.recording:
            return
        parent = ex.context
        context = SpanContext(
            parent.trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=parent.trace_flags,
            trace_state=parent.trace_state,
        )
        span = ReadableSpan(
            name=step.name,
            context=context,
            parent=parent,
            resource=self.provider.resource,
            attributes=step.attrs,
            events=tuple(step.events),
            kind=step.kind,
            status=status,
            start_time=step.start,
            end_time=max(end, step.start),
            instrumentation_scope=self._scope,
        )
        self._processor.on_end(span)

    def _finish_execution(self, event: EngineEvent, outcome: str) -> None:
        ex = self._open.pop(event.run_id, None)
        if ex is None:
            return
        for step in ex.steps.values():  # none in practice: a run stops only between steps
            self._emit(ex, step, _ns(event.at), _OK)
        ex.span.set_attribute("podium.outcome", outcome)
        if event.kind == "run.suspended" and event.data and event.data.get("wake_at") is not None:
            ex.span.set_attribute("podium.wake_at", float(event.data["wake_at"]))
        if outcome == "failed":
            _set_error(ex.span, event.error, event.at)
        ex.span.end(end_time=_ns(event.at))

    def _root(self, event: EngineEvent) -> None:
        attrs = self._run_attrs(event)
        attrs["podium.status"] = event.status
        start = event.started if event.started is not None else event.at
        with self._ids.forced(run_trace_id(event.run_id), _run_span_id(event.run_id)):
            span = self.tracer.start_span(
                f"run {event.flow}",
                context=_NO_PARENT,
                attributes=attrs,
                links=self._links(event),
                start_time=_ns(start),
            )
        if event.status == "failed":
            _set_error(span, event.error, event.at)
        span.end(end_time=_ns(event.at))

    def _abandon(self, ex: _Execution, outcome: str) -> None:
        for step in ex.steps.values():
            self._emit(ex, step, _ns(ex.last_at), _OK)
        ex.span.set_attribute("podium.outcome", outcome)
        ex.span.end(end_time=_ns(ex.last_at))

    # -- lifecycle ---------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every ended span now."""
        return self.provider.force_flush(timeout_millis)

    def close(self) -> None:
        """End the spans of executions still open here (``podium.outcome = released``), flush, shut down."""
        if self._closed:
            return
        self._closed = True
        for ex in self._open.values():  # ended at the last thing known of them
            self._abandon(ex, "released")
        self._open.clear()
        self.provider.shutdown()


def _model_op(step_name: str) -> tuple[str | None, str]:
    if step_name.startswith("model:"):
        return "chat", step_name[6:]
    if step_name.startswith("embed:"):
        return "embeddings", step_name[6:]
    return None, ""


def _model_attrs(attrs: dict[str, Any], op: str, data: Mapping[str, Any]) -> str | None:
    """Add the GenAI semantic-convention attributes of a finished model call (and Podium's cost and cache);
    returns the model that answered, if known."""
    model = data.get("model")
    if model:
        attrs["gen_ai.request.model"] = attrs["gen_ai.response.model"] = str(model)
    provider = data.get("provider")
    if provider:
        attrs["gen_ai.system"] = attrs["gen_ai.provider.name"] = str(provider)
    attrs["gen_ai.usage.input_tokens"] = int(data.get("input_tokens") or 0)
    if op == "chat":
        attrs["gen_ai.usage.output_tokens"] = int(data.get("output_tokens") or 0)
    attrs["podium.cost_usd"] = float(data.get("cost") or 0.0)
    attrs["podium.cached"] = bool(data.get("cached"))
    if data.get("served_by"):
        attrs["podium.served_by"] = str(data["served_by"])
    return str(model) if model else None


_OK = Status(StatusCode.UNSET)


def _error_parts(error: Mapping[str, Any] | None) -> tuple[Status, str, str]:
    kind = str((error or {}).get("type") or "Error")
    message = str((error or {}).get("message") or "")
    return Status(StatusCode.ERROR, message), kind, message


def _exception(kind: str, message: str, at: float) -> Event:
    return Event("exception", {"exception.type": kind, "exception.message": message}, _ns(at))


def _set_error(span: Span, error: Mapping[str, Any] | None, at: float) -> None:
    status, kind, message = _error_parts(error)
    span.set_status(status)
    span.set_attribute("error.type", kind)
    span.add_event("exception", {"exception.type": kind, "exception.message": message}, timestamp=_ns(at))
