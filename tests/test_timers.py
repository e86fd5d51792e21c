"""Durable timers: long sleeps leave memory and survive restarts; short ones stay in memory."""

from __future__ import annotations

from pathlib import Path

from conftest import WAIT_SECONDS, close_within, eventually

import podium
from podium.testing import ManualClock

WEEK = 7 * 86400.0


@podium.flow(name="timers.reminder")
async def reminder(ctx: podium.Context, who: str) -> dict[str, object]:
    before = ctx.now()
    await ctx.sleep("7d")
    after = ctx.now()
    return {"who": who, "slept_days": round((after - before).total_seconds() / 86400)}


async def test_a_week_long_sleep_suspends_the_run_and_resumes_when_due(
    tmp_path: Path, store_url: str
) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    settings = podium.Settings(database_url=store_url, poll_seconds=0.05, lease_seconds=2, hold_seconds=1)
    client = podium.Client(settings, clock=clock)
    await client.open()
    try:
        handle = await client.start(reminder, "ann")
        run = await eventually(
            lambda: client.get(handle.id),
            lambda r: r.status == podium.RunStatus.WAITING,
            what="the run to suspend on its timer",
        )
        assert run.wake_at is not None and abs(run.wake_at - (1_800_000_000.0 + WEEK)) < 5
        worker = client.worker
        assert worker is not None

        async def in_memory() -> bool:  # the run's task ends just after its suspend commits
            return handle.id in worker.executions

        await eventually(in_memory, lambda held: not held, what="the suspended run to leave memory")
        clock.advance("6d")
        assert (await client.get(handle.id)).status == podium.RunStatus.WAITING
        clock.advance("1d")
        out = await handle.result(timeout=WAIT_SECONDS)
        assert out == {"who": "ann", "slept_days": 7}
        rows = await client.timeline(handle.id)
        assert [r.kind for r in rows] == ["value", "timer", "value"]
        assert rows[1].status == "fired"
    finally:
        await close_within(client)


async def test_a_timer_survives_a_restart_of_the_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/podium.db"
    clock = ManualClock(start=1_800_000_000.0)
    settings = podium.Settings(database_url=url, poll_seconds=0.05, lease_seconds=2, hold_seconds=1)
    first = podium.Client(settings, clock=clock)
    await first.open()
    handle = await first.start(reminder, "bob")
    await eventually(
        lambda: first.get(handle.id),
        lambda r: r.status == podium.RunStatus.WAITING,
        what="the run to suspend",
    )
    await close_within(first)
    clock.advance("8d")  # the timer fell due while no worker was running
    second = podium.Client(settings, clock=clock)
    await second.open()
    try:
        # ctx.now() after the sleep is when a worker resumed it: 8 days later, not 7
        assert await second.result(handle.id, timeout=WAIT_SECONDS) == {"who": "bob", "slept_days": 8}
    finally:
        await close_within(second)


@podium.flow(name="timers.short")
async def short(ctx: podium.Context) -> str:
    await ctx.sleep("50ms")
    return "done"


async def test_a_short_sleep_waits_in_memory(client: podium.Client) -> None:
    handle = await client.start(short)
    assert await handle.result(timeout=WAIT_SECONDS) == "done"
    journal = await client.journal(handle.id)
    assert [e.kind for e in journal] == ["start", "timer", "end"]
    timer = journal[1].data
    assert abs(timer["fire_at"] - journal[1].at - 0.05) < 0.01 and timer["seconds"] == 0.05
