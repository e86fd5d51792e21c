"""Control flow beyond gather: races, quorums, task handles, groups, cancel scopes, compensation.

Every test keeps a **ledger** of what ran (``start:x``, ``done:x``, ``undo:x``, ``cancelled:x``) and checks
it against the expected trace; the order of completion is forced with ``asyncio.Event`` gates, not timing.
Runs are then replayed from their journal (``podium.testing.replay``) to check that replay takes the same
decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import WAIT_SECONDS, close_within, eventually, settings_for, wait_approval, wait_status

import podium
from podium.testing import replay

LEDGER: list[str] = []
GATES: dict[str, asyncio.Event] = {}


def gate(name: str) -> asyncio.Event:
    return GATES.setdefault(name, asyncio.Event())


@pytest.fixture(autouse=True)
def _fresh() -> None:
    LEDGER.clear()
    GATES.clear()


@podium.step
async def work(tag: str) -> str:
    """Waits for its gate (if the test made one), records its start and end."""
    LEDGER.append(f"start:{tag}")
    try:
        if tag in GATES:
            await GATES[tag].wait()
    except asyncio.CancelledError:
        LEDGER.append(f"cancelled:{tag}")
        raise
    LEDGER.append(f"done:{tag}")
    return tag


@podium.step
async def boom(tag: str) -> str:
    LEDGER.append(f"start:{tag}")
    if tag in GATES:
        await GATES[tag].wait()
    LEDGER.append(f"fail:{tag}")
    raise podium.ApplicationError(f"{tag} failed", retryable=False)


def undo_booking(tag: str, result: str) -> None:
    LEDGER.append(f"undo:{result}")


@podium.step(compensate=undo_booking)
async def book(tag: str) -> str:
    LEDGER.append(f"start:{tag}")
    if tag in GATES:
        await GATES[tag].wait()
    LEDGER.append(f"done:{tag}")
    return tag


async def journal_of(client: podium.Client, run_id: str) -> list[podium.JournalEntry]:
    return await client.journal(run_id)


async def started(tag: str) -> None:
    await eventually(lambda: _ledger(), lambda led: f"start:{tag}" in led, what=f"{tag} to start")


async def _ledger() -> list[str]:
    return list(LEDGER)


# -- ctx.first --------------------------------------------------------------------------------------
@podium.flow(name="control.hedge")
async def hedge(ctx: podium.Context) -> str:
    return await ctx.first(work("a"), work("b"), work("c"))  # type: ignore[no-any-return]


async def test_first_returns_the_first_to_finish_and_cancels_the_rest(client: podium.Client) -> None:
    for t in "abc":
        gate(t)
    h = await client.start(hedge)
    for t in "abc":
        await started(t)
    gate("b").set()
    assert await h.result(timeout=WAIT_SECONDS) == "b"
    assert sorted(LEDGER) == sorted(["start:a", "start:b", "start:c", "done:b", "cancelled:a", "cancelled:c"])
    joins = [e for e in await client.journal(h.id) if e.kind == "join"]
    assert len(joins) == 1 and joins[0].data == {"won": [1], "failed": [], "cancelled": [0, 2], "ignored": []}
    # Replaying the journal takes the same branch and runs nothing.
    LEDGER.clear()
    assert await replay(hedge, await client.journal(h.id)) == "b"
    assert LEDGER == []


@podium.flow(name="control.hedge_keep")
async def hedge_keep(ctx: podium.Context) -> str:
    return await ctx.first(work("a"), work("b"), cancel_rest=False)  # type: ignore[no-any-return]


async def test_first_without_cancelling_lets_the_others_finish_before_the_run_ends(
    client: podium.Client,
) -> None:
    gate("a")
    h = await client.start(hedge_keep)
    await started("a")
    await eventually(_ledger, lambda led: "done:b" in led, what="b to finish")
    await asyncio.sleep(0.05)
    assert (await client.get(h.id)).status is podium.RunStatus.RUNNING  # waits for the ignored branch
    gate("a").set()
    assert await h.result(timeout=WAIT_SECONDS) == "b"
    assert LEDGER == ["start:a", "start:b", "done:b", "done:a"]
    joins = [e for e in await client.journal(h.id) if e.kind == "join"]
    assert joins[0].data["ignored"] == [0]


@podium.flow(name="control.all_fail")
async def all_fail(ctx: podium.Context) -> str:
    return await ctx.first(boom("x"), boom("y"))  # type: ignore[no-any-return]


async def test_a_failure_does_not_win_and_if_all_fail_the_first_failure_is_raised(
    client: podium.Client,
) -> None:
    gate("y")
    h = await client.start(all_fail)
    await started("y")
    gate("y").set()
    with pytest.raises(podium.RunFailedError, match="x failed"):
        await h.result(timeout=WAIT_SECONDS)


# -- ctx.wait (N of M) ------------------------------------------------------------------------------
@podium.flow(name="control.quorum")
async def quorum(ctx: podium.Context) -> dict[str, Any]:
    votes = await ctx.wait([work("r0"), work("r1"), boom("r2"), work("r3"), work("r4")], n=3)
    return {"votes": list(votes), "from": votes.indices}


async def test_wait_n_of_m_in_completion_order_failures_do_not_count(client: podium.Client) -> None:
    for t in ("r0", "r1", "r2", "r3", "r4"):
        gate(t)
    h = await client.start(quorum)
    for t in ("r0", "r1", "r2", "r3", "r4"):
        await started(t)
    for t in ("r3", "r2", "r0", "r4"):  # r2 fails: r3, r0, r4 make the quorum
        gate(t).set()
        await eventually(
            _ledger,
            lambda led, t=t: any(x.endswith(":" + t) and "start" not in x for x in led),
            what=f"{t} to end",
        )
    out = await h.result(timeout=WAIT_SECONDS)
    assert out == {"votes": ["r3", "r0", "r4"], "from": [3, 0, 4]}
    assert "cancelled:r1" in LEDGER
    LEDGER.clear()
    assert await replay(quorum, await client.journal(h.id)) == out
    assert LEDGER == []


@podium.flow(name="control.quorum_lost")
async def quorum_lost(ctx: podium.Context) -> list[str]:
    return list(await ctx.wait([boom("q0"), boom("q1"), work("q2")], n=2))


async def test_wait_raises_when_too_many_fail_to_reach_n(client: podium.Client) -> None:
    gate("q2")
    h = await client.start(quorum_lost)
    with pytest.raises(podium.RunFailedError, match="q0 failed"):
        await h.result(timeout=WAIT_SECONDS)
    assert "cancelled:q2" in LEDGER


# -- deferred choice ----------------------------------------------------------------------------------
@podium.flow(name="control.approve_or_escalate")
async def approve_or_escalate(ctx: podium.Context) -> str:
    got = await ctx.wait([ctx.wait_for_signal("approve"), ctx.sleep("48h")], n=1)
    return "approved" if got.indices == [0] else "escalated"


async def _deferred(tmp_path: Any, signal_at: float | None, down: bool) -> str:
    """Start the flow at t0; send the signal at t0+signal_at hours (or never); look at t0+50h."""
    from podium.testing import ManualClock

    clock = ManualClock(start=1_800_000_000.0)
    settings = podium.Settings(
        database_url=f"sqlite:///{tmp_path}/p.db", poll_seconds=0.05, lease_seconds=2, hold_seconds=1
    )
    c = podium.Client(settings, clock=clock)
    await c.open()
    h = await c.start(approve_or_escalate)
    await wait_status(c, h.id, podium.RunStatus.WAITING)
    if down:  # no worker while the world moves on
        await close_within(c)
        c = podium.Client(settings, clock=clock, worker=False)
        await c.open()
    if signal_at is not None:
        clock.advance(f"{signal_at}h")
        await c.signal(h.id, "approve")
        clock.advance(f"{50 - signal_at}h")
    else:
        clock.advance("50h")
    if down:
        await close_within(c)
        c = podium.Client(settings, clock=clock)
        await c.open()
    try:
        return await c.result(h.id, timeout=WAIT_SECONDS)  # type: ignore[no-any-return]
    finally:
        await close_within(c)


@pytest.mark.parametrize("down", [False, True], ids=["worker-up", "worker-down"])
async def test_deferred_choice_whatever_happened_first_wins(tmp_path: Any, down: bool) -> None:
    assert await _deferred(tmp_path / "a", 47, down) == "approved"
    assert await _deferred(tmp_path / "b", 49, down) == "escalated"
    assert await _deferred(tmp_path / "c", None, down) == "escalated"


# -- task handles and groups --------------------------------------------------------------------------
@podium.flow(name="control.handles")
async def handles(ctx: podium.Context) -> dict[str, Any]:
    t1 = ctx.start(work("bg"))
    t2 = ctx.start(work("doomed"))
    first = await work("fg")
    t2.cancel()
    try:
        await t2
        cancelled = False
    except asyncio.CancelledError:
        cancelled = True
    return {"fg": first, "bg": await t1, "t2_cancelled": cancelled, "t2_done": t2.done()}


async def test_task_handles_await_cancel_done(client: podium.Client) -> None:
    gate("doomed")
    h = await client.start(handles)
    out = await h.result(timeout=WAIT_SECONDS)
    assert out == {"fg": "fg", "bg": "bg", "t2_cancelled": True, "t2_done": True}
    assert "done:doomed" not in LEDGER
    kinds = [e.kind for e in await client.journal(h.id)]
    assert "cancelled" in kinds
    LEDGER.clear()
    assert await replay(handles, await client.journal(h.id)) == out
    assert LEDGER == []


@podium.flow(name="control.dynamic")
async def dynamic(ctx: podium.Context, n: int) -> list[str]:
    results: list[podium.TaskHandle[str]] = []

    async def expand(i: int) -> str:
        tag = await work(f"w{i}")
        if i < n:  # each task adds the next one while others run
            results.append(g.start(expand(i + 1)))
        return tag

    async with ctx.group() as g:
        results.append(g.start(expand(0)))
    return [await t for t in results]


async def test_group_lets_work_add_work_and_waits_for_all(client: podium.Client) -> None:
    h = await client.start(dynamic, 4)
    assert await h.result(timeout=WAIT_SECONDS) == ["w0", "w1", "w2", "w3", "w4"]
    LEDGER.clear()
    assert await replay(dynamic, await client.journal(h.id)) == ["w0", "w1", "w2", "w3", "w4"]


@podium.flow(name="control.group_error")
async def group_error(ctx: podium.Context) -> str:
    try:
        async with ctx.group() as g:
            g.start(book("hotel"))
            g.start(work("slow"))
            g.start(boom("bad"))
            await work("body")
    except podium.StepError as exc:
        return f"caught {exc.name}"
    return "no error"


async def test_an_error_in_a_group_cancels_the_rest_and_compensates(client: podium.Client) -> None:
    gate("slow")
    gate("body")
    gate("bad")
    h = await client.start(group_error)
    for t in ("hotel", "slow", "bad", "body"):
        await started(t)
    gate("bad").set()
    assert await h.result(timeout=WAIT_SECONDS) == "caught boom"
    assert "cancelled:slow" in LEDGER and "cancelled:body" in LEDGER
    assert LEDGER.index("undo:hotel") > LEDGER.index("fail:bad")


# -- cancel scopes and sagas --------------------------------------------------------------------------
@podium.flow(name="control.child_sleeper")
async def child_sleeper(ctx: podium.Context) -> str:
    await ctx.sleep("1h")
    return "woke"


@podium.flow(name="control.region")
async def region(ctx: podium.Context) -> dict[str, Any]:
    async with ctx.scope() as s:

        async def guard() -> None:
            verdict = await work("guard")
            if verdict == "guard":
                s.cancel()

        async def inside() -> None:
            await book("flight")
            await ctx.gather(
                work("long"), ctx.child(child_sleeper), ctx.sleep("1h"), ctx.wait_for_signal("x")
            )

        await ctx.gather(inside(), guard())
    after = await work("after")
    return {"cancelled": s.cancelled, "after": after}


async def test_cancelling_a_scope_stops_everything_in_it_and_compensates(client: podium.Client) -> None:
    gate("long")
    gate("guard")
    h = await client.start(region)
    await started("long")
    child = await eventually(
        lambda: client.list(flow="control.child_sleeper"), lambda rs: len(rs) == 1, what="the child run"
    )
    gate("guard").set()
    out = await h.result(timeout=WAIT_SECONDS)
    assert out == {"cancelled": True, "after": "after"}
    assert "cancelled:long" in LEDGER and "undo:flight" in LEDGER
    assert LEDGER.index("undo:flight") < LEDGER.index("start:after")
    await wait_status(client, child[0].id, podium.RunStatus.CANCELLED)
    journal = await client.journal(h.id)
    assert [e.kind for e in journal].count("cancelled") == 1
    assert any(e.kind == "step" and e.name == "undo:book" for e in journal)
    LEDGER.clear()
    assert await replay(region, journal) == out
    assert LEDGER == []


@podium.flow(name="control.saga")
async def saga(ctx: podium.Context) -> str:
    await book("flight")
    await book("hotel")
    await boom("payment")
    return "paid"


async def test_a_failed_run_compensates_its_completed_steps_newest_first(client: podium.Client) -> None:
    h = await client.start(saga)
    with pytest.raises(podium.RunFailedError, match="payment failed"):
        await h.result(timeout=WAIT_SECONDS)
    assert LEDGER == [
        "start:flight",
        "done:flight",
        "start:hotel",
        "done:hotel",
        "start:payment",
        "fail:payment",
        "undo:hotel",
        "undo:flight",
    ]
    undo = [e for e in await client.journal(h.id) if e.name == "undo:book"]
    assert [e.position for e in undo] == ["~0", "~1"]


@podium.flow(name="control.saga_waiting")
async def saga_waiting(ctx: podium.Context) -> str:
    await book("car")
    await ctx.approval("go")
    await book("never")
    return "done"


async def test_cancelling_a_waiting_run_compensates_it(store_url: str) -> None:
    c = podium.Client(settings_for(store_url))
    await c.open()
    try:
        h = await c.start(saga_waiting)
        await wait_approval(c, h.id)
        await wait_status(c, h.id, podium.RunStatus.WAITING)
        await c.cancel(h.id)
        await wait_status(c, h.id, podium.RunStatus.CANCELLED)
        await eventually(_ledger, lambda led: "undo:car" in led, what="the compensation")
        assert LEDGER == ["start:car", "done:car", "undo:car"]
    finally:
        await close_within(c)


async def test_bad_arguments_are_clear_errors(client: podium.Client) -> None:
    @podium.flow(name="control.bad_n")
    async def bad_n(ctx: podium.Context) -> None:
        await ctx.wait([work("a")], n=2)

    h = await client.start(bad_n)
    with pytest.raises(podium.RunFailedError, match="n must be an integer from 0 to 1"):
        await h.result(timeout=WAIT_SECONDS)

    @podium.flow(name="control.bad_aw")
    async def bad_aw(ctx: podium.Context) -> None:
        await ctx.first(work("a"), 3)  # type: ignore[arg-type]

    h = await client.start(bad_aw)
    with pytest.raises(podium.RunFailedError, match="takes awaitables"):
        await h.result(timeout=WAIT_SECONDS)


async def _unused() -> AsyncIterator[None]:  # keeps the AsyncIterator import honest for type checkers
    yield None


# -- signals: persistent, transient, ordered, deduplicated; milestones --------------------------------
@podium.flow(name="control.listener")
async def listener(ctx: podium.Context) -> list[Any]:
    await work("ready")
    return [await ctx.wait_for_signal("msg") for _ in range(3)]


async def test_signals_are_persistent_ordered_and_deduplicated(client: podium.Client) -> None:
    gate("ready")
    h = await client.start(listener)
    await started("ready")
    assert await client.signal(h.id, "msg", 1, key="one")  # sent before the flow waits: kept
    assert not await client.signal(h.id, "msg", 1, key="one")  # the same id again: applied once
    assert await client.signal(h.id, "msg", 2)
    gate("ready").set()
    assert await client.signal(h.id, "msg", 3)
    assert await h.result(timeout=WAIT_SECONDS) == [1, 2, 3]


@podium.flow(name="control.transient")
async def transient_flow(ctx: podium.Context) -> Any:
    await work("ready")
    return await ctx.wait_for_signal("ping")


async def test_a_transient_signal_is_dropped_when_nothing_waits_and_the_sender_is_told(
    client: podium.Client,
) -> None:
    gate("ready")
    h = await client.start(transient_flow)
    await started("ready")
    assert await client.signal(h.id, "ping", "early", transient=True) is False  # nobody waits yet
    gate("ready").set()
    await eventually(
        lambda: client.journal(h.id), lambda j: any(e.kind == "listen" for e in j), what="the wait"
    )
    assert await client.signal(h.id, "ping", "late", transient=True) is True
    assert await h.result(timeout=WAIT_SECONDS) == "late"


@podium.flow(name="control.editable")
async def editable(ctx: podium.Context) -> list[Any]:
    await work("before")
    edits = []
    async with ctx.milestone("editable"):
        got = await ctx.wait([ctx.wait_for_signal("edit"), ctx.wait_for_signal("done")], n=1)
        edits.append(list(got))
    await work("after")
    return edits


async def test_a_signal_that_needs_a_milestone_is_refused_outside_it(client: podium.Client) -> None:
    gate("before")
    gate("after")
    h = await client.start(editable)
    await started("before")
    with pytest.raises(podium.SignalRefusedError, match="not in milestone 'editable'"):
        await client.signal(h.id, "edit", "too early", milestone="editable")
    gate("before").set()
    await eventually(
        lambda: client.journal(h.id), lambda j: any(e.kind == "milestone" for e in j), what="the milestone"
    )
    assert await client.signal(h.id, "edit", "fix typo", milestone="editable")
    await started("after")
    with pytest.raises(podium.SignalRefusedError):
        await client.signal(h.id, "edit", "too late", milestone="editable")
    gate("after").set()
    assert await h.result(timeout=WAIT_SECONDS) == [["fix typo"]]
    signals = [e for e in await client.journal(h.id) if e.kind == "signal"]
    assert [e.data["payload"] for e in signals] == ["fix typo"]  # refused signals changed nothing


# -- loops and recursion ------------------------------------------------------------------------------
@podium.flow(name="control.poller")
async def poller(ctx: podium.Context, state: dict[str, int]) -> dict[str, int]:
    seen = await work(f"poll{state['round']}")
    total = state["total"] + len(seen)
    if state["round"] < 4:
        msg = await ctx.wait_for_signal("tick") if state["round"] == 2 else None
        ctx.continue_as_new({"round": state["round"] + 1, "total": total + (msg or 0)})
    return {"round": state["round"], "total": total}


async def test_continue_as_new_keeps_one_run_with_a_small_journal(client: podium.Client) -> None:
    h = await client.start(poller, {"round": 0, "total": 0})
    await client.signal(h.id, "tick", 100)  # sent early: carried over to the generation that waits
    out = await h.result(timeout=WAIT_SECONDS)
    assert out == {"round": 4, "total": 100 + 5 * 5}
    assert [x for i in range(5) for x in (f"start:poll{i}", f"done:poll{i}")] == LEDGER
    journal = await client.journal(h.id)
    steps = [e for e in journal if e.kind == "step"]
    assert [e.position for e in steps] == ["4/0"]  # only the last generation's journal is kept
    start = [e for e in journal if e.kind == "start"]
    assert start[0].data["generation"] == 4
    assert len(await client.list(flow="control.poller")) == 1


@podium.flow(name="control.countdown")
async def countdown(ctx: podium.Context, n: int) -> int:
    if n == 0:
        return 0
    return 1 + await ctx.child(countdown, n - 1)


async def test_a_flow_may_start_itself_as_a_child_with_bounded_depth(client: podium.Client) -> None:
    assert await (await client.start(countdown, 5)).result(timeout=WAIT_SECONDS) == 5
    h = await client.start(countdown, 150)
    with pytest.raises(podium.RunFailedError, match="nest deeper than 100"):
        await h.result(timeout=60)


@podium.flow(name="control.slow_child")
async def slow_child(ctx: podium.Context) -> str:
    return str(await ctx.wait_for_signal("never"))


@podium.flow(name="control.child_or_timeout")
async def child_or_timeout(ctx: podium.Context) -> list[int]:
    got = await ctx.wait([ctx.child(slow_child), ctx.sleep(0.05), ctx.approval("ok")], n=1)
    await ctx.wait_for_signal("end")
    return got.indices


async def test_a_race_of_a_child_a_timer_and_an_approval_cancels_the_losers(client: podium.Client) -> None:
    h = await client.start(child_or_timeout)
    await eventually(
        lambda: client.journal(h.id), lambda j: any(e.kind == "withdrawn" for e in j), what="the race"
    )
    assert await client.pending_approvals(h.id) == []  # the approval no longer waits for anyone
    with pytest.raises(podium.InvalidStateError, match=r"withdrawn|decided"):
        await client.approve(h.id, "ok")
    await client.signal(h.id, "end")
    assert await h.result(timeout=WAIT_SECONDS) == [1]
    child = (await client.list(flow="control.slow_child"))[0]
    await wait_status(client, child.id, podium.RunStatus.CANCELLED)
