"""The program ``test_crash.py`` runs in subprocesses and kills with SIGKILL.

Every step appends ``start`` and ``done`` lines to a ledger file (fsynced, so a line written before a
kill is on disk), each line ``EVENT RUN_ID TAG IDEMPOTENCY_KEY PID``. A step returns its tag and the pid
of the process that ran it, so the journaled result names the execution that counted.

```
python crash_app.py chain  DB LEDGER KEY --steps 12      # start (or resume) one run, print its output
python crash_app.py fanout DB LEDGER KEY --items 20
python crash_app.py agent  DB LEDGER KEY                  # an agent whose tool calls write the ledger
python crash_app.py create DB LEDGER --runs 30 --steps 5  # create runs only (worker=False)
python crash_app.py work   DB --expect 30                 # a worker that idles until all runs end
```
Output (stdout) is one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from typing import Any

from pydantic import BaseModel

import podium
from podium.models import ModelRequest, register
from podium.policies.taint import unfence
from podium.testing import ScriptedModel, call


def append(ledger: str, line: str) -> None:
    """Append one line durably: once this returns, the line survives a SIGKILL."""
    with open(ledger, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@podium.step(name="crash.work")
async def work(ledger: str, tag: str, low: float, high: float) -> dict[str, Any]:
    info = podium.current_step()
    assert info is not None
    pid = os.getpid()
    append(ledger, f"start {info.run_id} {tag} {info.idempotency_key} {pid}")
    await asyncio.sleep(random.uniform(low, high))
    append(ledger, f"done {info.run_id} {tag} {info.idempotency_key} {pid}")
    return {"tag": tag, "pid": pid}


@podium.flow(name="crash.chain")
async def chain(ctx: podium.Context, params: dict[str, Any]) -> dict[str, Any]:
    """``steps`` sequential steps; the output is the step results in order and the sum of squares."""
    results = []
    for k in range(params["steps"]):
        results.append(await work(params["ledger"], str(k), 0.02, 0.05))
    total = sum(int(r["tag"]) ** 2 for r in results)
    return {"results": results, "total": total}


@podium.flow(name="crash.fanout")
async def fanout(ctx: podium.Context, params: dict[str, Any]) -> dict[str, Any]:
    """A step, then ``items`` parallel steps (``ctx.map``) of uneven length, then a last step."""
    ledger = params["ledger"]
    first = await work(ledger, "before", 0.02, 0.05)
    items = await ctx.map(lambda i: work(ledger, f"item{i}", 0.02, 0.4), range(params["items"]))
    last = await work(ledger, "after", 0.02, 0.05)
    return {"results": [first, *items, last], "count": len(items)}


@podium.step(name="crash.undo")
async def undo(ledger: str, tag: str, low: float, high: float, result: dict[str, Any]) -> dict[str, Any]:
    """The compensation of ``crash.booking``: journaled like any step, with its own ledger lines."""
    return await work.fn(ledger, f"undo-{tag}", 0.01, 0.03)  # type: ignore[no-any-return]


@podium.step(name="crash.booking", compensate=undo)
async def booking(ledger: str, tag: str, low: float, high: float) -> dict[str, Any]:
    return await work.fn(ledger, tag, low, high)  # type: ignore[no-any-return]


@podium.flow(name="crash.race")
async def race(ctx: podium.Context, params: dict[str, Any]) -> dict[str, Any]:
    """A race of hedged steps, a 3-of-5 quorum, a cancel scope whose guard waits for a signal, a step."""
    ledger = params["ledger"]
    winner = await ctx.first(*(work(ledger, f"h{i}", 0.05, 0.4) for i in range(5)))
    quorum = await ctx.wait([work(ledger, f"q{i}", 0.05, 0.4) for i in range(5)], n=3)
    async with ctx.scope() as region:

        async def guard() -> None:
            await ctx.wait_for_signal("stop")
            region.cancel()

        async def inside() -> None:
            await booking(ledger, "b0", 0.02, 0.05)
            await booking(ledger, "b1", 0.02, 0.05)
            await work(ledger, "never", 30, 31)  # cancelled by the guard

        await ctx.gather(guard(), inside())
    after = await work(ledger, "after", 0.02, 0.05)
    return {
        "winner": winner["tag"],
        "quorum": [q["tag"] for q in quorum],
        "cancelled": region.cancelled,
        "after": after["tag"],
    }


# -- an agent: every tool call writes the ledger ----------------------------------------------------------
AGENT_LEDGER = ""
"""Set by ``main``: the ledger the agent's tool appends to (a model is not asked to pass file paths)."""
AGENT_PLAN = [[f"a{t}x", f"a{t}y"] if t % 3 == 2 else [f"a{t}"] for t in range(10)]
"""The tool calls of each model turn (every third turn asks for two at once); then the final answer."""


@podium.tool
async def record(tag: str) -> dict[str, Any]:
    """Record a tag: ``start`` and ``done`` ledger lines, like ``crash.work``."""
    return await work.fn(AGENT_LEDGER, tag, 0.02, 0.06)  # type: ignore[no-any-return]


def agent_model(request: ModelRequest) -> Any:
    """Turn *n* asks for ``AGENT_PLAN[n]``; the last turn reports what the tools answered, in order."""
    turn = sum(1 for m in request.messages if m.role == "assistant")
    if turn < len(AGENT_PLAN):
        return [call("record", tag=tag) for tag in AGENT_PLAN[turn]]
    told = [json.loads(unfence(m.content)) for m in request.messages if m.role == "tool"]
    return json.dumps({"tags": [r["tag"] for r in told], "pids": [r["pid"] for r in told]})


class Report(BaseModel):
    tags: list[str]
    pids: list[int]


register("crash.scripted", ScriptedModel(agent_model))
recorder = podium.Agent(
    "crash_recorder", "Record the tags.", model="crash.scripted", tools=[record], output=Report, max_turns=20
)


@podium.flow(name="crash.agent")
async def agent_flow(ctx: podium.Context, params: dict[str, Any]) -> dict[str, Any]:
    result = await recorder.run(ctx, "Record the tags, then report what the tool said.")
    return {"report": result.output.model_dump(), "turns": result.turns, "tool_calls": result.tool_calls}


def settings(db: str, lease: float, concurrency: int = 100) -> podium.Settings:
    return podium.Settings(
        database_url=f"sqlite:///{db}", lease_seconds=lease, poll_seconds=0.05, concurrency=concurrency
    )


async def run_one(args: argparse.Namespace, flow: podium.Flow[Any, Any], params: dict[str, Any]) -> None:
    async with podium.Client(settings(args.db, args.lease)) as client:
        handle = await client.start(flow, params, key=args.key)
        output = await handle.result(timeout=60)
    print(json.dumps({"run_id": handle.id, "pid": os.getpid(), "output": output}), flush=True)


async def create(args: argparse.Namespace) -> None:
    async with podium.Client(settings(args.db, args.lease), worker=False) as client:
        ids = []
        for i in range(args.runs):
            params = {"ledger": args.ledger, "steps": args.steps}
            ids.append((await client.start(chain, params, key=f"multi-{i}")).id)
    print(json.dumps({"run_ids": ids}), flush=True)


async def serve(args: argparse.Namespace) -> None:
    """Work until ``expect`` runs exist and all of them have ended; then report them."""
    async with podium.Client(settings(args.db, args.lease, args.concurrency)) as client:
        while True:
            runs = await client.list(limit=1000)
            if len(runs) >= args.expect and all(r.status.terminal for r in runs):
                break
            await asyncio.sleep(0.05)
    report = [{"id": r.id, "status": r.status.value, "output": r.output, "error": r.error} for r in runs]
    print(json.dumps({"pid": os.getpid(), "runs": report}), flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="crash_app")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("chain")
    p.add_argument("db")
    p.add_argument("ledger")
    p.add_argument("key")
    p.add_argument("--steps", type=int, default=12)
    p = sub.add_parser("fanout")
    p.add_argument("db")
    p.add_argument("ledger")
    p.add_argument("key")
    p.add_argument("--items", type=int, default=20)
    p = sub.add_parser("race")
    p.add_argument("db")
    p.add_argument("ledger")
    p.add_argument("key")
    p = sub.add_parser("agent")
    p.add_argument("db")
    p.add_argument("ledger")
    p.add_argument("key")
    p = sub.add_parser("create")
    p.add_argument("db")
    p.add_argument("ledger")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--steps", type=int, default=5)
    p = sub.add_parser("work")
    p.add_argument("db")
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=4)
    for p in sub.choices.values():
        p.add_argument("--lease", type=float, default=0.3)
    args = parser.parse_args(argv)
    if args.command == "chain":
        asyncio.run(run_one(args, chain, {"ledger": args.ledger, "steps": args.steps}))
    elif args.command == "fanout":
        asyncio.run(run_one(args, fanout, {"ledger": args.ledger, "items": args.items}))
    elif args.command == "race":
        asyncio.run(run_one(args, race, {"ledger": args.ledger}))
    elif args.command == "agent":
        global AGENT_LEDGER
        AGENT_LEDGER = args.ledger
        asyncio.run(run_one(args, agent_flow, {"ledger": args.ledger}))
    elif args.command == "create":
        asyncio.run(create(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main(sys.argv[1:])
