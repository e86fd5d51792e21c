"""Scale-out benchmark: durable steps on PostgreSQL, and runs/s with 1, 2 and 4 worker processes.

```
.venv/bin/python bench/scale.py                  # about a minute
.venv/bin/python bench/scale.py --quick          # a few seconds, noisier
.venv/bin/python bench/scale.py --url postgresql://user@host:5432/db
```
Needs ``podium[postgres]`` and a PostgreSQL server (default ``postgresql://postgres@127.0.0.1:5432/test``).
Everything happens in a schema of its own, dropped at the end. The server's settings are left as they are
(``fsync``, ``synchronous_commit``: printed in the title), so every commit waits for the disk.

| measure | beside | target |
|---|---|---|
| durable step overhead, one run at a time | a raw ``INSERT`` + ``COMMIT`` with psycopg | |
| durable step overhead, many runs at once (group commit) | the same floor | median under 1 ms per step |
| runs/s of a 10-step flow, 1, 2 and 4 ``Worker`` processes | the 1-process figure | the curve is reported |
| a step as a Ray task (``executor="ray"``), one at a time | the same local step | the overhead is reported |

The Ray figures need ``podium[ray]`` (``--no-ray`` skips them); the worker starts a local Ray instance
(``num_cpus=2``) on the first Ray step, which is timed separately.

Worker processes are this script run as children (``--child worker``), each a ``Worker`` on the shared
schema; the runs are created in one batch by the parent, and the clock stops when the last one completed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import podium
from podium.engine.worker import Worker
from podium.storage.base import Event, RunRecord
from podium.storage.postgres import PostgresStore
from podium.types import RunStatus

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
N = 10  # steps per run


@podium.step(name="scale.noop")
async def noop(i: int) -> int:
    return i


@podium.flow(name="scale.chain")
async def chain(ctx: podium.Context, n: int) -> int:
    """``n`` trivial steps, one after the other."""
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@podium.step(name="scale.ray_noop", executor="ray")
def ray_noop(i: int) -> int:
    return i


@podium.flow(name="scale.ray_chain")
async def ray_chain(ctx: podium.Context, n: int) -> int:
    """``n`` trivial steps run as Ray tasks, one after the other."""
    total = 0
    for i in range(n):
        total += await ray_noop(i)
    return total


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def settings(url: str, **changes: Any) -> podium.Settings:
    return podium.Settings(database_url=url, poll_seconds=0.05, **changes)


# -- floors ------------------------------------------------------------------------------------------


async def raw_floor(url: str, commits: int) -> float:
    """Seconds per ``INSERT`` + ``COMMIT`` (autocommit: one round trip and one WAL flush) with psycopg."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS floor (seq BIGSERIAL PRIMARY KEY, run_id TEXT, step TEXT, data TEXT)"
        )
        await conn.execute("INSERT INTO floor (run_id, step, data) VALUES ('warm', '0', '{}')")
        times = []
        for i in range(commits):
            t0 = time.perf_counter()
            await conn.execute(
                "INSERT INTO floor (run_id, step, data) VALUES (%s, %s, %s)", ("run", str(i), '{"result":1}')
            )
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


# -- one process ---------------------------------------------------------------------------------------


async def sequential(client: podium.Client, n: int, runs: int, flow: Any = chain) -> list[float]:
    """Seconds of each of ``runs`` runs of ``flow(n)``, one after another."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        handle = await client.start(flow, n)
        await handle.result()
        out.append(time.perf_counter() - t0)
    return out


async def together(client: podium.Client, n: int, runs: int) -> float:
    """Seconds for ``runs`` runs of ``chain(n)`` started together in one worker."""
    t0 = time.perf_counter()
    handles = await client.start_many([(chain, n, None) for _ in range(runs)])
    await asyncio.gather(*(h.result() for h in handles))
    return time.perf_counter() - t0


@dataclass
class Figure:
    measure: str
    value: str
    beside: str = ""
    target: str = ""
    ok: bool | None = None


async def bench_steps(url: str, reps: int, runs: int, wide: int, floor_commits: int) -> list[Figure]:
    floors, full, empty, amortized = [], [], [], []
    async with podium.Client(settings(url)) as client:
        await sequential(client, N, 3)  # warm-up: connections, prepared statements
        await together(client, N, 20)
        for _ in range(reps):  # interleaved, so disk weather hits all alike
            floors.append(await raw_floor(url, floor_commits))
            full += await sequential(client, N, runs)
            empty += await sequential(client, 0, runs)
            amortized.append(await together(client, N, wide) / (wide * N))
    floor = statistics.median(floors)
    per_run_n, per_run_0 = statistics.median(full), statistics.median(empty)
    per_step = (per_run_n - per_run_0) / N
    wide_step = statistics.median(amortized)
    return [
        Figure("raw INSERT + COMMIT, psycopg (the floor)", f"{floor * 1e3:.2f} ms", "one WAL flush"),
        Figure(
            f"durable step overhead, one run at a time ({N}-step chain, {runs} runs × {reps} reps)",
            f"{per_step * 1e3:.2f} ms/step",
            f"{per_step / floor:.2f}× floor",
            "",
        ),
        Figure(
            "  same, all-in (run start and end spread over the steps)",
            f"{per_run_n / N * 1e3:.2f} ms/step",
            f"fixed cost per run: {per_run_0 * 1e3:.1f} ms",
        ),
        Figure(
            f"durable step overhead, {wide} runs at once ({N}-step chains, median of {reps})",
            f"{wide_step * 1e3:.3f} ms/step",
            f"{wide_step / floor:.2f}× floor; {1 / (wide_step * N):.0f} runs/s",
            "< 1 ms/step",
            wide_step < 1e-3,
        ),
    ]


async def bench_ray(url: str, reps: int, runs: int) -> list[Figure]:
    try:
        import ray  # noqa: F401
    except ImportError:
        return [Figure("a step as a Ray task", "skipped", "pip install podium[ray]")]
    local, remote = [], []
    async with podium.Client(settings(url, config={"ray": {"num_cpus": 2}})) as client:
        t0 = time.perf_counter()
        await sequential(client, 1, 1, ray_chain)
        start = time.perf_counter() - t0
        await sequential(client, N, 2, ray_chain)  # warm-up: Ray's worker processes
        for _ in range(reps):
            local += await sequential(client, N, runs)
            remote += await sequential(client, N, runs, ray_chain)
    per_local, per_ray = statistics.median(local) / N, statistics.median(remote) / N
    return [
        Figure("first Ray step (a local Ray instance starts, num_cpus=2)", f"{start:.2f} s"),
        Figure(
            f"durable step as a Ray task, one at a time ({N}-step chain, {runs} runs × {reps} reps)",
            f"{per_ray * 1e3:.2f} ms/step",
            f"+{(per_ray - per_local) * 1e3:.2f} ms over the local step ({per_local * 1e3:.2f} ms/step)",
        ),
    ]


# -- many processes ------------------------------------------------------------------------------------


def start_workers(url: str, count: int, concurrency: int) -> list[subprocess.Popen[str]]:
    procs = []
    for _ in range(count):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "worker", "--url", url]
        cmd += ["--concurrency", str(concurrency)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    for p in procs:  # each says "ready" once its worker runs
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker process failed to start (said {line!r})")
    return procs


def stop_workers(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


async def runs_per_second(url: str, workers: int, runs: int, concurrency: int) -> float:
    """Start ``workers`` processes, create ``runs`` runs in one batch, time until all completed."""
    store = PostgresStore(url)
    await store.open()
    procs = start_workers(url, workers, concurrency)
    try:
        now = time.time()
        items = []
        for _ in range(runs):
            run_id = uuid.uuid4().hex
            rec = RunRecord(
                id=run_id, flow=chain.name, status=RunStatus.PENDING, input=N, created_at=now, updated_at=now
            )
            items.append((rec, Event(run_id, "start", "", chain.name, {"input": N, "depth": 0}, now)))
        ids = {rec.id for rec, _ in items}
        t0 = time.perf_counter()
        await store.create_runs(items)
        deadline = t0 + 300
        while True:
            done = await store._one(  # a count the Store protocol has no call for
                "SELECT count(*) FROM runs WHERE status = 'completed' AND id = ANY(%s)", (list(ids),)
            )
            if done is not None and done[0] == runs:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {done} of {runs} runs completed in 300 s")
            await asyncio.sleep(0.01)
        return runs / (time.perf_counter() - t0)
    finally:
        stop_workers(procs)
        await store.close()


async def bench_workers(url: str, runs: int, reps: int, concurrency: int) -> list[Figure]:
    figures: list[Figure] = []
    base = None
    for count in (1, 2, 4):
        rates = [await runs_per_second(url, count, runs, concurrency) for _ in range(reps)]
        rate = statistics.median(rates)
        base = base or rate
        figures.append(
            Figure(
                f"{N}-step runs/s, {count} worker process{'es' if count > 1 else ''} "
                f"({runs} runs, median of {reps})",
                f"{rate:.0f} runs/s",
                f"{rate / base:.2f}× one process; {rate * N:.0f} durable steps/s",
            )
        )
    return figures


async def child_worker(url: str, concurrency: int) -> None:
    store = PostgresStore(url)
    await store.open()
    worker = Worker(store, settings(url, concurrency=concurrency), flows=[chain.name])
    await worker.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await worker.stop()
    await store.close()


# -- main --------------------------------------------------------------------------------------------


async def server_facts(url: str) -> str:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        facts = []
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method"):
            cur = await conn.execute(f"SHOW {name}")
            row = await cur.fetchone()
            facts.append(f"{name}={row[0] if row else '?'}")
        return ", ".join(facts)


def render(figures: list[Figure], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("measure", "figure", "beside", "target", ""):
        table.add_column(name)
    for f in figures:
        verdict = "" if f.ok is None else ("[green]met[/]" if f.ok else "[red]missed[/]")
        table.add_row(f.measure, f.value, f.beside, f.target, verdict)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


async def run_all(args: argparse.Namespace, url: str) -> list[Figure]:
    quick = args.quick
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    say("measuring durable step overhead ...")
    figures = await bench_steps(
        url,
        reps=2 if quick else 5,
        runs=5 if quick else 20,
        wide=50 if quick else 200,
        floor_commits=50 if quick else 300,
    )
    say("measuring runs/s with 1, 2 and 4 worker processes ...")
    figures += await bench_workers(url, runs=100 if quick else 400, reps=1 if quick else 3, concurrency=100)
    if not args.no_ray:
        say("measuring steps run as Ray tasks ...")
        figures += await bench_ray(url, reps=2 if quick else 3, runs=5 if quick else 10)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    parser.add_argument("--url", default=os.environ.get("PODIUM_BENCH_POSTGRES", DEFAULT_URL))
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray step figures")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "worker":
        asyncio.run(child_worker(args.url, args.concurrency))
        return

    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        url = schema_url(args.url, schema)
        t0 = time.perf_counter()
        facts = asyncio.run(server_facts(url))
        figures = asyncio.run(run_all(args, url))
        elapsed = time.perf_counter() - t0
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    title = (
        f"podium {podium.__version__} scale bench{' (--quick)' if args.quick else ''}: PostgreSQL ({facts}), "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {elapsed:.0f} s"
    )
    render(figures, title)
    print(json.dumps({f.measure: f.value for f in figures}), file=sys.stderr)


if __name__ == "__main__":
    main()
