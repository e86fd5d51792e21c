"""Journal economy on real stores: payloads stored once, no surprise limits, retention, crash safety.

Storage growth is measured on the real SQLite file (after a checkpoint) and on the real PostgreSQL tables
(``pg_total_relation_size``). The crash test kills a writer with SIGKILL while it writes blobs, then checks
that the journal never points at a missing or partial payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import settings_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import podium
from podium.storage.base import Event, Outcome, RunRecord, Transition, Write
from podium.storage.memory import MemoryStore
from podium.storage.payloads import Encoder, PayloadOptions, blob_path, decompress
from podium.storage.sqlite import SQLiteStore
from podium.types import RunStatus

APP = Path(__file__).with_name("journal_app.py")
CONTEXT = "".join(random.Random(7).choice("abcdefghij klmnopqrstuvwxyz.\n") for _ in range(100_000))


@podium.step(name="journal.read")
async def read(context: str, i: int) -> dict[str, Any]:
    return {"doc": context, "i": i}


@podium.flow(name="journal.fanout")
async def fanout(ctx: podium.Context, params: dict[str, Any]) -> int:
    results = await ctx.map(lambda i: read(params["context"], i), range(params["n"]))
    assert all(r["doc"] == params["context"] for r in results)
    return len(results)


@podium.step(name="journal.big")
async def big(n: int) -> list[str]:
    rnd = random.Random(n)
    return [f"{i}:" + "".join(rnd.choice("abcdef0123456789") for _ in range(1_000)) for i in range(n)]


@podium.flow(name="journal.large")
async def large(ctx: podium.Context, n: int) -> int:
    rows = await big(n)
    return sum(len(r) for r in rows)


def sqlite_bytes(path: Path) -> int:
    """The database's size once the WAL is checkpointed into it."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return path.stat().st_size


async def postgres_bytes(url: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def store_bytes(url: str) -> int:
    if url.startswith("sqlite:///"):
        return sqlite_bytes(Path(url[len("sqlite:///") :]))
    return await postgres_bytes(url)


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_a_fanout_of_1000_steps_stores_a_shared_100kb_value_once(store_url: str) -> None:
    async with podium.Client(settings_for(store_url)) as client:
        await client.result((await client.start(fanout, {"context": "warm-up", "n": 2})).id)
        before = await store_bytes(store_url)
        handle = await client.start(fanout, {"context": CONTEXT, "n": 1_000})
        assert await client.result(handle.id, timeout=120) == 1_000
        events = await client.store.load_events(handle.id)
        steps = [e for e in events if e.kind == "step"]
        assert len(steps) == 1_000 and all(e.data["result"]["doc"] == CONTEXT for e in steps)
    grown = await store_bytes(store_url) - before
    assert grown < 1_000_000, f"the store grew by {grown} bytes (a copy per step would be 100 MB)"


async def payload_rows(url: str) -> list[tuple[str, int, bool, bool]]:
    """``(hash, size, in_file, data is NULL)`` of every payload row."""
    sql = "SELECT hash, size, in_file, data IS NULL FROM payloads"
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url[len("sqlite:///") :])
        try:
            return [(h, n, bool(f), bool(e)) for h, n, f, e in db.execute(sql)]
        finally:
            db.close()
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(sql)
        return [(h, n, bool(f), bool(e)) for h, n, f, e in await cur.fetchall()]


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_a_50mb_step_result_is_streamed_to_the_blob_directory(store_url: str, tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    config = {"storage": {"blobs": str(blobs), "blob_threshold": 1 << 20}}
    settings = settings_for(store_url).with_(config=config)
    async with podium.Client(settings) as client:
        before = await store_bytes(store_url)
        handle = await client.start(large, 48_000)  # 48,000 rows of ~1 KB: about 50 MB of JSON
        expected = await big(48_000)
        assert await client.result(handle.id, timeout=300) == sum(len(r) for r in expected)
        step = next(e for e in await client.store.load_events(handle.id) if e.kind == "step")
        assert step.data["result"] == expected
    files = [p for p in blobs.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].stat().st_size < 50_000_000  # compressed, no temp file left
    rows = await payload_rows(store_url)
    assert [(h, in_file, empty) for h, _, in_file, empty in rows] == [(files[0].name, True, True)]
    # the file holds exactly the bytes the in-memory path encodes, named by their SHA-256
    raw = json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    codec = "zstd" if files[0].read_bytes()[:4] == b"\x28\xb5\x2f\xfd" else "zlib"
    assert decompress(codec, files[0].read_bytes()) == raw
    assert files[0].name == hashlib.sha256(raw).hexdigest() and rows[0][1] == len(raw)
    assert await store_bytes(store_url) - before < 5_000_000  # the database holds only references


VALUES: list[Any] = [
    'é€😀\u0000"\\\n' * 300_000,
    [f"{i}:" + "x" * (i % 3000) for i in range(2_000)],
    {"a": list(range(300_000)), 1: {"$payload": 2, "z": [1.5, None, True, float("inf")]}, "s": "y" * 5_000},
    {"$payload_user_key": "z" * 2_000_000, "n": {"deep": ["w" * 70_000, {"t": (1, 2)}]}},
    [{"n": i, "text": "ab" * 60, "k": {"2": False}} for i in range(30_000)],
]


@pytest.mark.parametrize("value", VALUES, ids=["unicode-string", "rows", "mixed", "escaped-keys", "records"])
@pytest.mark.parametrize("keep_root", [False, True])
def test_streamed_and_in_memory_encodings_of_a_value_are_the_same(
    value: Any, keep_root: bool, tmp_path: Path
) -> None:
    value = {"result": value}  # as an event's data: its top-level object may be kept (keep_root)
    streamed = Encoder(PayloadOptions(blobs=tmp_path, blob_threshold=65_536))
    in_memory = Encoder(PayloadOptions(blob_threshold=65_536))
    assert streamed.dump(value, "r", keep_root=keep_root) == in_memory.dump(value, "r", keep_root=keep_root)
    assert set(streamed.new) == set(in_memory.new) and streamed.refs == in_memory.refs
    assert any(p.in_file for p in streamed.new.values())  # the streaming path was taken
    for sha, p in streamed.new.items():
        q = in_memory.new[sha]
        assert p.size == q.size
        if p.in_file:
            assert decompress(p.codec, blob_path(tmp_path, sha).read_bytes()) == q.raw
        else:
            assert p.raw == q.raw and sha == hashlib.sha256(q.raw).hexdigest()
    assert not [f for f in tmp_path.rglob(".*") if f.is_file()]  # no temp file left behind


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=8)
        | st.dictionaries(
            st.sampled_from(["a", "$payload", "$payload_x", "é", "k"]) | st.text(max_size=4), inner
        )
    ),
    max_leaves=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON, keep_root=st.booleans())
def test_streamed_and_in_memory_encodings_agree_on_any_value(
    value: Any, keep_root: bool, tmp_path: Path
) -> None:
    streamed = Encoder(PayloadOptions(blobs=tmp_path, threshold=64, blob_threshold=200))
    in_memory = Encoder(PayloadOptions(threshold=64, blob_threshold=200))
    assert streamed.dump(value, "r", keep_root=keep_root) == in_memory.dump(value, "r", keep_root=keep_root)
    assert set(streamed.new) == set(in_memory.new) and streamed.refs == in_memory.refs
    for sha, p in streamed.new.items():  # some in files (from 200 bytes), some in memory
        raw = decompress(p.codec, blob_path(tmp_path, sha).read_bytes()) if p.in_file else p.raw
        assert raw == in_memory.new[sha].raw


def test_a_cyclic_value_is_refused_as_json_refuses_it(tmp_path: Path) -> None:
    loop: list[Any] = ["x" * 10_000]
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        Encoder(PayloadOptions(blobs=tmp_path)).dump({"result": loop}, "r", keep_root=True)
    assert not [f for f in tmp_path.rglob("*") if f.is_file()]


MEMORY_PROBE = """
import json, random, sys, tracemalloc
from pathlib import Path
from podium.storage.payloads import Encoder, PayloadOptions

kind, blobs = sys.argv[1], sys.argv[2]
rnd = random.Random(3)
if kind == "rows":
    value = {"result": [f"{i}:" + "".join(rnd.choices("abcdef0123456789", k=1_000)) for i in range(48_000)]}
else:
    value = {"result": "".join(rnd.choices("abcdefgh 0123456789", k=50_000_000))}
options = PayloadOptions(blobs=Path(blobs) if blobs != "-" else None)
tracemalloc.start()
enc = Encoder(options)
enc.dump(value, "run", keep_root=True)
packed = [p.pack(options) for p in enc.new.values()]
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "files": sum(p.in_file for p in packed)}))
"""


def encoding_peak(kind: str, blobs: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, kind, blobs],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return int(r["peak"]), int(r["files"])


@pytest.mark.parametrize("kind", ["rows", "string"])
def test_encoding_a_50mb_value_for_the_blob_directory_holds_it_less_than_twice(
    kind: str, tmp_path: Path
) -> None:
    size = 48_276_890 if kind == "rows" else 50_000_000  # characters of the value (all ASCII)
    peak, files = encoding_peak(kind, str(tmp_path))
    assert files == 1
    assert peak < 2 * size, f"encoding held {peak / 1e6:.0f} MB for a {size / 1e6:.0f} MB value"
    # the in-memory path (no blob directory) holds the text and its bytes: this measure sees it
    peak_in_memory, _ = encoding_peak(kind, "-")
    assert peak_in_memory > size > peak


async def test_settings_reject_bad_storage_values() -> None:
    with pytest.raises(podium.ConfigError, match="payload_threshold"):
        podium.Settings(database_url="memory://", config={"storage": {"payload_threshold": "big"}})
    with pytest.raises(podium.ConfigError, match="retention"):
        podium.Settings(database_url="memory://", config={"storage": {"retention": "soon"}})
    with pytest.raises(podium.ConfigError, match="unknown key"):
        podium.Settings(database_url="memory://", config={"storage": {"blob": "x"}})


def test_a_writer_killed_while_writing_blobs_leaves_no_dangling_reference(tmp_path: Path) -> None:
    db, blobs = tmp_path / "podium.db", tmp_path / "blobs"
    rnd = random.Random(os.environ.get("PODIUM_CRASH_SEED"))
    kills = 0
    for round_ in range(6):
        with subprocess.Popen(
            [sys.executable, str(APP), str(db), str(blobs), str(round_)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(rnd.uniform(0.05, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        assert_journal_complete(db, blobs)
    assert kills >= 3

    stray = blobs / "ab" / ("ab" + "0" * 62)  # as a crash between a blob's write and its commit leaves it
    temp = blobs / "ab" / f".{'ab' + '1' * 62}.123.tmp"  # as a crash in the middle of the write leaves it
    for f in (stray, temp):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"partial")

    async def collect(ended_before: float) -> None:  # the runs are unfinished: only leftovers may go
        store = SQLiteStore(db, payloads=PayloadOptions(blobs=blobs, blob_threshold=65_536))
        await store.open()
        try:
            await store.collect_payloads(ended_before=ended_before)
        finally:
            await store.close()

    asyncio.run(collect(time.time()))
    assert stray.exists() and temp.exists()  # too recent: maybe a commit in flight
    asyncio.run(collect(time.time() + 2 * 3600))
    assert not stray.exists() and not temp.exists()
    assert_journal_complete(db, blobs)
    conn = sqlite3.connect(db)
    rows = {r[0] for r in conn.execute("SELECT hash FROM payloads WHERE in_file = 1")}
    conn.close()
    assert {f.name for f in blobs.rglob("*") if f.is_file()} == rows  # no temp file, no stray


def assert_journal_complete(db: Path, blobs: Path) -> None:
    """Every reference resolves to a whole payload; every blob file is whole (named by its hash)."""
    for f in blobs.rglob("*"):
        if f.is_file() and not f.name.startswith("."):  # a temp file of a killed writer is harmless
            conn = sqlite3.connect(db)
            row = conn.execute("SELECT codec FROM payloads WHERE hash = ?", (f.name,)).fetchone()
            conn.close()
            if row is not None:
                assert hashlib.sha256(decompress(row[0], f.read_bytes())).hexdigest() == f.name

    async def check() -> None:
        store = SQLiteStore(db, payloads=PayloadOptions(blobs=blobs, blob_threshold=65_536))
        await store.open()
        try:
            for run in await store.list_runs(limit=10_000):
                for e in await store.load_events(run.id):
                    if e.kind == "step":
                        assert "expired_payload" not in str(e.data)[:200], (run.id, e.step)
                        assert len(e.data["result"]) == 200_000
        finally:
            await store.close()

    asyncio.run(check())


# -- retention never drops what an unfinished run references (property test) --------------------------

VALUES = ["a" * 6_000, "b" * 9_000, ["c" * 5_000, "a" * 6_000], {"k": "d" * 7_000}]
OPS = st.lists(
    st.tuples(st.sampled_from(["start", "step", "finish", "gc"]), st.integers(0, 5), st.integers(0, 3)),
    max_size=30,
)


async def interleave(store: Any, ops: list[tuple[str, int, int]], prefix: str = "") -> None:
    now = 1_000.0
    live: dict[str, list[Any]] = {}  # run id -> the values its journal holds
    for op, who, which in ops:
        now += 10
        run_id = f"{prefix}r{who}"
        if op == "start" and await store.get_run(run_id) is None:
            rec = RunRecord(run_id, "f", RunStatus.PENDING, VALUES[which], created_at=now, updated_at=now)
            await store.create_run(rec, Event(run_id, "start", "", "f", {"input": VALUES[which]}, now))
            await store.claim_run(run_id, "w", now=now, lease_until=now + 10**9)
            live[run_id] = [VALUES[which]]
        elif op == "step" and run_id in live:
            step = Event(run_id, "step", str(len(live[run_id])), "s", {"result": VALUES[which], "ended": now})
            assert await store.commit("w", [Write(run_id, [step])], now=now, lease_until=now + 10**9) == [
                Outcome.OK
            ]
            live[run_id].append(VALUES[which])
        elif op == "finish" and run_id in live:
            w = Write(run_id, [], transition=Transition.COMPLETE, output=VALUES[which])
            await store.commit("w", [w], now=now, lease_until=now + 10**9)
            del live[run_id]
        elif op == "gc":
            await store.collect_payloads(ended_before=now + 1)
        for rid, values in live.items():  # after every operation: each unfinished run reads whole
            run = await store.get_run(rid)
            assert run is not None and run.input == values[0]
            events = await store.load_events(rid)
            got = [e.data["input"] for e in events if e.kind == "start"]
            got += [e.data["result"] for e in events if e.kind == "step"]
            assert got == values


@pytest.fixture(scope="module")
def pg_url(postgres_schemas: Any) -> Iterator[str]:
    """One schema for every example (each example's runs have ids of their own)."""
    schema = postgres_schemas.take()
    try:
        yield postgres_schemas.url(schema)
    finally:
        postgres_schemas.give_back(schema)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_gc_never_drops_a_payload_an_unfinished_run_references_on_postgres(
    pg_url: str, ops: list[tuple[str, int, int]]
) -> None:
    from podium.storage.postgres import PostgresStore

    async def on_postgres() -> None:
        store = PostgresStore(pg_url)
        await store.open()
        try:
            await interleave(store, ops, prefix=uuid.uuid4().hex[:8])
        finally:
            await store.close()

    asyncio.run(on_postgres())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_gc_never_drops_a_payload_an_unfinished_run_references(ops: list[tuple[str, int, int]]) -> None:
    async def on_sqlite() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(
                Path(tmp) / "p.db", payloads=PayloadOptions(blobs=Path(tmp), blob_threshold=8_000)
            )
            await store.open()
            try:
                await interleave(store, ops)
            finally:
                await store.close()

    async def on_memory() -> None:
        store = MemoryStore(json_results=True)
        await interleave(store, ops)

    asyncio.run(on_sqlite())
    asyncio.run(on_memory())


# -- retention ----------------------------------------------------------------------------------------


@podium.flow(name="journal.brief", retention="1d")
async def brief(ctx: podium.Context, text: str) -> str:
    return await read_big(text)


@podium.flow(name="journal.kept")
async def kept(ctx: podium.Context, text: str) -> str:
    return await read_big(text)


@podium.step(name="journal.read_big")
async def read_big(text: str) -> str:
    return text * 5_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("store_url", ["memory", "sqlite", "postgres"], indirect=True)
async def test_flow_retention_drops_payloads_after_its_period_and_keeps_the_skeleton(store_url: str) -> None:
    clock = Clock()
    async with podium.Client(settings_for(store_url), clock=clock) as client:
        a = await client.start(brief, "a")
        b = await client.start(kept, "b")
        assert await client.result(a.id) == "a" * 5_000 and await client.result(b.id) == "b" * 5_000
        clock.now += 3_600
        assert (await client.collect_garbage()).runs == 0  # an hour: within the day
        clock.now += 2 * 86_400
        done = await client.collect_garbage()
        assert done.runs == 1 and done.bytes > 0
        step = next(e for e in await client.store.load_events(a.id) if e.kind == "step")
        assert step.data["attempts"] == 1 and step.data["ended"] >= step.data["started"]
        assert "expired_payload" in step.data["result"]
        assert (await client.get(a.id)).status is RunStatus.COMPLETED
        assert await client.result(b.id) == "b" * 5_000  # no retention: kept
        assert (await client.collect_garbage(older_than="1d")).runs == 1
        step = next(e for e in await client.store.load_events(b.id) if e.kind == "step")
        assert "expired_payload" in step.data["result"]
        with pytest.raises(podium.UsageError):
            await client.collect_garbage(older_than=-5)


@pytest.mark.parametrize("store_url", ["memory", "sqlite", "postgres"], indirect=True)
async def test_tenant_retention_sits_between_the_flows_and_the_default(store_url: str) -> None:
    # [storage] 30d, [tenants.acme] 2d: acme's run of a flow without its own period goes after 2 days, the
    # default tenant's after 30; a flow's own period (brief: 1d) wins over both, in every tenant.
    config = {"storage": {"retention": "30d"}, "tenants": {"acme": {"retention": "2d"}, "slow": {}}}
    clock = Clock()
    async with podium.Client(settings_for(store_url).with_(config=config), clock=clock) as client:
        shared = await client.start(kept, "s")
        acme = await client.start(kept, "t", tenant="acme")
        acme_brief = await client.start(brief, "u", tenant="acme")
        slow = await client.start(kept, "v", tenant="slow")
        for run in (shared, acme, acme_brief, slow):
            await client.result(run.id)
        clock.now += 1.5 * 86_400
        done = await client.collect_garbage()
        assert done.runs == 1 and await _expired(client, acme_brief.id)
        assert not await _expired(client, acme.id)
        clock.now += 86_400  # 2.5 days
        assert (await client.collect_garbage()).runs == 1 and await _expired(client, acme.id)
        assert not await _expired(client, shared.id) and not await _expired(client, slow.id)
        clock.now += 30 * 86_400
        assert (await client.collect_garbage()).runs == 2  # no period of its own: slow has the default
        assert await _expired(client, shared.id) and await _expired(client, slow.id)


async def _expired(client: podium.Client, run_id: str) -> bool:
    step = next(e for e in await client.store.load_events(run_id) if e.kind == "step")
    return "expired_payload" in step.data["result"]


@pytest.mark.parametrize(
    ("tenants", "match"),
    [
        ({"acme": {"retention": "soon"}}, "retention"),
        ({"acme": {"retention": "-1d"}}, "retention"),
        ({"acme": {"keep": "1d"}}, "unknown"),
        ({"acme": "7d"}, "table"),
        ({"no tenant!": {"retention": "7d"}}, "tenant"),
        ("acme", "table"),
    ],
)
def test_tenant_retention_is_validated(tenants: object, match: str) -> None:
    settings = podium.Settings(database_url="memory://", config={"tenants": tenants})
    with pytest.raises(podium.ConfigError, match=match):
        settings.tenant_retention  # noqa: B018
    assert podium.Settings(database_url="memory://").tenant_retention == {}


async def test_a_worker_applies_retention_in_the_background(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path}/podium.db").with_(
        config={"storage": {"gc_interval": "50ms", "retention": "100ms"}}
    )
    async with podium.Client(settings) as client:
        run = await client.start(kept, "k")
        assert await client.result(run.id) == "k" * 5_000
        async with asyncio.timeout(30):
            while True:
                step = next(e for e in await client.store.load_events(run.id) if e.kind == "step")
                if "expired_payload" in step.data["result"]:
                    break
                await asyncio.sleep(0.05)
        usage = await client.storage_usage()
        assert [(u.flow, u.runs, u.payloads) for u in usage if u.flow == "journal.kept"] == [
            ("journal.kept", 1, 0)
        ]


async def test_a_worker_applies_a_tenants_retention_in_the_background(tmp_path: Path) -> None:
    config = {"storage": {"gc_interval": "50ms"}, "tenants": {"acme": {"retention": "100ms"}}}
    settings = settings_for(f"sqlite:///{tmp_path}/podium.db").with_(config=config)
    async with podium.Client(settings) as client:
        shared = await client.start(kept, "s")
        run = await client.start(kept, "k", tenant="acme")
        assert await client.result(run.id) == "k" * 5_000 and await client.result(shared.id) == "s" * 5_000
        async with asyncio.timeout(30):
            while not await _expired(client, run.id):  # noqa: ASYNC110 - polls the store, not an event
                await asyncio.sleep(0.05)
        assert await client.result(shared.id) == "s" * 5_000  # no [storage] retention: kept


def test_podium_stats_and_gc_on_the_command_line(tmp_path: Path) -> None:
    from test_cli import podium as cli

    r = cli(tmp_path, "run", "tests/journal_app.py:echo", "--input", '"ab"')
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "stats", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["flow"], x["age"], x["runs"], x["payloads"]) for x in rows] == [("journal.echo", "<1d", 1, 1)]
    assert rows[0]["payload_raw_bytes"] >= 20_000 > rows[0]["payload_bytes"]
    r = cli(tmp_path, "gc")
    assert r.returncode == 1 and "--older-than" in r.stderr
    r = cli(tmp_path, "gc", "--older-than", "0s")
    assert r.returncode == 0, r.stderr
    assert "released 1 runs; deleted 1 payloads" in r.stdout
    r = cli(tmp_path, "stats")
    assert r.returncode == 0 and "journal.echo" in r.stdout
