"""Control-flow benchmarks: races (``ctx.first``), quorums (``ctx.wait``), groups and cancel scopes.

```
.venv/bin/python bench/control.py           # about 20 seconds
.venv/bin/python bench/control.py --quick   # a few seconds, noisier
```
Every figure runs on a real SQLite file (WAL, synchronous=FULL), so each race's outcome is journaled and
durable before the flow goes on. The floor beside each figure is the same shape written with plain asyncio
(no journal), measured in the same run.

| measure | target |
|---|---|
| ``ctx.first`` over 100 hedged 10 ms steps | under 30 ms wall, journaled |

Trigger figures (NATS event to first step, 1,000 schedules falling due at once) are in ``bench/triggers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import podium


@podium.step(name="bench.hedge")
async def hedge(i: int, ms: float) -> int:
    await asyncio.sleep(ms / 1000 * (1 + (i % 7) / 10))  # 10 ms, 11 ms, ... 16 ms: one of them wins
    return i


@podium.flow(name="bench.first")
async def first(ctx: podium.Context, n: int) -> int:
    return await ctx.first(*(hedge(i, 10) for i in range(n)))  # type: ignore[no-any-return]


@podium.flow(name="bench.quorum")
async def quorum(ctx: podium.Context, n: int) -> list[int]:
    got = await ctx.wait([hedge(i, 10) for i in range(n)], n=n // 2 + 1)
    return list(got)


@podium.flow(name="bench.group")
async def group(ctx: podium.Context, n: int) -> int:
    async with ctx.group() as g:
        handles = [g.start(hedge(i, 10)) for i in range(n)]
    return sum([await h for h in handles])


@podium.flow(name="bench.scope")
async def scope(ctx: podium.Context, n: int) -> bool:
    async with ctx.scope() as s:

        async def guard() -> None:
            await hedge(0, 5)
            s.cancel()

        await ctx.gather(guard(), *(hedge(i, 1000) for i in range(n)))
    return s.cancelled


async def floor_first(n: int) -> int:
    tasks = [asyncio.create_task(hedge.fn(i, 10)) for i in range(n)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
    return next(iter(done)).result()  # type: ignore[no-any-return]


async def floor_quorum(n: int) -> list[int]:
    out: list[int] = []
    tasks = [asyncio.create_task(hedge.fn(i, 10)) for i in range(n)]
    for fut in asyncio.as_completed(tasks):
        out.append(await fut)
        if len(out) == n // 2 + 1:
            break
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


async def measure(client: podium.Client, flow: Any, arg: Any, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        h = await client.start(flow, arg)
        await h.result(timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def measure_floor(fn: Any, arg: Any, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await fn(arg)
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def main(quick: bool) -> None:
    reps = 5 if quick else 30
    console = Console()
    with tempfile.TemporaryDirectory() as d:
        settings = podium.Settings(database_url=f"sqlite:///{Path(d) / 'bench.db'}", poll_seconds=0.05)
        async with podium.Client(settings) as client:
            await measure(client, first, 10, 2)  # warm up (pydantic, SQLite pages)
            rows = []
            t = await measure(client, first, 100, reps)
            f = await measure_floor(floor_first, 100, reps)
            rows.append(("ctx.first over 100 hedged 10 ms steps", t, f, "< 30 ms", statistics.median(t) < 30))
            t = await measure(client, quorum, 100, reps)
            f = await measure_floor(floor_quorum, 100, reps)
            rows.append(("ctx.wait 51 of 100 hedged 10 ms steps", t, f, "", None))
            t = await measure(client, group, 100, reps)
            rows.append(("ctx.group of 100 10 ms steps (all awaited)", t, None, "", None))
            t = await measure(client, scope, 100, reps)
            rows.append(("ctx.scope cancelling 100 running steps", t, None, "", None))
    table = Table(title=f"control flow on SQLite (median of {reps} runs; wall time from start to result)")
    for col in ("measure", "podium", "plain asyncio (no journal)", "target", ""):
        table.add_column(col)
    for name, t, f, target, met in rows:
        floor = "" if f is None else f"{statistics.median(f):.1f} ms"
        verdict = "" if met is None else ("[green]met[/]" if met else "[red]missed[/]")
        table.add_row(
            name,
            f"{statistics.median(t):.1f} ms (p90 {sorted(t)[int(len(t) * 0.9) - 1]:.1f})",
            floor,
            target,
            verdict,
        )
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
