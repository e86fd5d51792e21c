"""Flows in queues, for ``test_queues.py``: in the test process, and in ``podium worker`` subprocesses.

Every step appends ``("start" | "end", run id)`` to ``LEDGER`` (this process's order) and returns the pid
of the process that ran it; the journal keeps each step's start and end times, across processes.
"""

from __future__ import annotations

import asyncio
import os

import podium

LEDGER: list[tuple[str, str]] = []


@podium.step(name="queues.work")
async def work(seconds: float) -> int:
    info = podium.current_step()
    assert info is not None
    LEDGER.append(("start", info.run_id))
    await asyncio.sleep(seconds)
    LEDGER.append(("end", info.run_id))
    return os.getpid()


@podium.flow(name="queues.render", queue="gpu")
async def render(ctx: podium.Context, seconds: float) -> int:
    return await work(seconds)


@podium.flow(name="queues.train", queue="gpu")
async def train(ctx: podium.Context, seconds: float) -> int:
    return await work(seconds)


@podium.flow(name="queues.tiny", queue="gpu", concurrency=1)
async def tiny(ctx: podium.Context, seconds: float) -> int:
    return await work(seconds)


@podium.flow(name="queues.plain")
async def plain(ctx: podium.Context, seconds: float) -> int:
    return await work(seconds)
