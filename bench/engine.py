"""Engine benchmarks: step overhead, durable commit cost, throughput, fan-out, crash resume.

```
.venv/bin/python bench/engine.py            # full run (about a minute)
.venv/bin/python bench/engine.py --quick    # a few seconds, noisier
.venv/bin/python bench/engine.py --dir /path/on/the/disk/to/measure
```
Each figure is printed beside the floor it is judged against, measured in the same run on the same machine
and disk, and beside the target from the issue:

| measure | target |
|---|---|
| in-memory step overhead | under 5 µs per step |
| durable step overhead (SQLite) | within 1.5x of a raw ``INSERT`` + ``COMMIT`` (WAL, synchronous=FULL) |
| 1,000-way ``ctx.map`` fan-out on SQLite | under 100 ms wall and under 200 MB peak RSS |
| resume of a crashed 100-step run | under 100 ms from client open to result |

Fan-out and crash figures run in fresh subprocesses of this script (``--child``), so peak RSS belongs to
that one measurement and the crash is a real SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import podium

# -- flows -------------------------------------------------------------------------------------------


@podium.step(name="bench.noop")
async def noop(i: int) -> int:
    return i


@podium.flow(name="bench.chain")
async def chain(ctx: podium.Context, n: int) -> int:
    """``n`` trivial steps, one after the other."""
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@podium.step(name="bench.nap")
async def nap(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


@podium.flow(name="bench.fanout")
async def fanout(ctx: podium.Context, n: int) -> int:
    """``n`` steps at once, each sleeping 10 ms."""
    return sum(await ctx.map(nap, range(n)))


CRASH_AT: int | None = None
"""Set in the crash child: the step with this index SIGKILLs its own process."""
FIRST_FRESH: float | None = None
"""perf_counter() when the resuming process executed its first step that was not in the journal."""


@podium.step(name="bench.fragile")
async def fragile(i: int) -> int:
    global FIRST_FRESH
    if CRASH_AT is not None and i >= CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    if FIRST_FRESH is None:
        FIRST_FRESH = time.perf_counter()
    return i


@podium.flow(name="bench.fragile_chain")
async def fragile_chain(ctx: podium.Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await fragile(i)
    return total


# -- helpers -----------------------------------------------------------------------------------------


def sqlite_settings(path: Path, **changes: Any) -> podium.Settings:
    return podium.Settings(database_url=f"sqlite:///{path}", poll_seconds=0.05, **changes)


MEMORY = podium.Settings(database_url="memory://", poll_seconds=0.05)


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def sequential_runs(client: podium.Client, flow: podium.Flow[Any, Any], n: int, runs: int) -> float:
    """Seconds for ``runs`` runs of ``flow(n)``, one after another."""
    t0 = time.perf_counter()
    for _ in range(runs):
        handle = await client.start(flow, n)
        await handle.result()
    return time.perf_counter() - t0


async def concurrent_runs(client: podium.Client, flow: podium.Flow[Any, Any], n: int, runs: int) -> float:
    """Seconds for ``runs`` runs of ``flow(n)`` started together."""
    t0 = time.perf_counter()
    handles = [await client.start(flow, n) for _ in range(runs)]
    await asyncio.gather(*(h.result() for h in handles))
    return time.perf_counter() - t0


async def plain_chain(n: int) -> int:
    async def step(i: int) -> int:
        return i

    total = 0
    for i in range(n):
        total += await step(i)
    return total


def sqlite_floor(directory: Path, commits: int) -> float:
    """Seconds per ``INSERT`` + ``COMMIT`` (WAL, synchronous=FULL): the cost of making one fact durable."""
    path = directory / f"floor-{time.monotonic_ns()}.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, run_id TEXT, step TEXT, data TEXT)")
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events (run_id, step, data) VALUES ('warm', '0', '{}')")
        db.execute("COMMIT")
        t0 = time.perf_counter()
        for i in range(commits):
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO events (run_id, step, data) VALUES (?, ?, ?)", ("run", str(i), '{"result":1}')
            )
            db.execute("COMMIT")
        return (time.perf_counter() - t0) / commits
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def child(mode: str, directory: Path, **options: Any) -> dict[str, Any]:
    """Run this script in a fresh process for one measurement; its JSON report."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--dir", str(directory)]
    for k, v in options.items():
        cmd += [f"--{k}", str(v)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({proc.returncode}):\n{proc.stderr}")
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


# -- measurements ------------------------------------------------------------------------------------


@dataclass
class Figure:
    section: str
    measure: str
    value: str
    floor: str = ""
    target: str = ""
    ok: bool | None = None


async def bench_memory(reps: int, runs: int) -> list[Figure]:
    """(a) per-step overhead on the memory store vs. plain awaited coroutines."""
    n = 100
    async with podium.Client(MEMORY) as client:  # warm-up: imports, adapters, caches
        await sequential_runs(client, chain, n, 5)
    full, empty, floor = [], [], []
    for _ in range(reps):
        async with podium.Client(MEMORY) as client:
            gc.collect()
            full.append(await sequential_runs(client, chain, n, runs) / (runs * n))
        async with podium.Client(MEMORY) as client:
            gc.collect()
            empty.append(await sequential_runs(client, chain, 0, runs) / runs)
        t0 = time.perf_counter()
        for _ in range(runs):
            await plain_chain(n)
        floor.append((time.perf_counter() - t0) / (runs * n))
    per_step = median(full)
    per_run = median(empty)
    marginal = per_step - per_run / n
    base = median(floor)
    return [
        Figure(
            "a",
            f"in-memory step overhead ({n}-step chain, {runs} runs × {reps} reps)",
            f"{marginal * 1e6:.1f} µs/step",
            f"plain await: {base * 1e6:.2f} µs/step",
            "< 5 µs",
            marginal < 5e-6,
        ),
        Figure(
            "a",
            "  same, all-in (run start and end spread over the steps)",
            f"{per_step * 1e6:.1f} µs/step",
            f"fixed cost per run: {per_run * 1e6:.0f} µs",
        ),
    ]


async def bench_durable(directory: Path, reps: int, runs: int, floor_commits: int) -> list[Figure]:
    """(b) per-step overhead on SQLite vs. a raw durable INSERT+COMMIT; (c) runs/s."""
    n = 10
    db = directory / "durable.db"
    full, empty, floor = [], [], []
    async with podium.Client(sqlite_settings(db)) as client:
        await sequential_runs(client, chain, n, 3)  # warm-up
        for _ in range(reps):  # interleaved, so disk weather hits both alike
            floor.append(sqlite_floor(directory, floor_commits))
            full.append(await sequential_runs(client, chain, n, runs) / (runs * n))
            empty.append(await sequential_runs(client, chain, 0, runs) / runs)
    per_step, per_run, raw = median(full), median(empty), median(floor)
    marginal = per_step - per_run / n
    ratio = marginal / raw

    concurrent = 2 * runs
    rates = []
    async with podium.Client(sqlite_settings(directory / "throughput.db")) as client:
        await concurrent_runs(client, chain, n, 10)  # warm-up
        for _ in range(reps):
            rates.append(concurrent / await concurrent_runs(client, chain, n, concurrent))
    return [
        Figure(
            "b",
            f"durable step overhead, SQLite ({n}-step chain, {runs} runs × {reps} reps)",
            f"{marginal * 1e6:.0f} µs/step",
            f"raw INSERT+COMMIT: {raw * 1e6:.0f} µs",
            "≤ 1.5× floor",
            ratio <= 1.5,
        ),
        Figure("b", "  ratio to the raw commit floor", f"{ratio:.2f}×", "", "≤ 1.5×", ratio <= 1.5),
        Figure(
            "b",
            "  same, all-in (run start and end spread over the steps)",
            f"{per_step * 1e6:.0f} µs/step",
            f"{per_step / raw:.2f}× floor; fixed cost per run: {per_run * 1e3:.2f} ms",
        ),
        Figure(
            "c",
            f"{n}-step runs/s on SQLite, one at a time",
            f"{1 / (per_step * n):.0f} runs/s",
            f"floor: {1 / (raw * (n + 2)):.0f} runs/s at {n + 2} commits/run",
        ),
        Figure(
            "c",
            f"{n}-step runs/s on SQLite, {concurrent} started together",
            f"{median(rates):.0f} runs/s",
            "group commit shares fsyncs",
        ),
    ]


def bench_fanout(directory: Path, reps: int, width: int) -> list[Figure]:
    """(d) a ``width``-way ctx.map of 10 ms steps on SQLite vs. plain asyncio.gather (fresh processes)."""
    engine = [child("fanout", directory, n=width) for _ in range(reps)]
    plain = [child("gather", directory, n=width) for _ in range(reps)]
    wall = median([r["wall"] for r in engine])
    peak = max(r["peak_mb"] for r in engine)
    base = min(r["base_mb"] for r in engine)
    plain_wall = median([r["wall"] for r in plain])
    plain_peak = max(r["peak_mb"] for r in plain)
    return [
        Figure(
            "d",
            f"{width:,}-way ctx.map of 10 ms steps, SQLite: wall",
            f"{wall * 1e3:.0f} ms",
            f"asyncio.gather: {plain_wall * 1e3:.0f} ms",
            "< 100 ms",
            wall < 0.1,
        ),
        Figure(
            "d",
            "  peak RSS of the process",
            f"{peak:.0f} MB (+{peak - base:.0f} MB over idle client)",
            f"asyncio.gather: {plain_peak:.0f} MB",
            "< 200 MB",
            peak < 200,
        ),
    ]


async def bench_resume(directory: Path, reps: int) -> list[Figure]:
    """(e) resume a 100-step run whose process was SIGKILLed in step 50."""
    global FIRST_FRESH
    n, crash_at, lease = 100, 50, 0.2
    totals, replays = [], []
    for rep in range(reps):
        db = directory / f"resume-{rep}.db"
        key = f"crash-{rep}"
        report = await asyncio.to_thread(
            child, "crash", directory, db=db, key=key, n=n, at=crash_at, lease=lease
        )
        assert report["returncode"] == -signal.SIGKILL, report
        await asyncio.sleep(lease * 1.5)  # the dead process's lease must lapse first; not part of the resume
        FIRST_FRESH = None
        gc.collect()
        t0 = time.perf_counter()
        async with podium.Client(sqlite_settings(db, lease_seconds=lease)) as client:
            handle = await client.start(fragile_chain, n, key=key)
            result = await handle.result()
            t1 = time.perf_counter()
        assert result == sum(range(n)), result
        assert FIRST_FRESH is not None
        totals.append(t1 - t0)
        replays.append(FIRST_FRESH - t0)
    total, replay = median(totals), median(replays)
    return [
        Figure(
            "e",
            f"resume a {n}-step run SIGKILLed in step {crash_at}: client open → result",
            f"{total * 1e3:.1f} ms",
            f"{n - crash_at} steps left to run and commit",
            "< 100 ms",
            total < 0.1,
        ),
        Figure(
            "e",
            f"  of which open, claim and replay of {crash_at} journaled steps",
            f"{replay * 1e3:.1f} ms",
            f"then {(total - replay) / (n - crash_at) * 1e3:.2f} ms per fresh step",
        ),
    ]


# -- child processes ---------------------------------------------------------------------------------


async def child_fanout(directory: Path, n: int) -> dict[str, Any]:
    db = directory / f"fanout-{os.getpid()}.db"
    async with podium.Client(sqlite_settings(db)) as client:
        await (await client.start(fanout, 10)).result()  # warm-up
        gc.collect()
        base = rss_mb()
        t0 = time.perf_counter()
        result = await (await client.start(fanout, n)).result()
        wall = time.perf_counter() - t0
    assert result == sum(range(n))
    return {"wall": wall, "peak_mb": peak_rss_mb(), "base_mb": base}


async def child_gather(n: int) -> dict[str, Any]:
    async def one(i: int) -> int:
        await asyncio.sleep(0.01)
        return i

    await asyncio.gather(*(one(i) for i in range(10)))
    base = rss_mb()
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    assert sum(results) == sum(range(n))
    return {"wall": wall, "peak_mb": peak_rss_mb(), "base_mb": base}


async def child_crashee(db: Path, key: str, n: int, at: int, lease: float) -> None:
    global CRASH_AT
    CRASH_AT = at
    async with podium.Client(sqlite_settings(db, lease_seconds=lease)) as client:
        await (await client.start(fragile_chain, n, key=key)).result()
    raise SystemExit("the crash child was meant to die in a step")


def run_child(args: argparse.Namespace) -> None:
    directory = Path(args.dir)
    if args.child == "fanout":
        print(json.dumps(asyncio.run(child_fanout(directory, args.n))))
    elif args.child == "gather":
        print(json.dumps(asyncio.run(child_gather(args.n))))
    elif args.child == "crash":  # a supervisor, so the parent gets a report rather than a dead child
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "crashee", "--dir", args.dir]
        cmd += ["--db", args.db, "--key", args.key, "--n", str(args.n), "--at", str(args.at)]
        cmd += ["--lease", str(args.lease)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        print(json.dumps({"returncode": proc.returncode, "stderr": proc.stderr[-2000:]}))
    elif args.child == "crashee":
        asyncio.run(child_crashee(Path(args.db), args.key, args.n, args.at, args.lease))
    else:
        raise SystemExit(f"unknown child {args.child!r}")


# -- main --------------------------------------------------------------------------------------------


def render(figures: list[Figure], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        for f in figures:
            verdict = "" if f.ok is None else ("ok" if f.ok else "MISSED")
            print(f"({f.section}) {f.measure}: {f.value} | {f.floor} | {f.target} {verdict}")
        return
    table = Table(title=title, title_justify="left")
    for name in ("", "measure", "figure", "beside", "target", ""):
        table.add_column(name)
    for f in figures:
        verdict = "" if f.ok is None else ("[green]met[/]" if f.ok else "[red]missed[/]")
        table.add_row(f.section, f.measure, f.value, f.floor, f.target, verdict)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    console.print(table)


async def run_all(args: argparse.Namespace, directory: Path, say: Callable[[str], None]) -> list[Figure]:
    quick = args.quick
    figures: list[Figure] = []
    steps: list[tuple[str, Callable[[], Awaitable[list[Figure]]]]] = [
        ("in-memory overhead", lambda: bench_memory(3 if quick else 7, 50 if quick else 300)),
        (
            "durable overhead and throughput",
            lambda: bench_durable(directory, 3 if quick else 5, 20 if quick else 100, 200 if quick else 1000),
        ),
        ("fan-out", lambda: asyncio.to_thread(bench_fanout, directory, 1 if quick else 3, 1000)),
        ("crash resume", lambda: bench_resume(directory, 2 if quick else 5)),
    ]
    for name, fn in steps:
        say(f"measuring {name} ...")
        figures += await fn()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    parser.add_argument("--dir", help="where the SQLite files go (default: a temporary directory)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for name, kind in (("n", int), ("at", int), ("lease", float), ("db", str), ("key", str)):
        parser.add_argument(f"--{name}", type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return

    parent = Path(args.dir) if args.dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="podium-bench-", dir=parent))
    try:
        t0 = time.perf_counter()
        figures = asyncio.run(run_all(args, directory, lambda s: print(s, file=sys.stderr, flush=True)))
        elapsed = time.perf_counter() - t0
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    title = (
        f"podium {podium.__version__} engine bench{' (--quick)' if args.quick else ''}: "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, files in {directory.parent}, "
        f"{elapsed:.0f} s"
    )
    render(figures, title)


if __name__ == "__main__":
    main()
