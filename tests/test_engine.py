"""Engine semantics through the public API, on the memory store and on SQLite.

Flows are defined inside the tests (closures keep per-test state such as call counters); their names are
unique by prefix ``engine.``. Waits are bounded by generous timeouts only so that a broken engine fails
instead of hanging; no assertion depends on how long something took.
"""

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, eventually, settings_for, wait_approval, wait_status
from pydantic import BaseModel

import podium
from podium import RunStatus

FAST = podium.RetryPolicy(max_attempts=3, initial=0.01, backoff=1.0, jitter=0)


class Order(BaseModel):
    id: str
    items: list[str]
    total: float


class Receipt(BaseModel):
    order_id: str
    charged: float
    lines: list[str]


async def run_flow(client: podium.Client, flow: Any, input: Any = None, **kw: Any) -> Any:
    handle = await client.start(flow, input, **kw)
    return await handle.result(timeout=WAIT_SECONDS)


async def failure_of(client: podium.Client, flow: Any, input: Any = None) -> podium.RunFailedError:
    handle = await client.start(flow, input)
    with pytest.raises(podium.RunFailedError) as info:
        await handle.result(timeout=WAIT_SECONDS)
    assert info.value.run_id == handle.id
    assert (await client.get(handle.id)).status is RunStatus.FAILED
    return info.value


def journal_steps(journal: list[podium.JournalEntry]) -> list[tuple[str, str | None]]:
    return [(e.position, e.name) for e in journal if e.kind == "step"]


# -- steps ------------------------------------------------------------------------------------------


async def test_steps_are_journaled_and_their_results_returned(client: podium.Client) -> None:
    calls: list[int] = []

    @podium.step(name="engine.double")
    async def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    def add(x: int, *, plus: int) -> int:
        return x + plus

    @podium.flow(name="engine.steps")
    async def flow(ctx: podium.Context, n: int) -> list[int]:
        a = await double(n)
        b = await double(a)
        c = await ctx.step("engine.add", add, b, plus=1)
        return [a, b, c]

    handle = await client.start(flow, 3)
    assert await handle.result(timeout=WAIT_SECONDS) == [6, 12, 13]
    assert calls == [3, 6]
    journal = await client.journal(handle.id)
    assert journal[0].kind == "start" and journal[0].data == {"input": 3, "version": flow.version}
    assert journal[-1].kind == "end" and journal[-1].data["status"] == "completed"
    steps = [(e.position, e.name, e.data["result"]) for e in journal if e.kind == "step"]
    assert steps == [("0", "engine.double", 6), ("1", "engine.double", 12), ("2", "engine.add", 13)]
    run = await client.get(handle.id)
    assert (run.status, run.output, run.input) == (RunStatus.COMPLETED, [6, 12, 13], 3)


async def test_ad_hoc_step_with_a_decorated_function_is_journaled_under_the_given_name(
    client: podium.Client,
) -> None:
    @podium.step(name="engine.inner")
    async def inner() -> str:
        return "x"

    @podium.flow(name="engine.adhoc_named")
    async def flow(ctx: podium.Context) -> str:
        return await ctx.step("engine.renamed", inner)  # type: ignore[no-any-return]

    handle = await client.start(flow)
    assert await handle.result(timeout=WAIT_SECONDS) == "x"
    assert journal_steps(await client.journal(handle.id)) == [("0", "engine.renamed")]


async def test_pydantic_models_round_trip_on_every_store(store_url: str) -> None:
    """``handle.result()`` and ``ctx.child`` give the annotated type whatever the store."""
    await _pydantic_round_trip(store_url)


async def _pydantic_round_trip(url: str) -> None:
    seen: list[str] = []

    @podium.step(name="engine.charge_order")
    async def charge(order: Order) -> Receipt:
        return Receipt(order_id=order.id, charged=order.total, lines=order.items)

    @podium.flow(name="engine.pydantic_child")
    async def child(ctx: podium.Context, order: Order) -> Receipt:
        return await charge(order)

    @podium.flow(name="engine.pydantic")
    async def flow(ctx: podium.Context, order: Order) -> Receipt:
        seen.append(type(order).__name__)
        receipt = await charge(order)
        seen.append(type(receipt).__name__)
        await ctx.approval("ship")  # the run leaves memory; the rest runs after a replay
        from_child = await ctx.child(child, order)
        seen.append(type(from_child).__name__)
        return Receipt(order_id=receipt.order_id, charged=from_child.charged, lines=receipt.lines)

    order = Order(id="o-1", items=["book", "lamp"], total=67.5)
    async with podium.Client(settings_for(url)) as client:
        handle = await client.start(flow, order)
        await wait_status(client, handle.id, RunStatus.WAITING)
        await client.approve(handle.id)
        result = await handle.result(timeout=WAIT_SECONDS)
        assert isinstance(result, Receipt)
        assert result == Receipt(order_id="o-1", charged=67.5, lines=["book", "lamp"])
        # the input arrives as the model, the replayed step result and the child's output are models too
        # (the flow is replayed after the approval and again after the child: how often depends on timing)
        assert seen[:2] == ["Order", "Receipt"] and seen[-1] == "Receipt"
        assert set(seen) == {"Order", "Receipt"} and len(seen) in (5, 7)
        run = await client.get(handle.id)
        assert run.input == {"id": "o-1", "items": ["book", "lamp"], "total": 67.5}
        assert run.output == {"order_id": "o-1", "charged": 67.5, "lines": ["book", "lamp"]}


async def test_sync_steps_run_in_a_thread(client: podium.Client) -> None:
    main = threading.get_ident()

    @podium.step(name="engine.sync_where")
    def where() -> dict[str, Any]:
        info = podium.current_step()
        return {"thread": threading.get_ident(), "step": None if info is None else info.name}

    @podium.flow(name="engine.sync")
    async def flow(ctx: podium.Context) -> list[dict[str, Any]]:
        a = await where()
        b = await ctx.step("engine.sync_adhoc", lambda: {"thread": threading.get_ident(), "step": "adhoc"})
        return [a, b]

    a, b = await run_flow(client, flow)
    assert a["thread"] != main and b["thread"] != main
    assert a["step"] == "engine.sync_where"  # the step's context reaches the thread


# -- retries and timeouts ---------------------------------------------------------------------------


async def test_retry_until_success(client: podium.Client) -> None:
    attempts: list[int] = []

    @podium.step(name="engine.flaky", retries=FAST)
    async def flaky() -> str:
        info = podium.current_step()
        assert info is not None
        attempts.append(info.attempt)
        if len(attempts) < 3:
            raise ConnectionError("transient")
        return "ok"

    @podium.flow(name="engine.retry_ok")
    async def flow(ctx: podium.Context) -> str:
        return await flaky()

    handle = await client.start(flow)
    assert await handle.result(timeout=WAIT_SECONDS) == "ok"
    assert attempts == [1, 2, 3]
    journal = await client.journal(handle.id)
    failed = [e for e in journal if e.kind == "attempt"]
    assert [e.position for e in failed] == ["0@1", "0@2"]
    assert all(e.data["error"]["type"] == "ConnectionError" for e in failed)
    (step,) = [e for e in journal if e.kind == "step"]
    assert step.data["attempts"] == 3 and step.data["result"] == "ok"


async def test_retries_exhausted_fail_the_step(client: podium.Client) -> None:
    count = 0

    @podium.step(name="engine.always_fails", retries=FAST)
    async def always() -> None:
        nonlocal count
        count += 1
        raise ConnectionError(f"down {count}")

    @podium.flow(name="engine.retry_exhausted")
    async def flow(ctx: podium.Context) -> dict[str, Any]:
        try:
            await always()
        except podium.StepError as e:
            return {"type": e.type, "attempts": e.attempts, "name": e.name, "message": e.message}
        return {}

    assert await run_flow(client, flow) == {
        "type": "ConnectionError",
        "attempts": 3,
        "name": "engine.always_fails",
        "message": "down 3",
    }
    assert count == 3


async def test_uncaught_step_failure_fails_the_run(client: podium.Client) -> None:
    @podium.step(name="engine.boom", retries=FAST)
    async def boom() -> None:
        raise KeyError("missing")

    @podium.flow(name="engine.step_fails_run")
    async def flow(ctx: podium.Context) -> None:
        await boom()

    err = await failure_of(client, flow)
    assert err.error["type"] == "KeyError"
    assert err.error["attempts"] == 3 and err.error["step"] == "0" and err.error["name"] == "engine.boom"


@pytest.mark.parametrize("how", ["non_retryable_type", "application_error"])
async def test_non_retryable_failures_fail_at_once(client: podium.Client, how: str) -> None:
    count = 0
    policy = podium.RetryPolicy(max_attempts=5, initial=0.01, jitter=0, non_retryable=(ValueError,))

    @podium.step(name=f"engine.no_retry_{how}", retries=policy)
    async def fails() -> None:
        nonlocal count
        count += 1
        if how == "non_retryable_type":
            raise ValueError("bad value")
        raise podium.ApplicationError("card declined", type="CardDeclined", retryable=False)

    @podium.flow(name=f"engine.no_retry_{how}")
    async def flow(ctx: podium.Context) -> dict[str, Any]:
        try:
            await fails()
        except podium.StepError as e:
            return {"type": e.type, "attempts": e.attempts, "retryable": e.retryable}
        return {}

    expected = "ValueError" if how == "non_retryable_type" else "CardDeclined"
    assert await run_flow(client, flow) == {"type": expected, "attempts": 1, "retryable": False}
    assert count == 1


async def test_step_timeout(client: podium.Client) -> None:
    started: list[int] = []

    @podium.step(name="engine.slow", timeout=0.05)
    async def slow() -> str:
        started.append(1)
        await asyncio.sleep(WAIT_SECONDS)
        return "late"

    @podium.flow(name="engine.step_timeout")
    async def flow(ctx: podium.Context) -> str:
        return await slow()

    err = await failure_of(client, flow)
    assert err.error["type"] == "StepTimeoutError"
    assert "timed out" in err.error["message"]
    assert err.error["name"] == "engine.slow"
    assert started == [1]


@pytest.mark.parametrize("where", ["running", "waiting"])
async def test_run_timeout(client: podium.Client, where: str) -> None:
    @podium.flow(name=f"engine.run_timeout_{where}", timeout=0.3)
    async def flow(ctx: podium.Context) -> str:
        if where == "running":
            await ctx.step("engine.forever", asyncio.sleep, WAIT_SECONDS)
        else:
            await ctx.wait_for_signal("never")
        return "finished"

    err = await failure_of(client, flow)
    assert err.error["type"] == "RunTimeoutError"
    assert err.type == "RunTimeoutError"


async def test_run_timeout_given_at_start(client: podium.Client) -> None:
    @podium.flow(name="engine.run_timeout_at_start")
    async def flow(ctx: podium.Context) -> None:
        await ctx.wait_for_signal("never")

    handle = await client.start(flow, timeout=0.2)
    with pytest.raises(podium.RunFailedError) as info:
        await handle.result(timeout=WAIT_SECONDS)
    assert info.value.error["type"] == "RunTimeoutError"


# -- deterministic values and replay ----------------------------------------------------------------


async def test_now_uuid_random_are_stable_across_replay(client: podium.Client) -> None:
    seen: list[tuple[datetime, uuid.UUID, uuid.UUID, float]] = []

    @podium.flow(name="engine.values")
    async def flow(ctx: podium.Context) -> list[str]:
        values = (ctx.now(), ctx.uuid(), ctx.uuid(), ctx.random())
        seen.append(values)
        await ctx.approval("continue")
        return [str(v) for v in values]

    handle = await client.start(flow)
    await wait_status(client, handle.id, RunStatus.WAITING)  # suspended: resuming means replaying
    await client.approve(handle.id)
    result = await handle.result(timeout=WAIT_SECONDS)
    assert len(seen) == 2, "the flow should have been replayed once"
    assert seen[0] == seen[1]
    now, u1, u2, r = seen[0]
    assert result == [str(now), str(u1), str(u2), str(r)]
    assert now.tzinfo is not None and now.utcoffset() == UTC.utcoffset(None)
    assert u1.version == 4 and u1 != u2
    assert 0.0 <= r < 1.0


async def test_durable_timer_survives_leaving_memory(store_url: str) -> None:
    runs = 0

    @podium.flow(name="engine.durable_sleep")
    async def flow(ctx: podium.Context) -> str:
        nonlocal runs
        runs += 1
        await ctx.sleep(0.5)
        return "woke"

    settings = settings_for(store_url).with_(hold_seconds=0)  # every timer releases the run
    client = podium.Client(settings)
    await client.open()
    try:
        handle = await client.start(flow)
        waiting = await wait_status(client, handle.id, RunStatus.WAITING)  # out of memory, in the store
        assert waiting.wake_at is not None
        assert await handle.result(timeout=WAIT_SECONDS) == "woke"
        journal = await client.journal(handle.id)
    finally:
        await close_within(client)
    (timer,) = [e for e in journal if e.kind == "timer"]
    assert timer.data["seconds"] == 0.5 and timer.data["fire_at"] == waiting.wake_at
    assert runs == 2  # executed, suspended, replayed when the timer fell due


# -- composition ------------------------------------------------------------------------------------


async def test_gather_returns_results_in_argument_order(client: podium.Client) -> None:
    @podium.step(name="engine.delayed")
    async def delayed(value: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return value

    @podium.flow(name="engine.gather_order")
    async def flow(ctx: podium.Context) -> list[Any]:
        async def helper() -> str:
            return await delayed("d", 0)

        return await ctx.gather(delayed("a", 0.06), delayed("b", 0.03), delayed("c", 0), helper())

    handle = await client.start(flow)
    assert await handle.result(timeout=WAIT_SECONDS) == ["a", "b", "c", "d"]
    positions = sorted(p for p, _ in journal_steps(await client.journal(handle.id)))
    assert positions == ["0.0.0", "0.1.0", "0.2.0", "0.3.0"]


async def test_gather_failing_branch_cancels_the_others(client: podium.Client) -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    @podium.step(name="engine.waits_long")
    async def waits_long() -> str:
        started.set()
        try:
            await asyncio.sleep(WAIT_SECONDS)
        except asyncio.CancelledError:
            cancelled.append("waits_long")
            raise
        return "never"

    @podium.step(name="engine.fails_fast")
    async def fails_fast() -> str:
        await started.wait()
        raise podium.ApplicationError("broken", type="Broken", retryable=False)

    @podium.flow(name="engine.gather_fail")
    async def flow(ctx: podium.Context) -> dict[str, Any]:
        try:
            await ctx.gather(waits_long(), fails_fast())
        except podium.StepError as e:
            return {"type": e.type, "name": e.name}
        return {}

    handle = await client.start(flow)
    assert await handle.result(timeout=WAIT_SECONDS) == {"type": "Broken", "name": "engine.fails_fast"}
    assert cancelled == ["waits_long"]
    assert journal_steps(await client.journal(handle.id)) == [("0.1.0", "engine.fails_fast")]


async def test_map_never_exceeds_its_concurrency(client: podium.Client) -> None:
    running = 0
    peak = 0

    @podium.step(name="engine.square")
    async def square(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.02)
        finally:
            running -= 1
        return x * x

    @podium.flow(name="engine.map")
    async def flow(ctx: podium.Context, n: int) -> list[int]:
        return await ctx.map(square, range(n), concurrency=3)

    assert await run_flow(client, flow, 10) == [x * x for x in range(10)]
    assert peak == 3


async def test_child_output_and_child_failure(client: podium.Client) -> None:
    @podium.flow(name="engine.child_ok")
    async def child_ok(ctx: podium.Context, n: int) -> int:
        return await ctx.step("engine.square_it", lambda: n * n)  # type: ignore[no-any-return]

    @podium.flow(name="engine.child_bad")
    async def child_bad(ctx: podium.Context, n: int) -> int:
        raise podium.ApplicationError(f"cannot do {n}", type="ChildBroke", retryable=False)

    @podium.flow(name="engine.parent")
    async def parent(ctx: podium.Context, n: int) -> dict[str, Any]:
        out = await ctx.child(child_ok, n)
        try:
            await ctx.child("engine.child_bad", n)
        except podium.RunFailedError as e:
            return {"out": out, "type": e.error["type"], "message": e.error["message"], "child": e.run_id}
        return {"out": out}

    handle = await client.start(parent, 7)
    result = await handle.result(timeout=WAIT_SECONDS)
    assert result["out"] == 49
    assert (result["type"], result["message"]) == ("ChildBroke", "cannot do 7")
    bad = await client.get(result["child"])
    assert (bad.status, bad.parent_id, bad.flow) == (RunStatus.FAILED, handle.id, "engine.child_bad")
    (ok,) = await client.list(flow="engine.child_ok")
    assert (ok.status, ok.parent_id, ok.output) == (RunStatus.COMPLETED, handle.id, 49)


async def test_uncaught_child_failure_fails_the_parent(client: podium.Client) -> None:
    @podium.flow(name="engine.child_fails")
    async def child(ctx: podium.Context) -> None:
        raise podium.ApplicationError("no", type="Nope", retryable=False)

    @podium.flow(name="engine.parent_of_failing")
    async def parent(ctx: podium.Context) -> None:
        await ctx.child(child)

    err = await failure_of(client, parent)
    assert err.error["type"] == "Nope"


async def test_cancelling_a_parent_does_not_strand_its_running_child(client: podium.Client) -> None:
    """A child finishing after its parent was cancelled must still reach a terminal state."""

    @podium.flow(name="engine.orphan_child")
    async def child(ctx: podium.Context) -> str:
        return await ctx.wait_for_signal("go")  # type: ignore[no-any-return]

    @podium.flow(name="engine.cancelled_parent")
    async def parent(ctx: podium.Context) -> str:
        return await ctx.child(child)

    handle = await client.start(parent)
    kid = await eventually(
        lambda: client.list(flow="engine.orphan_child"),
        lambda runs: len(runs) == 1 and runs[0].status is RunStatus.WAITING,
        what="the child run to wait for its signal",
    )
    await wait_status(client, handle.id, RunStatus.WAITING)
    assert (await client.cancel(handle.id)).status is RunStatus.CANCELLED
    try:
        await client.signal(kid[0].id, "go", "done")
    except podium.InvalidStateError:
        pass  # cancelling the parent may cancel the child too; either way it must end
    await eventually(
        lambda: client.get(kid[0].id),
        lambda r: r.status.terminal,
        what="the child to finish after its parent was cancelled",
        timeout=5,
    )
    with pytest.raises(podium.RunCancelledError):
        await handle.result(timeout=WAIT_SECONDS)


async def test_raw_asyncio_gather_of_steps_is_a_clear_usage_error(client: podium.Client) -> None:
    @podium.step(name="engine.raw_step")
    async def raw_step(x: int) -> int:
        return x

    @podium.flow(name="engine.raw_gather")
    async def flow(ctx: podium.Context) -> list[int]:
        return list(await asyncio.gather(raw_step(1), raw_step(2)))

    err = await failure_of(client, flow)
    assert err.error["type"] == "UsageError"
    assert "ctx.gather" in err.error["message"]
    assert "engine.raw_step" in err.error["message"]


# -- signals ----------------------------------------------------------------------------------------


async def test_wait_for_signal_receives_its_payload(client: podium.Client) -> None:
    @podium.flow(name="engine.signal_payload")
    async def flow(ctx: podium.Context) -> Any:
        return await ctx.wait_for_signal("data")

    handle = await client.start(flow)
    await wait_status(client, handle.id, RunStatus.WAITING)
    assert await handle.signal("data", {"x": [1, 2], "y": None}) is True
    assert await handle.result(timeout=WAIT_SECONDS) == {"x": [1, 2], "y": None}


async def test_signal_sent_before_the_wait_is_consumed(client: podium.Client) -> None:
    @podium.flow(name="engine.signal_early")
    async def flow(ctx: podium.Context) -> list[Any]:
        first = await ctx.wait_for_signal("first")
        second = await ctx.wait_for_signal("second")
        return [first, second]

    handle = await client.start(flow)
    assert await client.signal(handle.id, "second", "B") is True  # before anyone waits for it
    await wait_status(client, handle.id, RunStatus.WAITING)
    assert await client.signal(handle.id, "first", "A") is True
    assert await handle.result(timeout=WAIT_SECONDS) == ["A", "B"]


async def test_the_same_signal_key_is_applied_once(client: podium.Client) -> None:
    @podium.flow(name="engine.signal_dedup")
    async def flow(ctx: podium.Context) -> list[Any]:
        got: list[Any] = []
        while (value := await ctx.wait_for_signal("item")) != "stop":
            got.append(value)
        return got

    handle = await client.start(flow)
    assert await client.signal(handle.id, "item", 1, key="k1") is True
    assert await client.signal(handle.id, "item", 1, key="k1") is False
    assert await client.signal(handle.id, "item", 2) is True
    assert await client.signal(handle.id, "item", 99, key="k1") is False
    assert await client.signal(handle.id, "item", "stop") is True
    assert await handle.result(timeout=WAIT_SECONDS) == [1, 2]
    journal = await client.journal(handle.id)
    assert [e.data["payload"] for e in journal if e.kind == "signal"] == [1, 2, "stop"]


async def test_signal_to_a_finished_run_is_refused(client: podium.Client) -> None:
    @podium.flow(name="engine.signal_done")
    async def flow(ctx: podium.Context) -> int:
        return 1

    handle = await client.start(flow)
    assert await handle.result(timeout=WAIT_SECONDS) == 1
    before = await client.journal(handle.id)
    with pytest.raises(podium.InvalidStateError):
        await client.signal(handle.id, "late", 1)
    assert await client.journal(handle.id) == before


# -- approvals --------------------------------------------------------------------------------------


def _approval_flow(name: str, seen: list[podium.Approval] | None = None) -> podium.Flow[Any, Any]:
    @podium.flow(name=name)
    async def flow(ctx: podium.Context, amount: int) -> dict[str, Any]:
        decision = await ctx.approval("refund", payload={"amount": amount})
        if seen is not None:
            seen.append(decision)
        return {
            "approved": bool(decision),
            "payload": decision.payload,
            "edited": decision.edited,
            "by": decision.by,
            "comment": decision.comment,
        }

    return flow


async def test_approve_with_an_edited_payload(client: podium.Client) -> None:
    flow = _approval_flow("engine.approve_edit")
    handle = await client.start(flow, 500)
    (pending,) = await wait_approval(client, handle.id)
    assert (pending.name, pending.payload, pending.flow) == ("refund", {"amount": 500}, "engine.approve_edit")
    decided = await client.approve(handle.id, payload={"amount": 50}, by="ann", comment="too much")
    assert decided.position == pending.position
    assert await handle.result(timeout=WAIT_SECONDS) == {
        "approved": True,
        "payload": {"amount": 50},
        "edited": True,
        "by": "ann",
        "comment": "too much",
    }
    assert await client.pending_approvals(handle.id) == []


async def test_approve_without_edit_keeps_the_proposal(client: podium.Client) -> None:
    handle = await client.start(_approval_flow("engine.approve_plain"), 20)
    await wait_approval(client, handle.id)
    await client.approve(handle.id, "refund")
    result = await handle.result(timeout=WAIT_SECONDS)
    assert (result["approved"], result["payload"], result["edited"]) == (True, {"amount": 20}, False)


async def test_reject_is_falsy(client: podium.Client) -> None:
    seen: list[podium.Approval] = []
    handle = await client.start(_approval_flow("engine.reject", seen), 900)
    await wait_approval(client, handle.id)
    await client.reject(handle.id, by="bob", comment="no")
    result = await handle.result(timeout=WAIT_SECONDS)
    assert result["approved"] is False and result["by"] == "bob"
    assert seen and not seen[-1]


async def test_a_decision_is_applied_exactly_once(client: podium.Client) -> None:
    seen: list[podium.Approval] = []
    handle = await client.start(_approval_flow("engine.approve_twice", seen), 10)
    await wait_approval(client, handle.id)
    outcomes = await asyncio.gather(
        client.approve(handle.id, payload={"who": 1}),
        client.approve(handle.id, payload={"who": 2}),
        return_exceptions=True,
    )
    winners = [i for i, o in enumerate(outcomes) if isinstance(o, podium.PendingApproval)]
    losers = [o for o in outcomes if isinstance(o, podium.InvalidStateError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    winner = {"who": winners[0] + 1}
    result = await handle.result(timeout=WAIT_SECONDS)
    assert result["payload"] == winner
    with pytest.raises(podium.InvalidStateError):
        await client.approve(handle.id, payload={"who": 3})
    assert seen and all(a == seen[0] for a in seen) and seen[0].payload == winner
    decisions = [e for e in await client.journal(handle.id) if e.kind == "decision"]
    assert len(decisions) == 1 and decisions[0].data["payload"] == winner


async def test_approving_a_run_that_is_not_waiting_for_approval_is_refused(client: podium.Client) -> None:
    @podium.flow(name="engine.no_approval")
    async def flow(ctx: podium.Context) -> Any:
        return await ctx.wait_for_signal("go")

    handle = await client.start(flow)
    await wait_status(client, handle.id, RunStatus.WAITING)
    before = await client.journal(handle.id)
    with pytest.raises(podium.InvalidStateError):
        await client.approve(handle.id)
    with pytest.raises(podium.InvalidStateError):
        await client.reject(handle.id)
    assert await client.journal(handle.id) == before
    assert (await client.get(handle.id)).status is RunStatus.WAITING

    await client.signal(handle.id, "go", "ok")
    assert await handle.result(timeout=WAIT_SECONDS) == "ok"
    with pytest.raises(podium.InvalidStateError):
        await client.approve(handle.id)


# -- cancellation -----------------------------------------------------------------------------------


async def test_cancel_a_waiting_run(client: podium.Client) -> None:
    @podium.flow(name="engine.cancel_waiting")
    async def flow(ctx: podium.Context) -> Any:
        return await ctx.wait_for_signal("never")

    handle = await client.start(flow)
    await wait_status(client, handle.id, RunStatus.WAITING)
    run = await client.cancel(handle.id)
    assert run.status is RunStatus.CANCELLED
    with pytest.raises(podium.RunCancelledError) as info:
        await handle.result(timeout=WAIT_SECONDS)
    assert info.value.run_id == handle.id
    assert (await client.cancel(handle.id)).status is RunStatus.CANCELLED  # idempotent
    with pytest.raises(podium.InvalidStateError):
        await client.signal(handle.id, "never", 1)


async def test_cancel_a_running_run(client: podium.Client) -> None:
    started = asyncio.Event()
    interrupted: list[str] = []
    after: list[str] = []

    @podium.step(name="engine.sleeps")
    async def sleeps() -> None:
        started.set()
        try:
            await asyncio.sleep(WAIT_SECONDS)
        except asyncio.CancelledError:
            interrupted.append("sleeps")
            raise

    @podium.flow(name="engine.cancel_running")
    async def flow(ctx: podium.Context) -> str:
        await sleeps()
        after.append("after")
        return "done"

    handle = await client.start(flow)
    await asyncio.wait_for(started.wait(), WAIT_SECONDS)
    assert (await client.get(handle.id)).status is RunStatus.RUNNING
    await client.cancel(handle.id)
    await client.cancel(handle.id)  # twice: still one cancellation
    with pytest.raises(podium.RunCancelledError):
        await handle.result(timeout=WAIT_SECONDS)
    assert (await client.get(handle.id)).status is RunStatus.CANCELLED
    assert (await client.cancel(handle.id)).status is RunStatus.CANCELLED
    assert interrupted == ["sleeps"] and after == []
    journal = await client.journal(handle.id)
    assert [e.kind for e in journal].count("cancel") == 1
    assert journal[-1].kind == "end" and journal[-1].data["status"] == "cancelled"


async def test_cancel_a_completed_run_is_refused(client: podium.Client) -> None:
    @podium.flow(name="engine.cancel_done")
    async def flow(ctx: podium.Context) -> int:
        return 5

    handle = await client.start(flow)
    assert await handle.result(timeout=WAIT_SECONDS) == 5
    with pytest.raises(podium.InvalidStateError):
        await client.cancel(handle.id)
    assert (await client.get(handle.id)).status is RunStatus.COMPLETED


# -- starting ---------------------------------------------------------------------------------------


async def test_start_is_idempotent_on_key(client: podium.Client) -> None:
    count = 0

    @podium.step(name="engine.once")
    async def once() -> int:
        nonlocal count
        count += 1
        return count

    @podium.flow(name="engine.idempotent")
    async def flow(ctx: podium.Context, n: int) -> int:
        return await once() + n

    first = await client.start(flow, 1, key="order-1")
    second = await client.start(flow, 1, key="order-1")
    assert first.id == second.id
    assert await first.result(timeout=WAIT_SECONDS) == 2
    third = await client.start(flow, 1, key="order-1")  # after it finished: still the same run
    assert third.id == first.id and await third.result(timeout=WAIT_SECONDS) == 2
    assert count == 1
    assert len(await client.list(flow="engine.idempotent")) == 1


async def test_bad_input_is_a_clear_error_without_state_change(client: podium.Client) -> None:
    @podium.flow(name="engine.typed_input")
    async def typed(ctx: podium.Context, order: Order) -> str:
        return order.id

    @podium.flow(name="engine.no_input")
    async def no_input(ctx: podium.Context) -> str:
        return "x"

    with pytest.raises(podium.UnknownFlowError, match=r"engine\.does_not_exist"):
        await client.start("engine.does_not_exist", {})
    with pytest.raises(podium.InvalidInputError, match="total"):
        await client.start(typed, {"id": "o", "items": []})
    with pytest.raises(podium.InvalidInputError):
        await client.start("engine.typed_input", "not an order")
    with pytest.raises(podium.InvalidInputError):
        await client.start(no_input, {"unexpected": True})
    assert await client.list() == []

    missing = "0" * 24
    for call in (
        client.get(missing),
        client.cancel(missing),
        client.signal(missing, "x", 1),
        client.approve(missing),
        client.reject(missing),
        client.journal(missing),
        client.pending_approvals(missing),
        client.result(missing, timeout=1),
    ):
        with pytest.raises(podium.RunNotFoundError):
            await call
    assert await client.list() == []


async def test_idempotency_key_is_stable_across_attempts(client: podium.Client) -> None:
    seen: list[tuple[str, str, int]] = []

    @podium.step(name="engine.pay", retries=FAST)
    async def pay(amount: int) -> str:
        info = podium.current_step()
        assert info is not None
        seen.append((info.idempotency_key, info.step_id, info.attempt))
        if len(seen) == 1:
            raise ConnectionError("timeout talking to the bank")
        return info.idempotency_key

    @podium.flow(name="engine.pay_flow")
    async def flow(ctx: podium.Context) -> list[Any]:
        outside = podium.current_step()
        await ctx.step("engine.first", lambda: None)
        key = await pay(10)
        return [outside, key]

    handle = await client.start(flow)
    outside, key = await handle.result(timeout=WAIT_SECONDS)
    assert outside is None
    assert [s[2] for s in seen] == [1, 2]
    assert seen[0][0] == seen[1][0] == key == f"{handle.id}/1"
    assert seen[0][1] == seen[1][1] == "1"


# -- durability across processes (SQLite) -----------------------------------------------------------


async def test_completed_steps_never_run_again_after_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/podium.db"
    counts = {"a": 0, "b": 0, "c": 0}
    bodies = 0

    def counted(name: str) -> Any:
        @podium.step(name=f"engine.restart_{name}")
        async def body(x: int) -> int:
            counts[name] += 1
            return x + 1

        return body

    a, b, c = counted("a"), counted("b"), counted("c")

    @podium.flow(name="engine.restart")
    async def flow(ctx: podium.Context, x: int) -> int:
        nonlocal bodies
        bodies += 1
        x = await c(await b(await a(x)))
        decision = await ctx.approval("go", payload=x)
        return x * 10 if decision else -1

    async with podium.Client(settings_for(url)) as first:
        handle = await first.start(flow, 0)
        await wait_status(first, handle.id, RunStatus.WAITING)
    assert counts == {"a": 1, "b": 1, "c": 1}

    async with podium.Client(settings_for(url)) as second:
        (pending,) = await second.pending_approvals()
        assert (pending.run_id, pending.payload) == (handle.id, 3)
        await second.approve(handle.id)
        assert await second.handle(handle.id).result(timeout=WAIT_SECONDS) == 30
    assert counts == {"a": 1, "b": 1, "c": 1}
    assert bodies == 2  # the second client did replay the flow


async def test_a_step_interrupted_by_shutdown_is_retried_with_the_same_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/podium.db"
    done_before = 0
    keys: list[str] = []
    entered = asyncio.Event()

    @podium.step(name="engine.before_crash")
    async def before() -> str:
        nonlocal done_before
        done_before += 1
        return "ok"

    @podium.step(name="engine.interrupted")
    async def interrupted() -> str:
        info = podium.current_step()
        assert info is not None
        keys.append(info.idempotency_key)
        if len(keys) == 1:
            entered.set()
            await asyncio.Event().wait()  # blocks until the worker shuts down
        return "sent"

    @podium.flow(name="engine.crash")
    async def flow(ctx: podium.Context) -> list[str]:
        return [await before(), await interrupted()]

    async with podium.Client(settings_for(url)) as first:
        handle = await first.start(flow)
        await asyncio.wait_for(entered.wait(), WAIT_SECONDS)
    async with podium.Client(settings_for(url)) as second:
        assert await second.handle(handle.id).result(timeout=WAIT_SECONDS) == ["ok", "sent"]
    assert done_before == 1
    assert len(keys) == 2 and keys[0] == keys[1] == f"{handle.id}/1"


PATH = "a"
"""Read by ``engine.nondeterminism``; flipping it stands for a deploy that changed the flow's code."""


async def test_nondeterminism_is_reported_clearly(tmp_path: Path) -> None:
    global PATH
    url = f"sqlite:///{tmp_path}/podium.db"

    @podium.step(name="engine.nd_path_a")
    async def path_a() -> str:
        return "a"

    @podium.step(name="engine.nd_path_b")
    async def path_b() -> str:
        return "b"

    @podium.flow(name="engine.nondeterminism")
    async def flow(ctx: podium.Context) -> str:
        got = await path_a() if PATH == "a" else await path_b()
        await ctx.approval("go")
        return got

    PATH = "a"
    try:
        async with podium.Client(settings_for(url)) as first:
            handle = await first.start(flow)
            await wait_status(first, handle.id, RunStatus.WAITING)
        PATH = "b"
        async with podium.Client(settings_for(url)) as second:
            await second.approve(handle.id)
            with pytest.raises(podium.RunFailedError) as info:
                await second.handle(handle.id).result(timeout=WAIT_SECONDS)
    finally:
        PATH = "a"
    err = info.value
    assert err.error["type"] == "NondeterminismError"
    assert err.error["retryable"] is False
    message = err.error["message"]
    assert handle.id in message
    assert "position 0" in message
    assert "engine.nd_path_a" in message and "engine.nd_path_b" in message
    assert message.index("engine.nd_path_a") < message.index("engine.nd_path_b")  # journal, then code


async def test_nondeterminism_cannot_be_swallowed_by_flow_code(client: podium.Client) -> None:
    variant = {"path": "a"}

    @podium.flow(name="engine.nondeterminism_swallowed")
    async def flow(ctx: podium.Context) -> str:
        try:
            if variant["path"] == "a":
                await ctx.step("engine.nds_a", lambda: "a")
            else:
                await ctx.step("engine.nds_b", lambda: "b")
        except Exception:
            pass
        await ctx.approval("go")
        return "completed anyway"

    handle = await client.start(flow)
    await wait_status(client, handle.id, RunStatus.WAITING)
    variant["path"] = "b"
    await client.approve(handle.id)
    with pytest.raises(podium.RunFailedError) as info:
        await handle.result(timeout=WAIT_SECONDS)
    assert info.value.error["type"] == "NondeterminismError"
    assert "engine.nds_a" in info.value.error["message"]
