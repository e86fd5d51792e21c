"""Flows whose steps run as Ray tasks, for ``test_ray.py``: in the test process, and in ``podium worker``
subprocesses that are killed with SIGKILL.

Steps that touch the world append a line ``EVENT STEP PID IDEMPOTENCY_KEY`` to a ledger file (fsynced, so
a line written before a kill is on disk), so a test can tell what ran, where and how often.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import podium


def append(ledger: str, line: str) -> None:
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def note(ledger: str, event: str, step: str) -> None:
    info = podium.current_step()
    key = info.idempotency_key if info is not None else "-"
    append(ledger, f"{event} {step} {os.getpid()} {key}")


@podium.step(name="ray.double", executor="ray", num_cpus=1)
def double(x: int) -> dict[str, Any]:
    info = podium.current_step()
    return {"value": 2 * x, "pid": os.getpid(), "key": None if info is None else info.idempotency_key}


@podium.step(name="ray.adouble", executor="ray", num_cpus=1)
async def adouble(x: int) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"value": 2 * x, "pid": os.getpid()}


@podium.step(name="ray.crash_once", executor="ray", retries=2)
def crash_once(marker: str) -> int:
    """Dies with SIGKILL on its first attempt (no marker file yet); returns its pid on the next."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@podium.step(name="ray.fails", executor="ray", retries=1)
def fails(n: int) -> None:
    raise ValueError(f"bad value {n}")


@podium.step(name="ray.slow", executor="ray", timeout=1)
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "finished"


@podium.flow(name="ray.basics")
async def basics(ctx: podium.Context, x: int) -> dict[str, Any]:
    a = await double(x)
    b = await adouble(a["value"])
    c = await ctx.step("ray.double.again", double, b["value"])
    return {"a": a, "b": b, "c": c, "local_pid": os.getpid()}


@podium.flow(name="ray.crashing")
async def crashing(ctx: podium.Context, marker: str) -> int:
    return await crash_once(marker)


@podium.flow(name="ray.failing")
async def failing(ctx: podium.Context) -> str:
    try:
        await fails(7)
    except podium.StepError as exc:
        return f"{exc.type}: {exc.message}"
    return "no error"


@podium.flow(name="ray.timing_out")
async def timing_out(ctx: podium.Context) -> str:
    try:
        return await slow(30.0)
    except podium.StepError as exc:
        return exc.type or ""


@podium.flow(name="ray.unpicklable")
async def unpicklable(ctx: podium.Context) -> str:
    import threading

    lock = threading.Lock()
    try:
        await ctx.step("ray.lock", double, lock)
    except podium.StepError as exc:
        return f"{exc.type}: {exc.message}"
    return "no error"


# -- the pipeline a test SIGKILLs: local step, long Ray step, local step --------------------------------


@podium.step(name="ray.prepare")
def prepare(ledger: str) -> str:
    note(ledger, "done", "prepare")
    return "prepared"


@podium.step(name="ray.train", executor="ray", num_cpus=1)
def train(ledger: str, go: str) -> int:
    """Waits (at most a minute) until the file ``go`` exists."""
    note(ledger, "start", "train")
    deadline = time.time() + 60
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.05)
    note(ledger, "done", "train")
    return os.getpid()


@podium.step(name="ray.publish")
def publish(ledger: str, trained_by: int) -> str:
    note(ledger, "done", "publish")
    return f"published model trained in {trained_by}"


@podium.flow(name="ray.pipeline")
async def pipeline(ctx: podium.Context, params: dict[str, str]) -> str:
    await prepare(params["ledger"])
    pid = await train(params["ledger"], params["go"])
    return await publish(params["ledger"], pid)


@podium.flow(name="ray.fanout")
async def fanout(ctx: podium.Context, n: int) -> list[int]:
    results = await ctx.map(double, range(n), concurrency=2)
    return [r["value"] for r in results]
