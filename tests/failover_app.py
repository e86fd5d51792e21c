"""Flows for ``test_failover.py``, run by ``podium worker tests/failover_app.py`` processes that the test
SIGKILLs at random. Each step appends ``start`` and ``done`` lines to a fsynced ledger (``crash_app.work``'s
format, so ``test_crash.check_ledger`` judges them) and returns its tag and the pid that ran it.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import podium


def append(ledger: str, line: str) -> None:
    """Append one line durably: once this returns, the line survives a SIGKILL."""
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@podium.step(name="failover.work")
async def work(ledger: str, tag: str, low: float, high: float) -> dict[str, Any]:
    info = podium.current_step()
    assert info is not None
    pid = os.getpid()
    append(ledger, f"start {info.run_id} {tag} {info.idempotency_key} {pid}")
    await asyncio.sleep(random.uniform(low, high))
    append(ledger, f"done {info.run_id} {tag} {info.idempotency_key} {pid}")
    return {"tag": tag, "pid": pid}


@podium.flow(name="failover.chain")
async def chain(ctx: podium.Context, params: dict[str, Any]) -> dict[str, Any]:
    """``steps`` sequential steps of ``low``..``high`` seconds each."""
    low, high = params.get("low", 0.03), params.get("high", 0.12)
    results = [await work(params["ledger"], str(k), low, high) for k in range(params["steps"])]
    return {"results": results}
