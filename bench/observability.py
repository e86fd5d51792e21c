"""What observing costs: the engine's in-memory step overhead with no observer, with metrics, with tracing
and with both, measured in one run (interleaved, so machine weather hits all alike).

```
.venv/bin/python bench/observability.py            # about half a minute
.venv/bin/python bench/observability.py --quick
```
The measurement is ``bench/engine.py``'s figure (a): a 100-step chain of trivial steps on the memory
store, per step, less the run's fixed cost spread over its steps. The no-op observer shows what the engine's
events cost by themselves (they are built only when an observer is registered). Tracing is set up as in
production: a ``BatchSpanProcessor`` (its export thread running), here with an exporter that drops the
spans, so what is measured is making them, not the network.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Callable, Sequence

from engine import MEMORY, chain, median, sequential_runs
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import podium
from podium.observability.metrics import MetricsObserver
from podium.observability.tracing import TracingObserver


class Drop(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class Nothing:
    """An observer that does nothing: what the engine's own event building costs."""

    def observe(self, event: podium.EngineEvent) -> None:
        pass


def nothing() -> list[podium.Observer]:
    return [Nothing()]


def tracing() -> list[podium.Observer]:
    return [TracingObserver(exporter=Drop(), batch=True)]


def metrics() -> list[podium.Observer]:
    return [MetricsObserver()]


def both() -> list[podium.Observer]:
    return [*metrics(), *tracing()]


CONFIGS: dict[str, Callable[[], list[podium.Observer]]] = {
    "none": list,
    "a no-op observer": nothing,
    "metrics": metrics,
    "tracing": tracing,
    "metrics + tracing": both,
}


async def measure(make: Callable[[], list[podium.Observer]], n: int, runs: int) -> tuple[float, float]:
    """Seconds per step of ``runs`` runs of an ``n``-step chain, and per run of a 0-step one."""
    observers = make()
    try:
        async with podium.Client(MEMORY, observers=observers) as client:
            await sequential_runs(client, chain, n, 2)  # warm-up: label children, span machinery
            gc.collect()
            full = await sequential_runs(client, chain, n, runs) / (runs * n)
            empty = await sequential_runs(client, chain, 0, runs) / runs
    finally:
        for o in observers:
            close = getattr(o, "close", None)
            if close is not None:
                close()
    return full, empty


async def main(reps: int, runs: int) -> None:
    n = 100
    per_step: dict[str, list[float]] = {name: [] for name in CONFIGS}
    per_run: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(reps):
        for name, make in CONFIGS.items():
            full, empty = await measure(make, n, runs)
            per_step[name].append(full - empty / n)
            per_run[name].append(empty)
    base = median(per_step["none"])
    print(
        f"podium {podium.__version__} observability bench: Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; {n}-step chain, {runs} runs × {reps} reps, memory store"
    )
    print(f"{'observers':<20} {'µs/step':>9} {'× none':>7} {'+µs/step':>9} {'µs/run (fixed)':>15}")
    for name in CONFIGS:
        step = median(per_step[name])
        print(
            f"{name:<20} {step * 1e6:>9.1f} {step / base:>6.2f}× {(step - base) * 1e6:>9.1f} "
            f"{median(per_run[name]) * 1e6:>15.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    args = parser.parse_args()
    asyncio.run(main(3 if args.quick else 7, 30 if args.quick else 150))
