"""Agent loop overhead per turn, excluding model and tool time.

```
.venv/bin/python bench/agents.py            # about half a minute
.venv/bin/python bench/agents.py --quick    # a few seconds, noisier
.venv/bin/python bench/agents.py --dir /path/on/the/disk/to/measure
```
An agent (``podium.Agent``) runs ``N`` turns against a scripted model: each turn is one model step (the
model asks for one tool call) and one tool step (an instant tool), then a last turn answers. The figure is
the marginal time of one turn, ``(T(N) - T(0)) / N`` over sequential runs, so the run's fixed cost (start,
end, the answering turn) is not spread over the turns. Beside it is the floor measured in the same run: the
same loop as a plain Python ``for`` loop that builds the same requests and calls the same model function and
the same tool directly. The overhead is the difference; the issue's target is a median under 300 µs on the
in-memory store. On SQLite the overhead includes the two durable commits a turn makes (its model step and
its tool step); the cost of one raw ``INSERT`` + ``COMMIT`` (WAL, synchronous=FULL) is printed beside it.

The main figure uses an ``async`` model function and an ``async`` tool. A second row uses the
``ScriptedModel`` and a plain ``def`` tool as they are: the engine calls sync functions in a worker
thread, so that row also pays two thread hops per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import Figure, render, sqlite_floor

import podium
from podium.models import Message, ModelRequest, register
from podium.models.registry import _REGISTERED
from podium.testing import ScriptedModel, call

TURNS = 20


@podium.tool
async def bump(i: int) -> int:
    """Add one.

    Args:
        i: A number.
    """
    return i + 1


@podium.tool(name="bump")
def bump_sync(i: int) -> int:
    """Add one.

    Args:
        i: A number.
    """
    return i + 1


class AsyncScripted:
    """The scripted model behind an ``async`` call, so the engine awaits it in the run's own task."""

    def __init__(self, inner: ScriptedModel) -> None:
        self.inner = inner

    async def __call__(self, request: ModelRequest) -> Any:
        return self.inner(request)


def script(turns: int) -> ScriptedModel:
    return ScriptedModel(*(call("bump", i=k) for k in range(turns)), "done")


def agent(name: str, turns: int, *, sync: bool) -> podium.Agent:
    model = script(turns)
    target: Any = model if sync else AsyncScripted(model)
    register(f"bench.{name}", target)
    return podium.Agent(
        name,
        "Call bump until told otherwise.",
        model=f"bench.{name}",
        tools=[bump_sync if sync else bump],
        max_turns=turns + 1,
    )


AGENTS = {
    (n, sync): agent(f"agent_{n}{'_sync' if sync else ''}", n, sync=sync)
    for n in (0, TURNS)
    for sync in (0, 1)
}


@podium.flow(name="bench.agent")
async def agent_flow(ctx: podium.Context, params: dict[str, int]) -> int:
    result = await AGENTS[params["turns"], params["sync"]].run(ctx, "go")
    return result.tool_calls


# -- the floor: the same loop in plain Python -----------------------------------------------------------
async def plain_loop(a: podium.Agent, sync: bool) -> int:
    """What ``Agent.run`` does, minus Podium: requests built, the model function and tools called directly."""
    model: Any = _REGISTERED[a.model][1]
    tools = {t.name: t for t in a.tools}
    schemas = a._tool_schemas()
    history = [Message(role="user", content="go")]
    calls = 0
    for _ in range(a.max_turns):
        request = ModelRequest(
            messages=[Message(role="system", content=a._system()), *history], tools=schemas
        )
        completion = model(request) if sync else await model(request)
        if not completion.tool_calls:
            return calls
        history.append(Message(role="assistant", content=completion.text, tool_calls=completion.tool_calls))
        for c in completion.tool_calls:
            t = tools[c.name]
            args = t.validate(c.arguments)
            result = t.fn(**args) if sync else await t.fn(**args)
            history.append(Message(role="tool", tool_call_id=c.id, content=json.dumps(result)))
            calls += 1
    raise RuntimeError("the plain loop ran out of turns")


# -- measurements ---------------------------------------------------------------------------------------
def clear_requests() -> None:
    for a in AGENTS.values():
        target = _REGISTERED[a.model][1]
        (target.inner if isinstance(target, AsyncScripted) else target).requests.clear()


async def runs_seconds(client: podium.Client, turns: int, sync: bool, runs: int) -> float:
    """Seconds per run of the agent flow with ``turns`` tool turns, runs one after another."""
    clear_requests()
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(runs):
        calls = await (await client.start(agent_flow, {"turns": turns, "sync": int(sync)})).result()
        assert calls == turns, calls
    return (time.perf_counter() - t0) / runs


async def plain_seconds(turns: int, sync: bool, runs: int) -> float:
    clear_requests()
    gc.collect()
    a = AGENTS[turns, sync]
    t0 = time.perf_counter()
    for _ in range(runs):
        assert await plain_loop(a, sync) == turns
    return (time.perf_counter() - t0) / runs


async def per_turn(settings: podium.Settings, sync: bool, reps: int, runs: int) -> tuple[float, float, float]:
    """Median (marginal seconds per turn with Podium, per turn in plain Python, fixed seconds per run)."""
    podium_turn, plain_turn, fixed = [], [], []
    async with podium.Client(settings) as client:
        await runs_seconds(client, TURNS, sync, 3)  # warm-up: imports, adapters, caches
        for _ in range(reps):  # interleaved, so the machine's weather hits both alike
            full = await runs_seconds(client, TURNS, sync, runs)
            empty = await runs_seconds(client, 0, sync, runs)
            podium_turn.append((full - empty) / TURNS)
            fixed.append(empty)
            plain_full = await plain_seconds(TURNS, sync, runs)
            plain_empty = await plain_seconds(0, sync, runs)
            plain_turn.append((plain_full - plain_empty) / TURNS)
    return statistics.median(podium_turn), statistics.median(plain_turn), statistics.median(fixed)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


async def bench_memory(reps: int, runs: int) -> list[Figure]:
    settings = podium.Settings(database_url="memory://", poll_seconds=0.05)
    turn, floor, fixed = await per_turn(settings, False, reps, runs)
    overhead = turn - floor
    sync_turn, sync_floor, _ = await per_turn(settings, True, reps, runs)
    return [
        Figure(
            "a",
            f"in-memory: one turn (model step + tool step), {TURNS}-turn runs × {runs} × {reps} reps",
            us(turn),
            f"plain loop: {us(floor)}",
        ),
        Figure(
            "a",
            "  agent loop overhead per turn (the difference)",
            us(overhead),
            "",
            "< 300 µs",
            overhead < 3e-4,
        ),
        Figure("a", "  fixed cost per run (start, one answering turn, end)", us(fixed)),
        Figure(
            "a",
            "  same with a sync ScriptedModel and a def tool (two thread hops a turn)",
            us(sync_turn),
            f"plain loop: {us(sync_floor)}; overhead {us(sync_turn - sync_floor)}",
        ),
    ]


async def bench_sqlite(directory: Path, reps: int, runs: int, commits: int) -> list[Figure]:
    settings = podium.Settings(database_url=f"sqlite:///{directory / 'agents.db'}", poll_seconds=0.05)
    raw = statistics.median(sqlite_floor(directory, commits) for _ in range(3))
    turn, floor, fixed = await per_turn(settings, False, reps, runs)
    overhead = turn - floor
    return [
        Figure(
            "b",
            f"SQLite: one turn (model step + tool step, each committed), {runs} runs × {reps} reps",
            us(turn),
            f"plain loop: {us(floor)}",
        ),
        Figure(
            "b",
            "  agent loop overhead per turn (the difference), two durable commits included",
            us(overhead),
            f"raw INSERT+COMMIT: {us(raw)} each; overhead = {overhead / raw:.2f}× one",
        ),
        Figure("b", "  fixed cost per run (start, one answering turn, end)", us(fixed)),
    ]


async def run_all(args: argparse.Namespace, directory: Path, say: Callable[[str], None]) -> list[Figure]:
    quick = args.quick
    say("measuring the in-memory store ...")
    figures = await bench_memory(3 if quick else 7, 10 if quick else 50)
    say("measuring SQLite ...")
    figures += await bench_sqlite(directory, 3 if quick else 5, 3 if quick else 10, 100 if quick else 500)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    parser.add_argument("--dir", help="where the SQLite files go (default: a temporary directory)")
    args = parser.parse_args()
    parent = Path(args.dir) if args.dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="podium-bench-agents-", dir=parent))
    try:
        t0 = time.perf_counter()
        figures = asyncio.run(run_all(args, directory, lambda s: print(s, file=sys.stderr, flush=True)))
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    title = (
        f"podium {podium.__version__} agent bench{' (--quick)' if args.quick else ''}: "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, files in {directory.parent}, "
        f"{elapsed:.0f} s"
    )
    render(figures, title)


if __name__ == "__main__":
    main()
