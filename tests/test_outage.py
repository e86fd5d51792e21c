"""A PostgreSQL outage mid-load: the server is stopped for a few seconds while ``podium worker`` processes
are executing runs. Meanwhile the REST API answers 503 (not 500); afterwards the workers reconnect by
themselves and finish every run, none lost, and no step whose result was journaled runs again (a step in
flight when its commit failed may run again: for the engine the outage is a crash of that commit).

Stopping the server affects every other user of it on this machine, so the outage is kept short and the
server is started again in a ``finally``. Skipped where ``pg_ctlcluster`` is missing.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import PostgresSchemas
from failover_app import chain
from test_api import serving
from test_crash import read_ledger
from test_failover import WorkerProcess

import podium

# Stopping the server would break every other test using it at the same time: ./dev test runs these alone.
pytestmark = pytest.mark.outage

RUNS = 60
STEPS = 6
OUTAGE_SECONDS = 3.0
DEADLINE = 90.0


def _cluster() -> list[str]:
    versions = sorted(Path("/etc/postgresql").iterdir()) if Path("/etc/postgresql").is_dir() else []
    if shutil.which("pg_ctlcluster") is None or not versions:
        pytest.skip("no local PostgreSQL cluster to stop (pg_ctlcluster)")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main"]


def pg_ctl(action: str) -> None:
    cmd = [*_cluster(), action] + (["-m", "fast"] if action == "stop" else [])
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def url(postgres_schemas: PostgresSchemas) -> object:
    _cluster()
    schema = postgres_schemas.take()
    try:
        yield postgres_schemas.url(schema)
    finally:
        if postgres_schemas._conn is not None:  # it died with the server: let the fixture reconnect
            postgres_schemas._conn.close()
        postgres_schemas.give_back(schema)


async def test_workers_ride_out_a_database_outage_and_the_api_answers_503(url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    settings = podium.Settings(database_url=url, poll_seconds=0.1)
    async with podium.Client(settings, worker=False) as client:
        _, secret = await client.create_key("viewer-bot", "viewer")
        auth = {"Authorization": f"Bearer {secret}"}
        params = {"ledger": str(ledger), "steps": STEPS, "low": 0.05, "high": 0.15}
        handles = await client.start_many([(chain, params, f"o{i}") for i in range(RUNS)])
        ids = [h.id for h in handles]
        workers = [WorkerProcess(url, tmp_path / f"worker{i}.log") for i in range(2)]
        deadline = time.monotonic() + DEADLINE
        try:
            async with serving(client) as (base, http):
                while len(read_ledger(ledger)) < RUNS * STEPS // 3:  # a third of the work done
                    assert time.monotonic() < deadline, "the workers did not start"
                    await asyncio.sleep(0.05)
                r = await http.get(f"{base}/api/runs/{ids[0]}", headers=auth)
                assert r.status_code == 200, r.text
                pg_ctl("stop")
                try:
                    before = len(read_ledger(ledger))
                    paths = (f"/api/runs/{ids[0]}", "/api/runs", "/api/approvals")
                    replies = await asyncio.gather(*(http.get(base + p, headers=auth) for p in paths))
                    for path, r in zip(paths, replies, strict=True):
                        assert r.status_code == 503, (path, r.status_code, r.text)
                        assert r.headers.get("retry-after") == "1"
                    await asyncio.sleep(OUTAGE_SECONDS)
                finally:
                    pg_ctl("start")
                assert all(w.proc.poll() is None for w in workers), "a worker died with the database"
                while True:
                    try:
                        runs = [await client.get(i) for i in ids]
                    except podium.StoreError:  # the client's own pooled connections died too
                        runs = []
                    if runs and all(r.status.terminal for r in runs):
                        break
                    assert time.monotonic() < deadline, (
                        f"unfinished: {sum(not r.status.terminal for r in runs) if runs else '?'}"
                    )
                    await asyncio.sleep(0.2)
                r = await http.get(f"{base}/api/runs/{ids[0]}", headers=auth)
                assert r.status_code == 200, r.text
        finally:
            for w in workers:
                w.kill()
    assert [r.status for r in runs] == [podium.RunStatus.COMPLETED] * RUNS, [
        (r.id, r.status, r.error) for r in runs if r.status is not podium.RunStatus.COMPLETED
    ]
    # No journaled step ran again: nothing of it started after the kept execution's ``done``. (Executions may
    # overlap: a worker whose heartbeats failed during the outage lost its leases, and another took the run
    # over while the first was still inside a step; the journal keeps one and fences the other's commit.)
    lines = read_ledger(ledger)
    by_step = defaultdict(list)
    for line in lines:
        by_step[line.run_id, line.tag].append(line)
    again = 0
    for r in runs:
        results = r.output["results"]
        assert [x["tag"] for x in results] == [str(k) for k in range(STEPS)]
        for x in results:
            group = by_step[r.id, x["tag"]]
            kept = [i for i, g in enumerate(group) if g.pid == x["pid"] and g.event == "done"]
            assert kept, group
            assert not [g for g in group[kept[-1] :] if g.event == "start"], group
            again += len(group) > 2
    assert len(lines) > before, "work went on after the outage"
    print(f"{again} steps ran again (their commit failed during the outage)")
