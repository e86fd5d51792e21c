"""Property tests: over random completion orders and restart points, races reach the same decisions.

Hypothesis picks how many awaitables race (``m``), how many must finish (``n``), whether the rest are
cancelled, the order in which their gates open, and after which completions the worker stops and a new
one takes over (a clean stop here; real SIGKILLs are in ``test_crash.py``). The winners must be the first
``n`` to complete, the journal must say so, and replaying the journal must give the same result.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import podium
from podium.testing import MemoryStore, replay

GATES: dict[str, asyncio.Event] = {}
LEDGER: list[str] = []


@podium.step(name="prop.gated")
async def gated(tag: str) -> str:
    LEDGER.append(f"start:{tag}")
    await GATES[tag].wait()
    LEDGER.append(f"done:{tag}")
    return tag


@podium.flow(name="prop.race")
async def prop_race(ctx: podium.Context, p: dict[str, Any]) -> dict[str, Any]:
    got = await ctx.wait([gated(f"g{i}") for i in range(p["m"])], n=p["n"], cancel_rest=p["cancel_rest"])
    return {"values": list(got), "indices": got.indices}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    m = draw(st.integers(2, 6))
    n = draw(st.integers(1, m))
    order = draw(st.permutations(range(m)))
    restarts = draw(st.sets(st.integers(0, m - 1), max_size=3))
    return {"m": m, "n": n, "order": order, "restarts": restarts, "cancel_rest": draw(st.booleans())}


async def _until(probe: Any, what: str) -> None:
    for _ in range(2000):
        if probe():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def _scenario(sc: dict[str, Any]) -> None:
    GATES.clear()
    LEDGER.clear()
    for i in range(sc["m"]):
        GATES[f"g{i}"] = asyncio.Event()
    store = MemoryStore()
    settings_ = podium.Settings(database_url="memory://", poll_seconds=0.02, lease_seconds=1)
    client = podium.Client(settings_, store=store)
    await client.open()
    try:
        h = await client.start(prop_race, {"m": sc["m"], "n": sc["n"], "cancel_rest": sc["cancel_rest"]})
        released = []
        for k, i in enumerate(sc["order"]):
            tag = f"g{i}"
            await _until(lambda t=tag: f"start:{t}" in LEDGER, f"{tag} to start")
            GATES[tag].set()
            released.append(i)
            if len(released) <= sc["n"]:  # the losers after the decision may be cancelled instead
                await _until(lambda t=tag: f"done:{t}" in LEDGER, f"{tag} to finish")
            if k in sc["restarts"] and len(released) < sc["n"]:
                await client.close()  # the worker lets go; a new one resumes the run by replay
                LEDGER[:] = [x for x in LEDGER if not x.startswith("start:")]
                client = podium.Client(settings_, store=store)
                await client.open()
        out = await client.result(h.id, timeout=20)
        expected = released[: sc["n"]]
        assert out == {"values": [f"g{i}" for i in expected], "indices": expected}
        journal = await client.journal(h.id)
        joins = [e for e in journal if e.kind == "join"]
        assert len(joins) == 1 and joins[0].data["won"] == expected
        LEDGER.clear()
        assert await replay(prop_race, journal) == out
        assert LEDGER == [], "replay ran a step"
    finally:
        await client.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_races_decide_by_completion_order_and_replay_agrees(sc: dict[str, Any]) -> None:
    asyncio.run(_scenario(sc))
