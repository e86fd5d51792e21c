"""Management benchmarks: the prompt registry's lookup and render, the evaluation harness, and replay.

```
.venv/bin/python bench/management.py                   # about two minutes
.venv/bin/python bench/management.py --quick            # a few seconds, noisier
.venv/bin/python bench/management.py --only evals       # or: --only prompts
```
Every figure runs on a real SQLite file (WAL, synchronous=FULL) unless it says otherwise.

| measure | target |
|---|---|
| ``await ctx.prompt(NAME)`` + ``render`` in a flow run (label lookup on SQLite, journaled) | under 50 us |
| ``client.evaluate`` overhead per item, 1,000 items on a scripted model | under 1 ms per item |
| ``podium replay`` (``client.check_replay``) of a finished 1,000-step run | under 1 s |

**Prompts**: medians over many calls, each timed alone. A label is read from the store on every resolution
(one indexed row, plus the split's row when no version or label is asked for); only immutable versions are
cached in memory, so a label moved by another process applies to the next resolution. The figures show what
that costs.

**Eval overhead** is what the harness adds to the runs themselves: the same 1,000 runs (one scripted model
call each) are started and awaited directly, at the same concurrency (``start`` + ``result``), then run
through ``client.evaluate`` (a stored evaluation, one durable run per item with its idempotency key, cost
from the journal, the exact-match scorer, results stored in batches, the summary); the overhead is the
difference divided by the items, the median over paired rounds. On the memory store this is the harness's
own CPU; on a SQLite file the evaluation starts the runs of the slots that came free together in one
transaction (``start_many``), so it commits less than the one-by-one baseline and the difference is negative.

**Replay**: the check itself; beside it, the whole ``podium replay`` command in a new process (interpreter
start and imports included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import podium
from podium.models import register
from podium.testing import ScriptedModel

TEMPLATE = (
    "You triage support tickets for {{ team }}.\n"
    "{% for rule in rules %}- {{ rule }}\n{% endfor %}"
    "Ticket:\n{{ ticket }}\nAnswer with one of: {{ labels | join(', ') }}."
)
VARS: dict[str, Any] = {
    "team": "Acme",
    "rules": ["be brief", "never promise refunds", "escalate outages"],
    "ticket": "The printer on floor 3 is on fire and nobody answers the phone.",
    "labels": ["bug", "refund", "question", "outage"],
}
TIMES: dict[str, list[float]] = {}


@podium.flow(name="bench.prompt_lookup")
async def lookup_flow(ctx: podium.Context, n: int) -> int:
    """Resolve (journaled) and render the prompt ``n`` times, timing each; a split when asked."""
    resolve, both = TIMES.setdefault(f"{ctx.run_id}:resolve", []), TIMES.setdefault(f"{ctx.run_id}:both", [])
    total = 0
    for _ in range(n):
        t0 = time.perf_counter()
        prompt = await ctx.prompt("triage")
        t1 = time.perf_counter()
        total += len(prompt.render(**VARS))
        t2 = time.perf_counter()
        resolve.append(t1 - t0)
        both.append(t2 - t0)
    return total


def us(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e6:.1f} us"


async def prompts_section(quick: bool) -> None:
    n = 500 if quick else 3000
    console = Console()
    table = Table("measure", "median", "p90", title=f"prompt registry on SQLite ({n} calls each)")
    with tempfile.TemporaryDirectory() as tmp:
        settings = podium.Settings(database_url=f"sqlite:///{Path(tmp)}/bench.db", poll_seconds=0.05)
        async with podium.Client(settings) as client:
            await client.prompts.push("triage", TEMPLATE, label="production")
            await client.prompts.push("triage", TEMPLATE + "\nThink first.", label="candidate")
            p = await client.prompts.get("triage")

            render = []
            for _ in range(n):
                t0 = time.perf_counter()
                p.render(**VARS)
                render.append(time.perf_counter() - t0)
            lookup = []
            for _ in range(n):
                t0 = time.perf_counter()
                await client.prompts.get("triage")
                lookup.append(time.perf_counter() - t0)

            def p90(v: list[float]) -> str:
                return f"{sorted(v)[int(len(v) * 0.9)] * 1e6:.1f} us"

            table.add_row("render (Jinja2 sandbox, compiled once)", us(render), p90(render))
            table.add_row("client.prompts.get (label row + cached version)", us(lookup), p90(lookup))
            for split in (False, True):
                if split:
                    await client.prompts.split("triage", {"production": 90, "candidate": 10})
                h = await client.start(lookup_flow, n)
                await h.result(timeout=300)
                resolve, both = TIMES[f"{h.id}:resolve"], TIMES[f"{h.id}:both"]
                how = "with a 90/10 split" if split else "label production"
                table.add_row(f"ctx.prompt in a run, {how} (journaled)", us(resolve), p90(resolve))
                table.add_row(f"ctx.prompt + render in a run, {how}", us(both), p90(both))
    console.print(table)
    try:
        import os

        console.print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    except OSError:
        pass


register("bench.scripted", ScriptedModel(lambda r: r.messages[-1].content.upper()))


@podium.flow(name="bench.eval_item")
async def eval_item(ctx: podium.Context, text: str) -> str:
    return await ctx.model("bench.scripted").generate(text)


@podium.step(name="bench.tick")
async def tick(i: int) -> int:
    return i


@podium.flow(name="bench.long")
async def long_run(ctx: podium.Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await tick(i)
    return total


async def _direct(client: podium.Client, items: int, concurrency: int, tag: str) -> float:
    queue = iter(range(items))

    async def lane() -> None:
        for i in queue:
            h = await client.start(eval_item, f"item {i}", key=f"direct:{tag}:{i}")
            await client.result(h.id)

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def bench_eval(url: str, items: int, rounds: int, concurrency: int = 8) -> tuple[float, float, float]:
    """(direct seconds, evaluate seconds, overhead per item in seconds): medians over ``rounds`` rounds,
    each running the direct batch and the evaluation one after the other (the machine's load moves)."""
    settings = podium.Settings(database_url=url, poll_seconds=0.05)
    async with podium.Client(settings) as client:
        await client.datasets.create("bench")
        await client.datasets.add_many(
            "bench", [{"input": f"item {i}", "expected": f"ITEM {i}"} for i in range(items)]
        )
        await _direct(client, min(50, items), concurrency, "warm")  # imports, caches, the first model call
        directs, evals = [], []
        for r in range(rounds):
            directs.append(await _direct(client, items, concurrency, f"run{r}"))
            t0 = time.perf_counter()
            report = await client.evaluate("bench", eval_item, concurrency=concurrency, resume=False)
            evals.append(time.perf_counter() - t0)
            assert report.variant("base").scores == {"exact": 1.0}, report.variants
    direct, evaluated = statistics.median(directs), statistics.median(evals)
    return direct, evaluated, statistics.median(e - d for d, e in zip(directs, evals, strict=True)) / items


async def bench_replay(steps: int, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds of ``client.check_replay`` of a finished ``steps``-step run on SQLite, ``repeat`` times; and of
    the whole ``podium replay`` command (a new process: interpreter, imports, the check), ``repeat`` times."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp)}/bench.db"
        async with podium.Client(podium.Settings(database_url=url, poll_seconds=0.05)) as client:
            h = await client.start(long_run, steps)
            await h.result(timeout=600)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                report = await client.check_replay(h.id)
                times.append(time.perf_counter() - t0)
                assert report.ok, report.problem
        command = [sys.executable, "-m", "podium.cli", "replay", __file__, "--run", h.id, "--db", url]
        walls = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            done = await asyncio.to_thread(
                subprocess.run, command, capture_output=True, text=True, timeout=120
            )
            walls.append(time.perf_counter() - t0)
            assert done.returncode == 0, done.stderr
    return times, walls


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


async def evals_section(quick: bool) -> None:
    items, rounds = (200, 3) if quick else (1000, 5)
    console = Console()
    table = Table(
        "measure",
        "figure",
        "target",
        title=f"evaluation harness ({items} items, concurrency 8, medians of {rounds} rounds)",
    )
    rows: list[tuple[str, Any, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, url in (("memory store", "memory://"), ("SQLite file", f"sqlite:///{Path(tmp)}/eval.db")):
            direct, evaluated, overhead = await bench_eval(url, items, rounds)
            rows.append((f"{label}: {items} runs started and awaited directly", f"{direct:.2f} s", ""))
            rows.append((f"{label}: the same through client.evaluate", f"{evaluated:.2f} s", ""))
            rows.append(
                (f"{label}: harness overhead per item (median of {rounds} pairs)", _ms(overhead), "< 1 ms")
            )
    steps = 200 if quick else 1000
    times, walls = await bench_replay(steps, 3 if quick else 5)
    median = statistics.median(times)
    what = f"replay of a {steps}-step run: client.check_replay (median of {len(times)})"
    rows.append((what, f"{median:.3f} s", "< 1 s"))
    rows.append((f"the whole `podium replay` command, a new process (median of {len(walls)})",
                 f"{statistics.median(walls):.2f} s", ""))  # fmt: skip
    for r in rows:
        table.add_row(*r)
    console.print(table)
    try:
        console.print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    except OSError:
        pass


async def main(quick: bool, only: str | None) -> None:
    if only in (None, "prompts"):
        await prompts_section(quick)
    if only in (None, "evals"):
        await evals_section(quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and items: faster, noisier")
    parser.add_argument("--only", choices=["prompts", "evals"], help="one section only")
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.only))
