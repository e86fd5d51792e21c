"""Failover on PostgreSQL: several ``podium worker`` processes share 200 runs of a multi-step flow; workers
are SIGKILLed at random while runs are in flight and replacements started. At the end every run completed
exactly once, none was lost, and no step whose result was journaled ran again (``test_crash.check_ledger``
over the fsynced ledger the steps write).

Set ``PODIUM_CRASH_SEED`` to replay a failing choice of kills (timing still varies).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PostgresSchemas
from failover_app import chain
from test_crash import check_ledger, read_ledger

import podium

HERE = Path(__file__).resolve().parent
RUNS = 200
STEPS = 8
WORKERS = 3
KILLS = 8
DEADLINE = 90.0
"""Upper bound for the whole test (it takes about 20 s); only there so a broken engine cannot hang CI."""


class WorkerProcess:
    def __init__(self, url: str, log: Path) -> None:
        env = {
            **os.environ,
            "PODIUM_DATABASE_URL": url,
            "PODIUM_LEASE_SECONDS": "2",  # a killed worker's runs are taken over within 2 seconds
            "PODIUM_POLL_SECONDS": "30",  # new and released runs arrive by NOTIFY; expired leases by wakeup
        }
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "podium.cli", "worker", "failover_app.py", "--concurrency", "12"],
            cwd=HERE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def url(postgres_schemas: PostgresSchemas) -> object:
    schema = postgres_schemas.take()
    try:
        yield postgres_schemas.url(schema)
    finally:
        postgres_schemas.give_back(schema)


async def test_random_sigkills_of_workers_lose_no_run_and_repeat_no_journaled_step(
    url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("PODIUM_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"PODIUM_CRASH_SEED={seed}")
    ledger = tmp_path / "ledger"
    async with podium.Client(podium.Settings(database_url=url, poll_seconds=0.1), worker=False) as client:
        params = {"ledger": str(ledger), "steps": STEPS, "low": 0.1, "high": 0.3}
        handles = await client.start_many([(chain, params, f"r{i}") for i in range(RUNS)])
        ids = [h.id for h in handles]
        logs = iter(tmp_path / f"worker{i}.log" for i in range(WORKERS + KILLS))
        workers = [WorkerProcess(url, next(logs)) for _ in range(WORKERS)]
        killed: set[int] = set()
        deadline = time.monotonic() + DEADLINE
        try:
            while len(killed) < KILLS:  # kill one at random whenever it has steps in flight
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                assert time.monotonic() < deadline, f"too slow: {len(killed)} kills so far"
                lines = read_ledger(ledger)
                if len(lines) > RUNS * STEPS * 2 * 0.9:
                    break  # nearly done: the rest of the work is not worth killing for
                victim = rng.choice(workers)
                if not any(line.pid == victim.pid for line in lines):
                    continue  # not started yet: kill it only once it has work
                victim.kill()
                killed.add(victim.pid)
                workers[workers.index(victim)] = WorkerProcess(url, next(logs))
            while True:
                runs = [await client.get(i) for i in ids]
                if all(r.status.terminal for r in runs):
                    break
                assert time.monotonic() < deadline, (
                    f"runs still unfinished: {sum(not r.status.terminal for r in runs)}"
                )
                await asyncio.sleep(0.2)
        finally:
            for w in workers:
                w.kill()
        assert [r.status for r in runs] == [podium.RunStatus.COMPLETED] * RUNS, [
            (r.id, r.status, r.error) for r in runs if r.status is not podium.RunStatus.COMPLETED
        ]
        results = {r.id: r.output["results"] for r in runs}
        assert all(len(rs) == STEPS for rs in results.values())
        for run_id in ids:  # exactly one end per run (also the store's unique constraint)
            journal = await client.journal(run_id)
            assert sum(1 for e in journal if e.kind == "end") == 1
    findings = check_ledger(read_ledger(ledger), results, killed)
    survivors_ran = {line.pid for line in read_ledger(ledger)} - killed
    print(json.dumps({"seed": seed, "killed": len(killed), "findings": str(findings)}))
    assert len(killed) >= KILLS // 2, "the kills happened while there was work (else: slow the steps down)"
    assert findings.interrupted, "some kill cut a step short (the kills hit work in flight)"
    assert survivors_ran, "replacement workers finished the work"
