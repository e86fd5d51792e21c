"""Per-flow concurrency limits that hold across workers (``@podium.flow(concurrency=N)``) and run priorities
(``client.start(..., priority=N)``: higher first), on the memory store, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import settings_for, workers_on

import podium
from podium.engine.worker import Worker

LEDGER: list[tuple[str, str]] = []
"""("start" | "end", run id) in the order the steps of this process wrote them."""


@podium.step(name="limits.work")
async def work(seconds: float) -> None:
    info = podium.current_step()
    assert info is not None
    LEDGER.append(("start", info.run_id))
    await asyncio.sleep(seconds)
    LEDGER.append(("end", info.run_id))


@podium.flow(name="limits.capped", concurrency=3)
async def capped(ctx: podium.Context, seconds: float) -> None:
    await work(seconds)


@podium.flow(name="limits.plain")
async def plain(ctx: podium.Context, seconds: float) -> None:
    await work(seconds)


def most_at_once(ledger: list[tuple[str, str]]) -> int:
    now = peak = 0
    for event, _ in ledger:
        now += 1 if event == "start" else -1
        peak = max(peak, now)
    return peak


async def test_a_flow_limit_holds_across_two_workers(store_url: str) -> None:
    LEDGER.clear()
    settings = settings_for(store_url).with_(lease_seconds=10, concurrency=2)  # 3 at once takes both
    async with workers_on(store_url, settings) as (client, workers):
        capped_runs = [await client.start(capped, 0.05) for _ in range(20)]
        plain_runs = [await client.start(plain, 0.3) for _ in range(6)]
        for h in capped_runs + plain_runs:
            await h.result(timeout=30)
    capped_ids = {h.id for h in capped_runs}
    mine = [line for line in LEDGER if line[1] in capped_ids]
    assert len(mine) == 40
    assert most_at_once(mine) == 3  # the limit held, and was reached: by both workers (2 slots each)
    assert sum(w.finished for w in workers) == 26
    others = [line for line in LEDGER if line[1] not in capped_ids]
    assert most_at_once(others) == 4, "flows without a limit use every slot of both workers"


async def test_higher_priority_runs_are_claimed_first(store_url: str) -> None:
    LEDGER.clear()
    settings = settings_for(store_url).with_(concurrency=1)
    priorities = [0, 5, -2, 9, 5, 1, 0, 7]
    async with podium.Client(settings, worker=False) as client:
        handles = [await client.start(plain, 0.0, priority=p) for p in priorities]
        worker = Worker(client.store, settings)
        await worker.start()
        try:
            for h in handles:
                await h.result(timeout=30)
        finally:
            await worker.stop()
    order = [run_id for event, run_id in LEDGER if event == "start"]
    by_id = {h.id: (p, i) for i, (h, p) in enumerate(zip(handles, priorities, strict=True))}
    expected = sorted(by_id, key=lambda r: (-by_id[r][0], by_id[r][1]))  # higher first, then older
    assert order == expected


async def test_a_limit_holds_for_runs_started_by_a_client_with_a_worker(store_url: str) -> None:
    """A client's own worker creates runs already claimed (no claim query): not for a capped flow."""
    LEDGER.clear()
    async with podium.Client(settings_for(store_url).with_(lease_seconds=10)) as client:
        handles = await asyncio.gather(*(client.start(capped, 0.05) for _ in range(12)))
        await asyncio.gather(*(h.result(timeout=30) for h in handles))
        run = await client.get(handles[0].id)
    assert most_at_once(LEDGER) == 3
    assert run.status is podium.RunStatus.COMPLETED


def test_a_bad_limit_or_priority_is_a_usage_error() -> None:
    with pytest.raises(podium.UsageError, match="concurrency"):
        podium.flow(name="limits.bad", concurrency=0)(plain.fn)
    with pytest.raises(podium.UsageError, match="priority"):

        async def go() -> Any:
            async with podium.Client(podium.Settings(database_url="memory://")) as c:
                await c.start(plain, 0.0, priority="high")  # type: ignore[arg-type]

        asyncio.run(go())
