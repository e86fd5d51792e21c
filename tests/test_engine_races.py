"""Regression tests for races between the engine's own stops and flow code: suspends and shutdowns must not
let `finally` blocks start steps, and the end of a gather branch must not make a run look idle."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import WAIT_SECONDS, close_within, eventually, settings_for

import podium
import podium.storage
from podium.types import RunStatus

CALLS: list[str] = []


@podium.step(name="races.cleanup")
async def cleanup() -> str:
    CALLS.append("cleanup")
    return "c"


@podium.step(name="races.cleanup2")
async def cleanup2() -> str:
    CALLS.append("cleanup2")
    return "c2"


@podium.step(name="races.step_a")
async def step_a() -> str:
    CALLS.append("step_a")
    return "a"


@podium.flow(name="races.finally_on_suspend")
async def finally_on_suspend(ctx: podium.Context) -> str:
    try:
        await ctx.wait_for_signal("go")
    finally:
        await cleanup()
    return "ok"


async def test_a_suspend_does_not_run_finally_steps(store_url: str) -> None:
    CALLS.clear()
    async with podium.Client(settings_for(store_url)) as c:
        h = await c.start(finally_on_suspend)
        await eventually(lambda: h.get(), lambda r: r.status is RunStatus.WAITING, what="the run to suspend")
        assert CALLS == []  # the suspend unwound the flow without starting the cleanup step
        await h.signal("go")
        assert await h.result(timeout=WAIT_SECONDS) == "ok"
        journal = [(e.kind, e.name) for e in await c.journal(h.id) if e.kind in ("step", "receive")]
    assert CALLS == ["cleanup"]
    assert journal == [("receive", "go"), ("step", "races.cleanup")]


@podium.flow(name="races.finally_on_shutdown")
async def finally_on_shutdown(ctx: podium.Context) -> str:
    try:
        await ctx.sleep(1.0)  # held in memory (shorter than hold_seconds)
        await step_a()
    finally:
        await cleanup()
        await cleanup2()
    return "ok"


async def test_a_graceful_shutdown_does_not_journal_finally_steps(tmp_path: Path) -> None:
    CALLS.clear()
    settings = settings_for(f"sqlite:///{tmp_path}/p.db")
    first = podium.Client(settings)
    await first.open()
    h = await first.start(finally_on_shutdown)
    await asyncio.sleep(0.3)
    await close_within(first)  # a deploy: the worker stops while the flow sleeps
    assert CALLS == []
    second = podium.Client(settings)
    await second.open()
    try:
        assert await second.result(h.id, timeout=WAIT_SECONDS) == "ok"  # no NondeterminismError
        steps = [e.name for e in await second.journal(h.id) if e.kind == "step"]
    finally:
        await close_within(second)
    assert CALLS == ["step_a", "cleanup", "cleanup2"]
    assert steps == ["races.step_a", "races.cleanup", "races.cleanup2"]


@podium.step(name="races.boom")
async def boom() -> None:
    raise podium.ApplicationError("boom", retryable=False)


@podium.flow(name="races.gather_failure")
async def gather_failure(ctx: podium.Context) -> str:
    try:
        await ctx.gather(ctx.wait_for_signal("never"), boom())
    except podium.StepError as exc:
        return f"handled {exc.type}"
    return "unreachable"


async def test_a_failing_branch_next_to_a_waiting_one_reaches_the_handler(client: podium.Client) -> None:
    h = await client.start(gather_failure)
    assert await h.result(timeout=WAIT_SECONDS) == "handled ApplicationError"


@podium.step(name="races.slow_b")
async def slow_b() -> str:
    CALLS.append("b")
    await asyncio.sleep(0.2)
    CALLS.append("b-done")
    return "b"


@podium.flow(name="races.nested_gather")
async def nested_gather(ctx: podium.Context) -> list[str]:
    async def work() -> str:
        await ctx.gather(step_a())
        return await slow_b()

    return await ctx.gather(ctx.wait_for_signal("x"), work())  # type: ignore[no-any-return]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_the_end_of_an_inner_gather_does_not_stall_its_siblings(tmp_path: Path, store: str) -> None:
    CALLS.clear()
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path}/p.db"
    async with podium.Client(settings_for(url)) as c:
        h = await c.start(nested_gather)
        await eventually(
            lambda: asyncio.sleep(0.05, result=list(CALLS)),
            lambda calls: "b-done" in calls,
            what="step b to finish while the signal is still awaited",
        )
        await h.signal("x", "sig")
        assert await h.result(timeout=WAIT_SECONDS) == ["sig", "b"]
    assert CALLS == ["step_a", "b", "b-done"]  # step b ran once, uninterrupted


class FlakyStore(podium.storage.SQLiteStore):
    """A store whose first few claims fail, as a locked or full database would."""

    failures = 3

    async def claim(self, *args: object, **kwargs: object) -> list[podium.storage.RunRecord]:
        if FlakyStore.failures > 0:
            FlakyStore.failures -= 1
            raise podium.StoreError("database is locked")
        return await super().claim(*args, **kwargs)  # type: ignore[arg-type]


@podium.flow(name="races.plain")
async def plain(ctx: podium.Context, x: int) -> int:
    return await ctx.step("double", lambda v: v * 2, x)  # type: ignore[no-any-return]


async def test_a_worker_keeps_claiming_after_store_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    async with podium.Client(settings_for(url), worker=False) as producer:
        h = await producer.start(plain, 21)  # enqueued for a worker that is not running yet
    store = FlakyStore(tmp_path / "p.db")
    async with podium.Client(settings_for(url), store=store) as c:
        assert await c.result(h.id, timeout=WAIT_SECONDS) == 42
    assert FlakyStore.failures == 0
