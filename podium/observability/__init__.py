"""Observability built on the engine's observers (``podium.hooks``): traces, metrics and structured logs.

- ``tracing``: ``TracingObserver``, OpenTelemetry spans of runs, executions, steps and model calls
  (``podium[otel]``).
- ``metrics``: ``MetricsObserver``, Prometheus counters, histograms and gauges; ``render_metrics``.
- ``logs``: ``JsonFormatter``, ``LogObserver``, ``configure_logging``: one JSON object per log line.

None of them is imported here: what is not switched on costs nothing. ``podium.runtime.make_observers``
builds what the settings ask for (``docs/observability.md``).
"""
