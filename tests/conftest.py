"""Shared fixtures: every engine test runs once on the memory store and once on a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

import podium

T = TypeVar("T")

WAIT_SECONDS = 20.0
"""Generous upper bound for anything a test waits for; only there so a broken engine cannot hang CI."""


def settings_for(url: str) -> podium.Settings:
    """The settings every test client uses: fast polling, short leases."""
    return podium.Settings(database_url=url, poll_seconds=0.05, lease_seconds=2)


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``memory://`` or a fresh SQLite file under ``tmp_path``."""
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path}/podium.db"


@pytest.fixture
async def client(store_url: str) -> AsyncIterator[podium.Client]:
    """An opened client (with its in-process worker) on ``store_url``."""
    c = podium.Client(settings_for(store_url))
    await c.open()
    try:
        yield c
    finally:
        await close_within(c)


async def close_within(client: podium.Client, seconds: float = 10.0) -> None:
    """Close ``client``; fail (instead of hanging the suite) if a run's task never lets go."""
    try:
        async with asyncio.timeout(seconds):
            await client.close()
    except TimeoutError:
        pytest.fail(f"client.close() did not return within {seconds}s: a run's task is stuck")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    what: str,
    timeout: float = WAIT_SECONDS,
) -> T:
    """Poll ``probe()`` until ``accept`` holds for its value; fail the test (never hang) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last value: {value!r}")
        await asyncio.sleep(0.01)


async def wait_status(client: podium.Client, run_id: str, *statuses: podium.RunStatus) -> podium.Run:
    """Wait until the run is in one of ``statuses``."""
    return await eventually(
        lambda: client.get(run_id),
        lambda r: r.status in statuses,
        what=f"run {run_id} to be {'/'.join(s.value for s in statuses)}",
    )


async def wait_approval(client: podium.Client, run_id: str) -> list[podium.PendingApproval]:
    """Wait until the run has asked for an approval that has no decision yet."""
    return await eventually(
        lambda: client.pending_approvals(run_id),
        bool,
        what=f"run {run_id} to request an approval",
    )
