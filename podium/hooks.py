"""Observers: what the engine tells the outside world while it works (tracing, metrics, logs, live streams).

The engine calls every registered ``Observer`` with an ``EngineEvent`` at the points it already has: a
run claimed, a step started and ended (retries included), a run suspended or ended. Observers are plain
objects with one method; they never change what the engine does (policies, which may, are a separate
seam), and an observer that raises is logged and otherwise ignored.

```python
class Printer:
    def observe(self, event: podium.EngineEvent) -> None:
        if event.kind == "step.ended":
            print(event.run_id, event.position, event.name, event.status, event.duration)

client = podium.Client(observers=[Printer()])
```
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

log = logging.getLogger("podium.hooks")

Kind = Literal[
    "run.claimed",  # a worker took the run (first execution, or a resume after a wait, crash or restart)
    "run.suspended",  # the run waits for the world and left memory
    "run.ended",  # completed, failed, cancelled (status) — or continued as new
    "step.started",  # a step's body starts (not on replay: replayed steps run nothing)
    "step.retrying",  # an attempt failed and will be retried (error, delay in data)
    "step.ended",  # a step finished: ok or failed (after its retries)
]


@dataclass(slots=True)  # not frozen: a frozen dataclass costs several times more to build, per step
class EngineEvent:
    """One thing the engine did (treat it as read-only: every observer sees the same object). Times are
    seconds since the epoch (the worker's clock)."""

    kind: Kind
    run_id: str
    flow: str
    at: float
    position: str = ""
    """The step's position in the run (``"2.1.0"``); empty for run events."""
    name: str = ""
    """The step's name (``"model:fast"`` for a model call)."""
    status: str = ""
    """``ok``/``failed`` for steps; the run's status for ``run.ended``."""
    attempt: int = 0
    started: float | None = None
    duration: float | None = None
    """Seconds: the step's, or for ``run.ended`` the run's since it was created."""
    error: Mapping[str, Any] | None = None
    parent_id: str | None = None
    """The parent run of a child run."""
    data: Mapping[str, Any] | None = None
    """Model and embedding calls: ``model``, ``provider``, ``input_tokens``, ``output_tokens``, ``cost``,
    ``cached``; retries: ``delay``."""


@runtime_checkable
class Observer(Protocol):
    """Receives every ``EngineEvent`` of the worker it is registered with. Must be quick (it runs on the
    event loop) and must not block; hand heavy work to a queue."""

    def observe(self, event: EngineEvent) -> None: ...


_failed: set[int] = set()  # observers whose failure was logged once already


def notify(observers: Iterable[Observer], event: EngineEvent) -> None:
    """Call each observer; one that raises is logged (once) and does not stop the others or the engine."""
    for o in observers:
        try:
            o.observe(event)
        except Exception as exc:  # an observer's bug must never fail a run
            if id(o) not in _failed:
                _failed.add(id(o))
                log.warning(
                    "observer %r failed on %s (later failures are not logged): %r", o, event.kind, exc
                )


def model_data(result: Any) -> dict[str, Any] | None:
    """The GenAI facts of a model or embedding step's result (a ``Completion`` or ``Embedding``)."""
    usage = getattr(result, "usage", None)
    if usage is None and not hasattr(result, "cost"):
        return None
    return {
        "model": getattr(result, "model", None),
        "provider": getattr(result, "provider", None),
        "input_tokens": int(getattr(usage, "input_tokens", 0) or 0),
        "output_tokens": int(getattr(usage, "output_tokens", 0) or 0),
        "cost": float(getattr(result, "cost", 0.0) or 0.0),
        "cached": bool(getattr(result, "cached", False)),
        "served_by": getattr(result, "served_by", None),
    }
