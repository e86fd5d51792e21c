"""Trigger benchmarks: NATS event to first step, and 1,000 schedules falling due at once.

```
.venv/bin/python bench/triggers.py                      # both (NATS at 127.0.0.1:4222)
.venv/bin/python bench/triggers.py --events 0           # schedules only
.venv/bin/python bench/triggers.py --dir /path/on/the/disk/to/measure
```

| measure | target |
|---|---|
| NATS JetStream event -> the flow's first step starts (SQLite store), median | under 5 ms |
| 1,000 schedules due at once, two workers on one SQLite file: until every run exists | under 1 s |
| runs started twice for one occurrence | 0 |

The event latency is measured in one process: a publisher connection publishes a message (``js.publish``,
which waits for the stream's acknowledgement) and the flow's first step records when its body starts; the
run goes publish -> JetStream -> durable push consumer -> ``Client.start`` (SQLite commit) -> worker. Messages
are sent one at a time, after the previous one's step started.

The schedules fall due together on a ``ManualClock``: 1,000 schedules are added, then the clock moves past
their next occurrence, which wakes both workers' schedulers at once. Timing starts at that move and ends
when the 1,000th run is in the database (read by a separate connection).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import podium
from podium.storage.sqlite import SQLiteStore
from podium.testing import ManualClock
from podium.triggers.action import Action
from podium.triggers.nats import EventSource, start_events

STARTED: dict[str, asyncio.Event] = {}
STARTED_AT: dict[str, float] = {}


@podium.step(name="bench.first")
async def first(event_id: str) -> str:
    STARTED_AT[event_id] = time.perf_counter()
    STARTED[event_id].set()
    return event_id


@podium.flow(name="bench.event")
async def on_event(ctx: podium.Context, event: dict[str, Any]) -> str:
    return await first(event["id"])


@podium.flow(name="bench.scheduled")
async def scheduled(ctx: podium.Context, n: int) -> int:
    return n


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def bench_events(root: Path, count: int, url: str) -> None:
    import nats

    tag = uuid.uuid4().hex[:8]
    stream, subject = f"PODIUM_BENCH_{tag}", f"podium-bench.{tag}"
    settings = podium.Settings(database_url=f"sqlite:///{root}/events.db")
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        async with podium.Client(settings) as client:
            source = EventSource("bench", subject, stream, Action("start", on_event))
            consumers = await start_events(client, {"bench": source}, servers=[url])
            try:
                latencies = []
                warmup = min(20, count // 5)
                for i in range(warmup + count):
                    event_id = f"e{i}"
                    STARTED[event_id] = asyncio.Event()
                    t0 = time.perf_counter()
                    await js.publish(subject, json.dumps({"id": event_id}).encode())
                    async with asyncio.timeout(10):
                        await STARTED[event_id].wait()
                    if i >= warmup:
                        latencies.append(STARTED_AT[event_id] - t0)
            finally:
                await consumers.stop()
        latencies.sort()
        q = statistics.quantiles(latencies, n=100)
        print(f"NATS event -> first step, SQLite, {count} events one at a time:")
        print(
            f"  median {ms(statistics.median(latencies))}   p90 {ms(q[89])}   p99 {ms(q[98])}"
            f"   min {ms(latencies[0])}   (target: median under 5 ms)"
        )
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await nc.close()


async def bench_schedules(root: Path, count: int, workers: int) -> None:
    path = root / "schedules.db"
    t0 = 1_800_000_000.0  # a whole minute
    clock = ManualClock(start=t0)
    settings = podium.Settings(database_url=f"sqlite:///{path}", poll_seconds=0.5)
    async with podium.Client(settings, worker=False, clock=clock) as control:
        for i in range(count):
            await control.add_schedule(scheduled, "* * * * *", i, name=f"s{i:04d}")
    stores = [SQLiteStore(path) for _ in range(workers)]
    pool = [podium.Worker(s, settings, clock=clock) for s in stores]
    for s in stores:
        await s.open()
    for w in pool:
        await w.start()
    watch = sqlite3.connect(path, timeout=30)
    try:
        await asyncio.sleep(0.2)  # the schedulers have looked once and sleep
        start = time.perf_counter()
        clock.advance("1m")
        created = completed = None
        while completed is None:
            await asyncio.sleep(0.002)
            n, done = watch.execute(
                "SELECT COUNT(*), COALESCE(SUM(status = 'completed'), 0) FROM runs"
            ).fetchone()
            if created is None and n >= count:
                created = time.perf_counter() - start
            if done >= count:
                completed = time.perf_counter() - start
            if time.perf_counter() - start > 60:
                raise SystemExit(f"only {n} of {count} runs after 60 s")
        keys = [r[0] for r in watch.execute("SELECT key FROM runs")]
        claims = watch.execute("SELECT COUNT(*) FROM schedule_fires").fetchone()[0]
        schedulers = [w.scheduler for w in pool if w.scheduler is not None]
        doubled = (len(keys) - len(set(keys))) + sum(s.repeated for s in schedulers)
        split = " + ".join(str(s.started) for s in schedulers)
        assert created is not None
        print(f"{count} schedules falling due at once, {workers} workers on one SQLite file:")
        print(
            f"  all runs started after {ms(created)} (target: under 1 s); all completed after {ms(completed)}"
        )
        print(
            f"  runs: {len(keys)} ({split} per worker); started twice: {doubled} (must be 0); "
            f"claims left: {claims}"
        )
    finally:
        watch.close()
        for w in pool:
            await w.stop()
        for s in stores:
            await s.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300, help="NATS events to time (0: skip)")
    parser.add_argument("--schedules", type=int, default=1000, help="schedules due at once (0: skip)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        if args.events:
            try:
                await bench_events(root, args.events, args.nats)
            except OSError as exc:
                print(f"NATS benchmark skipped: {exc}", file=sys.stderr)
        if args.schedules:
            await bench_schedules(root, args.schedules, args.workers)


if __name__ == "__main__":
    asyncio.run(main())
