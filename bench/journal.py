"""Journal economy: deduplication, bytes written per payload byte, replay of a long run.

```
.venv/bin/python bench/journal.py            # about a minute
.venv/bin/python bench/journal.py --quick    # fewer payloads, a 2,000-step replay
.venv/bin/python bench/journal.py --full     # also a 100,000-step run
.venv/bin/python bench/journal.py --dir /path/on/the/disk/to/measure
```
(a) A 1,000-way ``ctx.map`` whose steps all return the same 100 KB context (plus their index): the growth of
the SQLite file (WAL checkpointed) and, if PostgreSQL is reachable (``PODIUM_TEST_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``), of the tables of a fresh schema (``pg_total_relation_size``).
A copy per step would be 100 MB. Target: under 1 MB.

(b) Bytes written to disk per payload byte, for payloads over 4 KB: steps returning distinct payloads of
8 KB, 64 KB and 1 MB; ``write_bytes`` of ``/proc/self/io`` (what this process sent to the block layer: the
WAL, the checkpoint into the database file, blob files) over the payloads' JSON bytes. Two kinds of content:
English-like text (compresses ~3x) and random hex (about 2x). Target: at most 1.5.

(c) Replay of a finished 10,000-step run with 1 KB step results (below the payload threshold: journaled
inline): a fresh process loads the journal from SQLite and replays the flow against it
(``podium.engine.replay``); wall time and the process's peak RSS. Target: under 1 s and 200 MB.

(e) A step returning 48 MB of JSON (48,000 rows of ~1 KB), journaled on SQLite by a fresh process, with a blob
directory (the value is streamed to its file) and without one (encoded in memory, kept in the payload table):
the process's peak RSS (``ru_maxrss``) over its RSS before the run, in multiples of the value's size. Target
with a blob directory: under 2x (the value itself and the reading back of the step's result are included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import podium

CONTEXT = "".join(random.Random(7).choice("abcdefghij klmnopqrstuvwxyz.\n") for _ in range(100_000))
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
]
PG_URL = os.environ.get("PODIUM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@podium.step(name="bench.read")
async def read(context: str, i: int) -> dict[str, Any]:
    return {"doc": context, "i": i}


@podium.flow(name="bench.fanout")
async def fanout(ctx: podium.Context, params: dict[str, Any]) -> int:
    return len(await ctx.map(lambda i: read(params["context"], i), range(params["n"])))


@podium.step(name="bench.payload")
async def payload(kind: str, size: int, seed: int) -> str:
    rnd = random.Random(seed)
    if kind == "hex":
        return rnd.randbytes(size // 2).hex()
    words: list[str] = []
    n = 0
    while n < size:
        w = rnd.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    return " ".join(words)[:size]


@podium.flow(name="bench.payloads")
async def payloads(ctx: podium.Context, params: dict[str, Any]) -> int:
    total = 0
    for i in range(params["count"]):
        total += len(await payload(params["kind"], params["size"], params["seed"] + i))
    return total


@podium.flow(name="bench.payloads_at_once")
async def payloads_at_once(ctx: podium.Context, params: dict[str, Any]) -> int:
    """The same payloads from parallel steps: their commits are grouped (a page's cost is shared)."""
    seeds = range(params["seed"], params["seed"] + params["count"])
    return sum(len(r) for r in await ctx.map(lambda i: payload(params["kind"], params["size"], i), seeds))


@podium.step(name="bench.kb")
async def kb(i: int) -> str:
    return f"{i:08d}" + "x" * 1_016


@podium.flow(name="bench.long")
async def long(ctx: podium.Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += len(await kb(i))
    return total


@podium.step(name="bench.rows")
async def rows(n: int) -> list[str]:
    rnd = random.Random(n)
    return [f"{i}:" + "".join(rnd.choices("abcdef0123456789", k=1_000)) for i in range(n)]


@podium.flow(name="bench.large")
async def large(ctx: podium.Context, n: int) -> int:
    return sum(len(r) for r in await rows(n))


async def large_child(path: str, blobs: str) -> None:
    """Journal one 48 MB step result in this (fresh) process; print its RSS before and at peak."""
    storage = {"blobs": blobs} if blobs != "-" else {}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    async with podium.Client(settings(f"sqlite:///{path}", **storage)) as client:
        run = await client.start(large, 48_000)
        total = await client.result(run.id, timeout=900)
    took = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": took, "bytes": total, "peak_kb": peak, "before_kb": rss_before}))


def large_result(base: Path, streamed: bool) -> dict[str, Any]:
    tag = "streamed" if streamed else "in-memory"
    blobs = str(base / f"blobs-large-{tag}") if streamed else "-"
    out = subprocess.run(
        [sys.executable, __file__, "--large-child", str(base / f"large-{tag}.db"), blobs],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return r


def report_large(base: Path) -> None:
    for streamed in (True, False):
        r = large_result(base, streamed)
        grown = (r["peak_kb"] - r["before_kb"]) * 1024
        where = "blob directory (streamed)" if streamed else "no blob directory (in memory)"
        verdict = f" (< 2x: {'met' if grown < 2 * r['bytes'] else 'MISSED'})" if streamed else ""
        print(
            f"(e) a {r['bytes'] / 1e6:.0f} MB step result, {where}: peak RSS {r['peak_kb'] / 1024:.0f} MB "
            f"({r['before_kb'] / 1024:.0f} MB before: +{grown / r['bytes']:.1f}x the value) in "
            f"{r['seconds']:.1f} s{verdict}"
        )


@podium.flow(name="bench.huge")
async def huge(ctx: podium.Context, n: int) -> int:
    done = 0
    for start in range(0, n, 1_000):
        done += len(await ctx.map(lambda i: kb(i), range(start, min(n, start + 1_000))))
    return done


def settings(url: str, **storage: Any) -> podium.Settings:
    config = {"storage": storage} if storage else {}
    return podium.Settings(database_url=url, poll_seconds=0.05, config=config)


def sqlite_size(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return path.stat().st_size


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


# -- (a) ------------------------------------------------------------------------------------------------
async def dedup_sqlite(directory: Path) -> tuple[int, float]:
    path = directory / "fanout.db"
    async with podium.Client(settings(f"sqlite:///{path}")) as client:
        await client.result((await client.start(fanout, {"context": "warm", "n": 2})).id)
        before = sqlite_size(path)
        started = time.perf_counter()
        run = await client.start(fanout, {"context": CONTEXT, "n": 1_000})
        assert await client.result(run.id, timeout=300) == 1_000
        took = time.perf_counter() - started
    return sqlite_size(path) - before, took


async def dedup_postgres() -> tuple[int, float] | None:
    try:
        import psycopg
    except ImportError:
        return None
    schema = f"bench_journal_{os.getpid()}"
    try:
        admin = await psycopg.AsyncConnection.connect(PG_URL, autocommit=True, connect_timeout=3)
    except Exception:
        return None
    await admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"

    async def size() -> int:
        cur = await admin.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r'",
            (schema,),
        )
        row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    try:
        async with podium.Client(settings(url)) as client:
            await client.result((await client.start(fanout, {"context": "warm", "n": 2})).id)
            before = await size()
            started = time.perf_counter()
            run = await client.start(fanout, {"context": CONTEXT, "n": 1_000})
            assert await client.result(run.id, timeout=300) == 1_000
            took = time.perf_counter() - started
        return await size() - before, took
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


# -- (b) ------------------------------------------------------------------------------------------------
async def amplification(
    directory: Path, kind: str, size: int, count: int, parallel: bool = False, inline: bool = False
) -> tuple[float, float, int]:
    """``(total, marginal, bytes written)``: bytes written per payload byte, all told and less what the
    same steps with 10-byte results write (a durable commit's fixed cost: its WAL pages and their
    checkpoint, whatever the step returns)."""
    path = directory / f"amp-{kind}-{size}-{parallel}-{inline}.db"
    blobs = directory / f"blobs-{kind}-{size}-{parallel}"
    flow = payloads_at_once if parallel else payloads
    storage: dict[str, Any] = {"blobs": str(blobs)}
    if inline:  # as before content-addressed payloads: the value in the event's row
        storage.update(payload_threshold=1 << 30, blob_threshold=1 << 30)
    async with podium.Client(settings(f"sqlite:///{path}", **storage)) as client:
        warm = {"kind": kind, "size": 10, "count": 1, "seed": 0}
        await client.result((await client.start(flow, warm)).id)

        async def measure(length: int, seed: int) -> int:
            sqlite_size(path)
            before = write_bytes()
            params = {"kind": kind, "size": length, "count": count, "seed": seed}
            await client.result((await client.start(flow, params)).id, timeout=600)
            sqlite_size(path)  # the checkpoint: WAL pages copied into the database file count too
            return write_bytes() - before

        floor = await measure(10, 10_000)
        written = await measure(size, 1)
    payload_bytes = count * (size + 2)  # the JSON text of each result: the string and its quotes
    return written / payload_bytes, (written - floor) / payload_bytes, written


# -- (c) ------------------------------------------------------------------------------------------------
async def make_long_run(path: Path, n: int) -> tuple[str, float]:
    async with podium.Client(settings(f"sqlite:///{path}")) as client:
        started = time.perf_counter()
        run = await client.start(long, n)
        assert await client.result(run.id, timeout=900) == n * 1_024
        return run.id, time.perf_counter() - started


async def replay_child(path: str, run_id: str) -> None:
    from podium.engine.replay import replay_events
    from podium.runtime import scratch_store
    from podium.storage.sqlite import SQLiteStore

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    store = SQLiteStore(path)
    await store.open()
    events = await store.load_events(run_id)
    await store.close()
    loaded = time.perf_counter() - started
    scratch = scratch_store()
    await scratch.open()
    result = await replay_events(long, events, scratch)
    took = time.perf_counter() - started
    assert result.status == "completed", result
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": took, "load": loaded, "peak_kb": peak, "before_kb": rss_before}))


async def huge_run(path: Path, n: int) -> float:
    async with podium.Client(settings(f"sqlite:///{path}")) as client:
        started = time.perf_counter()
        run = await client.start(huge, n)
        assert await client.result(run.id, timeout=3600) == n
        return time.perf_counter() - started


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f}"


async def main(args: argparse.Namespace) -> None:
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="podium-journal-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"measuring in {base}; {load()}; 2 cores shared")
    try:
        if args.only_large:
            report_large(base)
            return
        grown, took = await dedup_sqlite(base)
        verdict = "met" if grown < 1_000_000 else "MISSED"
        print(f"(a) 1,000-way fan-out sharing 100 KB, SQLite: +{grown / 1e6:.3f} MB in {took:.2f} s")
        print(f"    (< 1 MB: {verdict})")
        pg = await dedup_postgres()
        if pg is None:
            print("(a) PostgreSQL: not reachable, skipped")
        else:
            verdict = "met" if pg[0] < 1_000_000 else "MISSED"
            print(f"(a) 1,000-way fan-out sharing 100 KB, PostgreSQL: +{pg[0] / 1e6:.3f} MB in {pg[1]:.2f} s")
            print(f"    (< 1 MB: {verdict})")
        count = {8_192: 200, 65_536: 60, 1 << 20: 6}
        for kind in ("text", "hex"):
            for size, n in count.items():
                n = max(2, n // 4) if args.quick else n
                total, marginal, written = await amplification(base, kind, size, n)
                verdict = "met" if marginal <= 1.5 else "MISSED"
                print(
                    f"(b) {kind:4} {size // 1024:>5} KB x {n:>3}: {marginal:.2f} bytes written per payload byte "  # noqa: E501
                    f"(<= 1.5: {verdict}); {total:.2f} with each step's commit ({written / 1e6:.1f} MB)"
                )
        for kind in ("text", "hex"):
            n = 50 if args.quick else 200
            total, marginal, written = await amplification(base, kind, 8_192, n, inline=True)
            print(
                f"(b) {kind:4}     8 KB x {n:>3} kept inline in the event row (no payload table): "
                f"{marginal:.2f}; {total:.2f} with each step's commit ({written / 1e6:.1f} MB)"
            )
        for kind in ("text", "hex"):
            n = 50 if args.quick else 200
            total, marginal, written = await amplification(base, kind, 8_192, n, parallel=True)
            verdict = "met" if marginal <= 1.5 else "MISSED"
            print(
                f"(b) {kind:4}     8 KB x {n:>3} from parallel steps (grouped commits): {marginal:.2f} "
                f"(<= 1.5: {verdict}); {total:.2f} with the commits ({written / 1e6:.1f} MB)"
            )
        n = 2_000 if args.quick else 10_000
        path = base / "long.db"
        run_id, made = await make_long_run(path, n)
        print(f"    (the {n:,}-step run took {made:.1f} s to run on SQLite, a durable commit per step)")
        out = subprocess.run(
            [sys.executable, __file__, "--replay-child", str(path), run_id],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ok = r["seconds"] < 1.0 and r["peak_kb"] < 200_000
        print(
            f"(c) replay of a finished {n:,}-step run (1 KB results): {r['seconds']:.2f} s "
            f"(journal load {r['load']:.2f} s), peak RSS {r['peak_kb'] / 1024:.0f} MB "
            f"(process at start {r['before_kb'] / 1024:.0f} MB) (< 1 s, < 200 MB: {'met' if ok else 'MISSED'})"  # noqa: E501
        )
        report_large(base)
        if args.full:
            took = await huge_run(base / "huge.db", 100_000)
            size = sqlite_size(base / "huge.db")
            print(
                f"(d) a 100,000-step run (100 x ctx.map of 1,000): {took:.1f} s, database {size / 1e6:.0f} MB"
            )
        print(f"done; {load()}")
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--dir")
    parser.add_argument("--replay-child", nargs=2, metavar=("DB", "RUN_ID"))
    parser.add_argument("--large-child", nargs=2, metavar=("DB", "BLOBS"))
    parser.add_argument("--only-large", action="store_true", help="measure (e) only")
    a = parser.parse_args()
    if a.replay_child:
        asyncio.run(replay_child(*a.replay_child))
    elif a.large_child:
        asyncio.run(large_child(*a.large_child))
    else:
        asyncio.run(main(a))
