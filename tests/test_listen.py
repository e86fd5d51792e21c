"""LISTEN/NOTIFY on PostgreSQL: a worker that polls once an hour still resumes a run at once when another
process (here: another store, so other connections) makes it runnable: a signal, an approval, the end of a
child run executed by another worker; and after its listening connection is killed, it listens again.

Every worker here has ``poll_seconds=3600`` and leases of a minute: nothing but a notification can wake it
within the test's timeout (the timeouts are far below the minute a lease would take to fall due).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import PostgresSchemas, eventually

import podium
from podium.engine.worker import Worker
from podium.runtime import make_store

TIMEOUT = 15.0
"""Far below both the poll (an hour) and the lease (a minute): only a notification can be this fast."""


@podium.flow(name="listen.signal")
async def wait_signal(ctx: podium.Context, _: Any) -> Any:
    return await ctx.wait_for_signal("go")


@podium.flow(name="listen.approve")
async def wait_approval(ctx: podium.Context, _: Any) -> Any:
    decision = await ctx.approval("ship", payload={"v": 1})
    return bool(decision)


@podium.flow(name="listen.child")
async def child(ctx: podium.Context, n: int) -> int:
    return n * 2


@podium.flow(name="listen.parent")
async def parent(ctx: podium.Context, n: int) -> int:
    return await ctx.child(child, n) + 1


def slow(url: str) -> podium.Settings:
    return podium.Settings(database_url=url, poll_seconds=3600, lease_seconds=60)


class Cluster:
    """Two workers (A: everything but the child flow; B: only the child flow) and a control-plane client,
    each with a store of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.a = Worker(
            make_store(slow(url)), slow(url), flows={"listen.signal", "listen.approve", "listen.parent"}
        )
        self.b = Worker(make_store(slow(url)), slow(url), flows={"listen.child"})
        # A control plane only: its poll is how often ``result()`` looks, not a worker's.
        self.client = podium.Client(slow(url).with_(poll_seconds=0.05), worker=False)

    async def __aenter__(self) -> Cluster:
        await self.client.open()
        for w in (self.a, self.b):
            await w.store.open()
            await w.start()
        await asyncio.sleep(0.3)  # the listening connections are up (a worker claims at once on connecting)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in (self.a, self.b):
            await w.stop()
            await w.store.close()
        await self.client.close()


@pytest.fixture
async def cluster(postgres_schemas: PostgresSchemas) -> AsyncIterator[Cluster]:
    schema = postgres_schemas.take()
    try:
        async with Cluster(postgres_schemas.url(schema)) as c:
            yield c
    finally:
        postgres_schemas.give_back(schema)


async def waiting(client: podium.Client, run_id: str) -> None:
    await eventually(
        lambda: client.get(run_id),
        lambda r: r.status is podium.RunStatus.WAITING,
        what=f"run {run_id} to wait",
        timeout=TIMEOUT,
    )


async def test_a_new_run_a_signal_and_an_approval_wake_a_worker_that_polls_hourly(cluster: Cluster) -> None:
    c = cluster.client
    sig = await c.start("listen.signal")
    appr = await c.start("listen.approve")
    await waiting(c, sig.id)  # claimed at once (a created run notifies), then suspended
    await waiting(c, appr.id)
    await c.signal(sig.id, "go", {"x": 1})
    await eventually(lambda: c.pending_approvals(appr.id), bool, what="the approval", timeout=TIMEOUT)
    await c.approve(appr.id)
    assert await sig.result(timeout=TIMEOUT) == {"x": 1}
    assert await appr.result(timeout=TIMEOUT) is True


async def test_a_child_ending_on_another_worker_wakes_its_parent(cluster: Cluster) -> None:
    runs = [await cluster.client.start("listen.parent", n) for n in range(5)]
    assert [await r.result(timeout=TIMEOUT) for r in runs] == [n * 2 + 1 for n in range(5)]
    assert cluster.a.finished >= 5 and cluster.b.finished == 5  # the children ran on B, the parents on A


async def test_the_worker_listens_again_after_its_connection_is_killed(
    cluster: Cluster, postgres_schemas: PostgresSchemas
) -> None:
    c = cluster.client
    first = await c.start("listen.signal")
    await waiting(c, first.id)
    killed = (
        postgres_schemas.admin()
        .execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'podium-listen'"
        )
        .fetchone()
    )
    assert killed is not None and killed[0] >= 2
    await c.signal(first.id, "go", 1)  # maybe while nobody listens: the reconnection claims it
    assert await first.result(timeout=TIMEOUT) == 1
    second = await c.start("listen.signal")  # and notifications arrive again afterwards
    await waiting(c, second.id)
    await c.signal(second.id, "go", 2)
    assert await second.result(timeout=TIMEOUT) == 2
