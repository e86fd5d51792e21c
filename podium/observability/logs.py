"""Structured logs: one JSON object per line, with the run and step a line belongs to.

```
{"ts": "2026-05-09T07:35:25.123Z", "level": "INFO", "logger": "podium.events", "message": "run completed",
 "run_id": "01a2...", "flow": "checkout", "status": "completed", "duration_s": 0.18}
```
``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``message`` are always there; ``run_id``, ``flow``, ``step``
and ``position`` when known: given as ``extra=`` or, for code running inside a flow or a step, taken from
the run it runs in. Other ``extra=`` fields follow; an exception adds ``exc``.

``PODIUM_LOG_FORMAT=json`` switches it on for ``podium worker`` and ``podium serve``, which then also log
every run event (``LogObserver``: runs at INFO, steps at DEBUG, retries and failures at INFO).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from ..config import redact_secrets
from ..hooks import EngineEvent
from ..workflow.step import _scope

__all__ = ["JsonFormatter", "LogObserver", "configure_logging"]

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_CONTEXT = ("run_id", "flow", "step", "position")


def _current() -> dict[str, str]:
    """The run (and step) that the code logging now runs in, if any."""
    scope = _scope.get()
    if scope is None:
        return {}
    driver = getattr(scope, "driver", None)
    out: dict[str, str] = {}
    run_id = getattr(driver, "run_id", None)
    if run_id:
        out["run_id"] = run_id
    flow = getattr(getattr(driver, "flow", None), "name", None)
    if flow:
        out["flow"] = flow
    if getattr(scope, "in_step", False):
        out["step"] = scope.step_name
        out["position"] = scope.step_id
    return out


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module's doc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        known = _current() if any(fields.get(k) is None for k in _CONTEXT) else {}
        for key in _CONTEXT:
            value = fields.get(key)
            if value is None:
                value = known.get(key)
            if value is not None:
                out[key] = value
        for key, value in fields.items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return redact_secrets(json.dumps(out, ensure_ascii=False, default=str))


def configure_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send all logging to ``stream`` (default stderr) as JSON lines, at ``level``: the root logger gets one
    handler with a ``JsonFormatter`` in place of any it had. Returns that handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler


class LogObserver:
    """An ``Observer`` that logs each run and step event to ``podium.events`` with its ids as fields:
    runs claimed, suspended and ended at INFO (a failed run at WARNING), steps started and ended at DEBUG,
    retries and failed steps at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("podium.events")

    def observe(self, event: EngineEvent) -> None:
        kind = event.kind
        if kind.startswith("step."):
            level = logging.DEBUG
            if kind == "step.retrying" or event.status == "failed":
                level = logging.INFO
        else:
            level = logging.WARNING if event.status == "failed" else logging.INFO
        if not self.log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {"run_id": event.run_id, "flow": event.flow, "event": kind}
        if event.position or kind.startswith("step."):
            fields["step"] = event.name
            fields["position"] = event.position
        if event.parent_id:
            fields["parent_run_id"] = event.parent_id
        if event.status:
            fields["status"] = event.status
        if event.attempt:
            fields["attempt"] = event.attempt
        if event.duration is not None and kind != "run.claimed":
            fields["duration_s"] = round(event.duration, 6)
        if event.error:
            fields["error_type"] = event.error.get("type")
            fields["error"] = event.error.get("message")
        data = event.data or {}
        if kind == "step.retrying" and "delay" in data:
            fields["retry_delay_s"] = data["delay"]
        if kind == "step.ended" and data.get("served_by"):
            for key in ("served_by", "model", "input_tokens", "output_tokens", "cost", "cached"):
                fields[key if key != "cost" else "cost_usd"] = data.get(key)
        if kind == "run.suspended" and data.get("wake_at") is not None:
            fields["wake_at"] = data["wake_at"]
        self.log.log(level, _message(event), extra=fields)


def _message(event: EngineEvent) -> str:
    kind = event.kind
    if kind == "run.claimed":
        return "run claimed" if event.attempt <= 1 else "run resumed"
    if kind == "run.suspended":
        return "run suspended"
    if kind == "run.ended":
        return f"run {event.status}"
    if kind == "step.started":
        return f"step {event.name} started"
    if kind == "step.retrying":
        message = (event.error or {}).get("message", "")
        return f"step {event.name} attempt {event.attempt} failed, retrying: {message}"
    if event.status == "failed":
        return f"step {event.name} failed: {(event.error or {}).get('message', '')}"
    return f"step {event.name} ended"
