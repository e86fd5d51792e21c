"""Observers see every run and step event, model calls with their tokens and cost, and cannot break a run."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, wait_status

import podium

ATTEMPTS: dict[str, int] = {}


@podium.step(retries=1)
async def flaky(tag: str) -> str:
    ATTEMPTS[tag] = ATTEMPTS.get(tag, 0) + 1
    if ATTEMPTS[tag] == 1:
        raise ValueError("first try fails")
    return tag


@podium.step
async def fails() -> None:
    raise podium.ApplicationError("no", retryable=False)


@podium.flow(name="hooks.observed")
async def observed(ctx: podium.Context) -> str:
    a = await flaky("a")
    reply = await ctx.model("echo").generate("hello")
    await ctx.wait_for_signal("go")
    try:
        await fails()
    except podium.StepError:
        pass
    return a + reply


class Recorder:
    def __init__(self) -> None:
        self.events: list[podium.EngineEvent] = []

    def observe(self, event: podium.EngineEvent) -> None:
        self.events.append(event)


class Broken:
    def observe(self, event: podium.EngineEvent) -> None:
        raise RuntimeError("observer bug")


ECHO = {"provider": "function", "model": "podium.testing:echo_model", "price": {"input": 1, "output": 2}}
MODELS = {"models": {"echo": ECHO}}


@pytest.fixture(autouse=True)
def _reset() -> None:
    ATTEMPTS.clear()


async def test_observers_see_runs_steps_retries_models_and_suspends(store_url: str) -> None:
    rec = Recorder()
    settings = podium.Settings(database_url=store_url, poll_seconds=0.05, lease_seconds=2, config=MODELS)
    client = podium.Client(settings, observers=[Broken(), rec])  # a failing observer changes nothing
    await client.open()
    try:
        h = await client.start(observed)
        await wait_status(client, h.id, podium.RunStatus.WAITING)
        await client.signal(h.id, "go")
        assert await h.result(timeout=WAIT_SECONDS) == "ahello"
    finally:
        await close_within(client)
    seen = [(e.kind, e.name, e.status) for e in rec.events]
    assert seen == [
        ("run.claimed", "", ""),
        ("step.started", "flaky", ""),
        ("step.retrying", "flaky", ""),
        ("step.ended", "flaky", "ok"),
        ("step.started", "model:echo", ""),
        ("step.ended", "model:echo", "ok"),
        ("run.suspended", "", ""),
        ("run.claimed", "", ""),  # resumed by replay: replayed steps are not started again
        ("step.started", "fails", ""),
        ("step.ended", "fails", "failed"),
        ("run.ended", "", "completed"),
    ]
    assert all(e.run_id == h.id and e.flow == "hooks.observed" for e in rec.events)
    by_kind: dict[str, list[podium.EngineEvent]] = {}
    for e in rec.events:
        by_kind.setdefault(e.kind, []).append(e)
    model = next(e for e in by_kind["step.ended"] if e.name == "model:echo")
    data: Any = model.data
    assert data["input_tokens"] > 0 and data["cost"] > 0 and data["served_by"] == "echo"
    retry = by_kind["step.retrying"][0]
    assert retry.attempt == 1 and retry.error is not None and "first try" in retry.error["message"]
    assert by_kind["step.ended"][0].attempt == 2 and by_kind["step.ended"][0].position == "0"
    failed = by_kind["step.ended"][-1]
    assert failed.error is not None and failed.error["type"] == "ApplicationError"
    end = by_kind["run.ended"][0]
    assert end.duration is not None and end.duration >= 0
