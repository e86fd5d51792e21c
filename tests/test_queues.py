"""Queues: flows name a queue (``@podium.flow(queue="gpu")``), a queue's limit (``[queues] gpu = 2``)
holds across all workers and all the queue's flows, together with per-flow limits; workers may serve
only some queues (``podium worker --queue gpu``). In one process on every store, and with two real
``podium worker`` processes on one SQLite file and one PostgreSQL schema, where the journal's step times
show how many runs of the queue were in flight at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PostgresSchemas, settings_for, workers_on
from queue_app import LEDGER, plain, render, tiny, train

import podium
from podium.engine.worker import Worker
from podium.runtime import make_store

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
WAIT = 60.0
"""Upper bound for any wait: only there so a broken engine cannot hang the suite."""


def most_at_once(ledger: list[tuple[str, str]], runs: set[str]) -> int:
    now = peak = 0
    for event, run_id in ledger:
        if run_id in runs:
            now += 1 if event == "start" else -1
            peak = max(peak, now)
    return peak


async def test_a_queue_limit_holds_across_workers_and_flows(store_url: str) -> None:
    LEDGER.clear()
    settings = settings_for(store_url).with_(lease_seconds=10, concurrency=3, queues={"gpu": 3})
    async with workers_on(store_url, settings) as (client, _):
        gpu = [await client.start(f, 0.05) for _ in range(8) for f in (render, train)]
        others = [await client.start(plain, 0.3) for _ in range(3)]
        for h in gpu + others:
            await h.result(timeout=WAIT)
        run = await client.get(gpu[0].id)
    assert run.queue == "gpu"
    assert most_at_once(LEDGER, {h.id for h in gpu}) == 3  # held, and reached: 6 slots in two workers
    assert most_at_once(LEDGER, {h.id for h in others}) == 3, "the default queue has no limit"


async def test_a_flow_limit_and_its_queues_limit_hold_together(store_url: str) -> None:
    LEDGER.clear()
    settings = settings_for(store_url).with_(lease_seconds=10, queues={"gpu": 2})
    async with podium.Client(settings) as client:  # its own worker: runs are not created already claimed
        handles = [await client.start(tiny, 0.05) for _ in range(4)]
        handles += [await client.start(render, 0.05) for _ in range(4)]
        await asyncio.gather(*(h.result(timeout=WAIT) for h in handles))
    assert most_at_once(LEDGER, {h.id for h in handles[:4]}) == 1  # tiny: concurrency=1
    assert most_at_once(LEDGER, {h.id for h in handles}) == 2  # gpu: 2


async def test_a_worker_serves_only_its_queues(tmp_path: Path) -> None:
    LEDGER.clear()
    settings = settings_for(f"sqlite:///{tmp_path}/p.db")
    async with podium.Client(settings, worker=False) as client:
        gpu = await client.start(render, 0.0)
        other = await client.start(plain, 0.0)
        worker = Worker(client.store, settings, queues=["gpu"])
        assert set(worker.flows()) == {"queues.render", "queues.train", "queues.tiny"}
        await worker.start()
        try:
            assert await gpu.result(timeout=WAIT) == os.getpid()
            await asyncio.sleep(0.3)  # several polls
            assert (await client.get(other.id)).status is podium.RunStatus.PENDING
        finally:
            await worker.stop()


def test_queue_limits_come_from_podium_toml_and_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "podium.toml"
    toml.write_text("[queues]\ngpu = 2\nio = 8\n")
    env = {"PODIUM_CONFIG": str(toml), "PODIUM_QUEUES": "gpu=1, batch=4"}
    settings = podium.Settings.from_env(env)
    assert settings.queue_limits == {"gpu": 1, "io": 8, "batch": 4}  # a variable wins over the file
    assert podium.Settings.from_env({"PODIUM_CONFIG": str(toml)}).queue_limits == {"gpu": 2, "io": 8}


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        ({"queues": {"gpu": 0}}, {}, r"\[queues\] in podium.toml: the limit of queue 'gpu' must be"),
        ({"queues": {"gpu": "2"}}, {}, "must be a positive integer, not '2'"),
        ({"queues": {"bad name": 2}}, {}, "queue name 'bad name' is invalid"),
        ({"queues": 3}, {}, r"\[queues\] in podium.toml must be a table"),
        ({}, {"PODIUM_QUEUES": "gpu:2"}, "PODIUM_QUEUES='gpu:2': use name=limit pairs"),
        ({}, {"PODIUM_QUEUES": "gpu=-1"}, "the limit of queue 'gpu' must be a positive integer, not -1"),
    ],
)
def test_bad_queue_limits_are_config_errors(
    tmp_path: Path, config: dict[str, object], env: dict[str, str], message: str
) -> None:
    empty = tmp_path / "podium.toml"
    empty.write_text("")
    with pytest.raises(podium.ConfigError, match=message):
        podium.Settings.from_env({"PODIUM_CONFIG": str(empty), **env}, config=config)


def test_a_bad_queue_name_is_a_usage_error() -> None:
    with pytest.raises(podium.UsageError, match="queue name 'gpu queue' is invalid"):
        podium.flow(name="queues.bad", queue="gpu queue")(plain.fn)
    with pytest.raises(podium.UsageError, match="queue name"):
        Worker(make_store(podium.Settings(database_url="memory://")), podium.Settings(), queues=["a/b"])


# -- two `podium worker` processes ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file or a PostgreSQL schema that several processes open."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
        return
    schemas: PostgresSchemas = request.getfixturevalue("postgres_schemas")
    schema = schemas.take()
    try:
        yield schemas.url(schema)
    finally:
        schemas.give_back(schema)


def worker_process(url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PODIUM_QUEUES": "gpu=2",
        "PODIUM_CONCURRENCY": "3",
        "PODIUM_POLL_SECONDS": "0.05",
        "PODIUM_LEASE_SECONDS": "10",
        "PYTHONPATH": os.pathsep.join((str(ROOT), str(TESTS))),
    }
    cmd = [sys.executable, "-m", "podium.cli", "worker", str(TESTS / "queue_app.py"), "--db", url, *args]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=TESTS, stdout=out, stderr=subprocess.STDOUT)


def peak_in_flight(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (a span ending when another starts does not overlap it)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = peak = 0
    for _, delta in edges:
        now += delta
        peak = max(peak, now)
    return peak


async def test_two_worker_processes_never_run_more_of_a_queue_than_its_limit(
    shared_url: str, tmp_path: Path
) -> None:
    settings = settings_for(shared_url)
    async with podium.Client(settings, worker=False) as client:  # creates the schema before the workers
        handles = [await client.start(f, 0.15) for _ in range(10) for f in (render, train)]
        procs = [
            worker_process(shared_url, tmp_path / "a.log"),
            worker_process(shared_url, tmp_path / "b.log", "--queue", "gpu"),
        ]
        try:
            pids = [await h.result(timeout=WAIT) for h in handles]
            spans = []
            for h in handles:
                (step,) = [e for e in await client.journal(h.id) if e.kind == "step"]
                spans.append((step.data["started"], step.data["ended"]))
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=WAIT)
    assert set(pids) <= {p.pid for p in procs}
    assert peak_in_flight(spans) == 2, spans  # never more than the limit, across both processes; reached
    for p, name in zip(procs, ("a", "b"), strict=True):
        assert p.returncode == 0, (tmp_path / f"{name}.log").read_text()[-2000:]


@pytest.mark.parametrize(
    ("queue", "message"),
    [("video", "no loaded flow is in queue video"), ("a b", "queue name 'a b' is invalid")],
)
def test_podium_worker_refuses_a_queue_it_cannot_serve(tmp_path: Path, queue: str, message: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT), str(TESTS))), "COLUMNS": "200"}
    db = f"sqlite:///{tmp_path}/p.db"
    cmd = [sys.executable, "-m", "podium.cli", "worker", str(TESTS / "queue_app.py"), "--db", db, "-q", queue]
    done = subprocess.run(cmd, env=env, cwd=TESTS, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
