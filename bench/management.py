"""Management benchmarks: the prompt registry's lookup and render.

```
.venv/bin/python bench/management.py           # about 10 seconds
.venv/bin/python bench/management.py --quick    # a few seconds, noisier
```
Every figure runs on a real SQLite file (WAL, synchronous=FULL). Medians over many calls, each timed alone.

| measure | target |
|---|---|
| ``await ctx.prompt(NAME)`` + ``render`` in a flow run (label lookup on SQLite, journaled) | under 50 us |

A label is read from the store on every resolution (one indexed row, plus the split's row when no version or
label is asked for); only immutable versions are cached in memory, so a label moved by another process
applies to the next resolution. The figures show what that costs.
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


async def main(quick: bool) -> None:
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: faster, noisier")
    asyncio.run(main(parser.parse_args().quick))
