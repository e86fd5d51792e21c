"""One contract suite for every ``Store``: the guarantees the engine and the client rely on.

Each test runs against ``MemoryStore``, ``SQLiteStore`` and ``PostgresStore`` (``conftest.store_url``); a new
store passes this file or is not done.
Times are explicit floats (stores never read a clock), so nothing here depends on the wall clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import settings_for

from podium import InvalidStateError, RunNotFoundError, RunStatus
from podium.runtime import make_store
from podium.storage.base import Event, Outcome, RunRecord, Store, Transition, Write

T0 = 1_000.0
LEASE = 30.0


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = make_store(settings_for(store_url))  # memory, SQLite and PostgreSQL (conftest.store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


# -- helpers ----------------------------------------------------------------------------------------


async def create(
    store: Store,
    run_id: str,
    *,
    flow: str = "f",
    key: str | None = None,
    at: float = T0,
    parent: tuple[str, str] | None = None,
    input: Any = None,
    queue: str = "default",
    priority: int = 0,
) -> RunRecord:
    rec = RunRecord(
        id=run_id,
        flow=flow,
        status=RunStatus.PENDING,
        input=input,
        key=key,
        parent_id=parent[0] if parent else None,
        parent_step=parent[1] if parent else None,
        created_at=at,
        updated_at=at,
        queue=queue,
        priority=priority,
    )
    run, created = await store.create_run(rec, Event(run_id, "start", "", flow, {"input": input}, at))
    assert created
    return run


async def held(store: Store, run_id: str, owner: str = "w1", *, now: float = T0 + 1) -> RunRecord:
    """Claim one run for ``owner``; fails the test if it is not runnable."""
    run = await store.claim_run(run_id, owner, now=now, lease_until=now + LEASE)
    assert run is not None, f"run {run_id} should be claimable"
    return run


async def commit1(
    store: Store, owner: str, write: Write, *, now: float = T0 + 2, lease_until: float | None = None
) -> Outcome:
    outcomes = await store.commit(
        owner, [write], now=now, lease_until=now + LEASE if lease_until is None else lease_until
    )
    assert len(outcomes) == 1
    return outcomes[0]


async def waiting(
    store: Store, run_id: str, *, wake_at: float | None = None, flow: str = "f", at: float = T0
) -> RunRecord:
    """A run in status ``waiting`` (suspended by its worker), optionally with a timer."""
    await create(store, run_id, flow=flow, at=at)
    await held(store, run_id)
    w = Write(run_id, transition=Transition.SUSPEND, wake_at=wake_at, seen_inbox=0)
    assert await commit1(store, "w1", w) is Outcome.OK
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.WAITING
    return run


async def finished(store: Store, run_id: str, *, flow: str = "f", at: float = T0) -> RunRecord:
    await create(store, run_id, flow=flow, at=at)
    await held(store, run_id)
    end = Event(run_id, "end", "", None, {"status": "completed", "output": 1})
    w = Write(run_id, [end], transition=Transition.COMPLETE, output=1)
    assert await commit1(store, "w1", w) is Outcome.OK
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    return run


async def kinds(store: Store, run_id: str) -> list[tuple[str, str]]:
    return [(e.kind, e.step) for e in await store.load_events(run_id)]


# -- creating runs ----------------------------------------------------------------------------------


async def test_create_run_is_idempotent_on_key(store: Store) -> None:
    first = await create(store, "r1", key="order-42", input={"n": 1})
    again = RunRecord(
        id="r2", flow="f", status=RunStatus.PENDING, input={"n": 2}, key="order-42", created_at=T0 + 5
    )
    run, created = await store.create_run(again, Event("r2", "start", "", "f", {"input": {"n": 2}}, T0 + 5))
    assert created is False
    assert run.id == first.id == "r1"
    assert run.input == {"n": 1}
    assert await store.get_run("r2") is None
    assert [r.id for r in await store.list_runs()] == ["r1"]
    assert await kinds(store, "r1") == [("start", "")]
    assert await store.load_events("r2") == []


async def test_create_run_without_key_always_creates(store: Store) -> None:
    await create(store, "a")
    await create(store, "b")
    assert {r.id for r in await store.list_runs()} == {"a", "b"}


async def test_get_run_roundtrips_fields(store: Store) -> None:
    await create(store, "r1", flow="shop", key="k", input={"items": ["x", 2, None]}, parent=("p", "3"))
    run = await store.get_run("r1")
    assert run is not None
    assert (run.flow, run.status, run.key, run.input) == (
        "shop",
        RunStatus.PENDING,
        "k",
        {"items": ["x", 2, None]},
    )
    assert (run.parent_id, run.parent_step, run.created_at, run.inbox_seq) == ("p", "3", T0, 0)
    assert (run.queue, run.priority) == ("default", 0)
    await create(store, "r2", queue="gpu", priority=-3)
    again = await store.get_run("r2")
    assert again is not None and (again.queue, again.priority) == ("gpu", -3)
    assert await store.get_run("nope") is None


# -- journal ----------------------------------------------------------------------------------------


async def test_events_are_unique_per_run_kind_and_step(store: Store) -> None:
    await create(store, "r1")
    first = await store.deliver(Event("r1", "signal", "k:1", "go", {"payload": 1}), now=T0 + 1)
    assert first is not None and first.seq > 0
    dup = await store.deliver(Event("r1", "signal", "k:1", "go", {"payload": 2}), now=T0 + 2)
    assert dup is None
    # same step, other kind: a different event
    assert await store.deliver(Event("r1", "decision", "k:1", "go", {}), now=T0 + 3) is not None
    events = await store.load_events("r1")
    signals = [e for e in events if e.kind == "signal"]
    assert len(signals) == 1 and signals[0].data == {"payload": 1}
    run = await store.get_run("r1")
    assert run is not None and run.inbox_seq == 2  # the duplicate did not count


async def test_load_events_in_order_and_after(store: Store) -> None:
    await create(store, "r1")
    await held(store, "r1")
    events = [Event("r1", "step", str(i), f"s{i}", {"result": i}) for i in range(3)]
    assert await commit1(store, "w1", Write("r1", events)) is Outcome.OK
    loaded = await store.load_events("r1")
    assert [(e.kind, e.step) for e in loaded] == [("start", ""), ("step", "0"), ("step", "1"), ("step", "2")]
    assert [e.seq for e in loaded] == sorted(e.seq for e in loaded)
    assert len({e.seq for e in loaded}) == 4
    assert loaded[1].at == T0 + 2  # stamped with the commit's time
    later = await store.load_events("r1", after=loaded[1].seq)
    assert [e.step for e in later] == ["1", "2"]


# -- claiming ---------------------------------------------------------------------------------------


async def test_claim_takes_only_runnable_runs_of_the_given_flows(store: Store) -> None:
    await create(store, "pending", flow="A", at=T0 + 1)
    await create(store, "other_flow", flow="B", at=T0 + 2)
    await waiting(store, "no_timer", flow="A", at=T0 + 3)
    await waiting(store, "timer_due", wake_at=T0 + 50, flow="A", at=T0 + 4)
    await waiting(store, "timer_later", wake_at=T0 + 500, flow="A", at=T0 + 5)
    await create(store, "lease_expired", flow="A", at=T0 + 6)
    await held(store, "lease_expired", "dead")  # lease until T0 + 1 + LEASE
    await create(store, "lease_live", flow="A", at=T0 + 7)
    await store.claim_run("lease_live", "alive", now=T0 + 90, lease_until=T0 + 1000)
    await finished(store, "done", flow="A", at=T0 + 8)

    now = T0 + 100
    got = await store.claim("w2", ["A"], now=now, lease_until=now + LEASE, limit=10)
    assert {r.id for r in got} == {"pending", "timer_due", "lease_expired"}
    for r in got:
        assert r.status is RunStatus.RUNNING
        assert r.lease_owner == "w2" and r.lease_until == now + LEASE
        assert r.wake_at is None
        stored = await store.get_run(r.id)
        assert stored is not None and stored.status is RunStatus.RUNNING and stored.lease_owner == "w2"
    expired = await store.get_run("lease_expired")
    assert expired is not None and expired.claims == 2
    assert await store.claim("w3", ["A"], now=now, lease_until=now + LEASE, limit=10) == []
    untouched = {r.id: r for r in await store.list_runs()}
    assert untouched["other_flow"].status is RunStatus.PENDING
    assert untouched["no_timer"].status is RunStatus.WAITING
    assert untouched["timer_later"].status is RunStatus.WAITING
    assert untouched["lease_live"].lease_owner == "alive"
    assert untouched["done"].status is RunStatus.COMPLETED
    assert await store.claim("w3", [], now=now, lease_until=now + LEASE, limit=10) == []


async def test_claim_respects_limit(store: Store) -> None:
    for i in range(5):
        await create(store, f"r{i}", at=T0 + i)
    first = await store.claim("w1", ["f"], now=T0 + 10, lease_until=T0 + 40, limit=2)
    second = await store.claim("w2", ["f"], now=T0 + 10, lease_until=T0 + 40, limit=10)
    assert len(first) == 2 and len(second) == 3
    assert not {r.id for r in first} & {r.id for r in second}


async def test_claim_caps_a_queue_across_its_flows_and_all_holders(store: Store) -> None:
    await create(store, "z", flow="Z", queue="gpu", at=T0)  # a flow this claimer does not run, same queue
    await held(store, "z", "other")  # lease until T0 + 1 + LEASE: it takes one of gpu's 2 slots
    await create(store, "a1", flow="A", queue="gpu", at=T0 + 1)
    await create(store, "b1", flow="B", queue="gpu", at=T0 + 2)
    await create(store, "a2", flow="A", queue="gpu", at=T0 + 3)
    await create(store, "c1", flow="C", at=T0 + 4)
    await create(store, "c2", flow="C", at=T0 + 5)
    flows, caps = ["A", "B", "C"], {"gpu": 2}
    now = T0 + 10
    got = await store.claim("w1", flows, now=now, lease_until=now + LEASE, limit=10, queues=caps)
    assert sorted(r.id for r in got) == ["a1", "c1", "c2"]  # the default queue is not capped
    assert await store.claim("w2", flows, now=now, lease_until=now + LEASE, limit=10, queues=caps) == []
    # a run that ends frees its slot; the oldest run of the queue takes it, whatever its flow
    end = Event("a1", "end", "", None, {"status": "completed", "output": None})
    w = Write("a1", [end], transition=Transition.COMPLETE)
    assert await commit1(store, "w1", w, now=now + 1) is Outcome.OK
    got = await store.claim("w2", flows, now=now + 1, lease_until=now + LEASE, limit=10, queues=caps)
    assert [r.id for r in got] == ["b1"]
    # an expired lease holds no slot: "z"'s worker died, so "a2" may run (and "z" is not ours to take)
    later = T0 + 2 + LEASE
    got = await store.claim("w3", flows, now=later, lease_until=later + LEASE, limit=10, queues=caps)
    assert [r.id for r in got] == ["a2"]
    z = await store.get_run("z")
    assert z is not None and z.lease_owner == "other"


async def test_flow_and_queue_limits_hold_together(store: Store) -> None:
    for i in range(3):
        await create(store, f"a{i}", flow="A", queue="gpu", at=T0 + i)
    for i in range(3):
        await create(store, f"b{i}", flow="B", queue="gpu", at=T0 + 10 + i)
    await create(store, "urgent", flow="B", queue="gpu", at=T0 + 20, priority=5)
    now = T0 + 30
    got = await store.claim(
        "w1", ["A", "B"], now=now, lease_until=now + LEASE, limit=10, limits={"A": 1}, queues={"gpu": 3}
    )
    # highest priority first; then A's one slot; runs held back by A's cap leave the queue's slots to B
    assert sorted(r.id for r in got) == ["a0", "b0", "urgent"]
    again = await store.claim(
        "w2", ["A", "B"], now=now, lease_until=now + LEASE, limit=10, limits={"A": 1}, queues={"gpu": 3}
    )
    assert again == []
    more = await store.claim(
        "w2", ["A", "B"], now=now, lease_until=now + LEASE, limit=10, limits={"A": 1}, queues={"gpu": 5}
    )
    assert sorted(r.id for r in more) == ["b1", "b2"]  # A stays at its cap of 1


async def test_claim_run_only_if_runnable(store: Store) -> None:
    await create(store, "r1")
    assert (await held(store, "r1", "w1")).lease_owner == "w1"
    assert await store.claim_run("r1", "w2", now=T0 + 2, lease_until=T0 + 50) is None  # held
    taken = await store.claim_run("r1", "w2", now=T0 + 2 + LEASE, lease_until=T0 + 100)  # expired
    assert taken is not None and taken.lease_owner == "w2"
    assert await store.claim_run("missing", "w2", now=T0, lease_until=T0 + 1) is None


# -- commits and leases -----------------------------------------------------------------------------


async def test_commit_by_non_owner_is_fenced(store: Store) -> None:
    await create(store, "r1")
    await held(store, "r1", "w1")
    step = Event("r1", "step", "0", "s", {"result": 1})
    w = Write("r1", [step], transition=Transition.COMPLETE, output=1)
    assert await commit1(store, "intruder", w) is Outcome.LEASE_LOST
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.lease_owner, run.output) == (RunStatus.RUNNING, "w1", None)
    assert await kinds(store, "r1") == [("start", "")]


async def test_lease_taken_over_fences_the_old_owner(store: Store) -> None:
    await create(store, "r1")
    await held(store, "r1", "old", now=T0 + 1)
    taken = await store.claim_run("r1", "new", now=T0 + 2 + LEASE, lease_until=T0 + 200)
    assert taken is not None
    stale = Write("r1", [Event("r1", "step", "0", "s", {"result": "old"})])
    assert await commit1(store, "old", stale) is Outcome.LEASE_LOST
    fresh = Write("r1", [Event("r1", "step", "0", "s", {"result": "new"})])
    assert await commit1(store, "new", fresh) is Outcome.OK
    steps = [e for e in await store.load_events("r1") if e.kind == "step"]
    assert [e.data for e in steps] == [{"result": "new"}]


async def test_commit_in_a_group_is_fenced_per_run(store: Store) -> None:
    await create(store, "mine")
    await create(store, "theirs", at=T0 + 1)
    await held(store, "mine", "w1")
    await held(store, "theirs", "w2")
    writes = [
        Write("mine", [Event("mine", "step", "0", "s", {"result": 1})]),
        Write("theirs", [Event("theirs", "step", "0", "s", {"result": 1})]),
    ]
    outcomes = await store.commit("w1", writes, now=T0 + 3, lease_until=T0 + 99)
    assert outcomes == [Outcome.OK, Outcome.LEASE_LOST]
    assert ("step", "0") in await kinds(store, "mine")
    assert ("step", "0") not in await kinds(store, "theirs")
    theirs = await store.get_run("theirs")
    assert theirs is not None and theirs.lease_owner == "w2"


async def test_write_colliding_with_the_journal_is_refused_whole(store: Store) -> None:
    """A write whose events hit journaled positions (another worker got there first) writes nothing."""
    await create(store, "r1")
    await held(store, "r1")
    first = Write("r1", [Event("r1", "step", "0", "s", {"result": "first"})])
    assert await commit1(store, "w1", first) is Outcome.OK
    clash = Write(
        "r1",
        [
            Event("r1", "step", "1", "t", {"result": "new"}),
            Event("r1", "step", "0", "s", {"result": "again"}),
        ],
        transition=Transition.COMPLETE,
        output="x",
    )
    assert await commit1(store, "w1", clash) is Outcome.LEASE_LOST
    assert await kinds(store, "r1") == [("start", ""), ("step", "0")]
    assert [e.data for e in await store.load_events("r1") if e.kind == "step"] == [{"result": "first"}]
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.output) == (RunStatus.RUNNING, None)


async def test_terminal_commit_sets_output_and_releases(store: Store) -> None:
    await create(store, "ok")
    await held(store, "ok")
    end = Event("ok", "end", "", None, {"status": "completed", "output": {"a": 1}})
    ok = Write("ok", [end], transition=Transition.COMPLETE, output={"a": 1})
    assert await commit1(store, "w1", ok, now=T0 + 7) is Outcome.OK
    run = await store.get_run("ok")
    assert run is not None
    assert (run.status, run.output, run.error) == (RunStatus.COMPLETED, {"a": 1}, None)
    assert (run.lease_owner, run.lease_until, run.ended_at) == (None, None, T0 + 7)

    await create(store, "bad", at=T0 + 1)
    await held(store, "bad")
    error = {"type": "Boom", "message": "boom", "retryable": False}
    assert await commit1(store, "w1", Write("bad", transition=Transition.FAIL, error=error)) is Outcome.OK
    run = await store.get_run("bad")
    assert run is not None and (run.status, run.error) == (RunStatus.FAILED, error)
    # a finished run is nobody's: its former owner cannot write to it
    late = Write("bad", [Event("bad", "step", "9", "s", {})])
    assert await commit1(store, "w1", late) is Outcome.LEASE_LOST


async def test_release_makes_the_run_pending_again(store: Store) -> None:
    await create(store, "r1")
    await held(store, "r1")
    assert await commit1(store, "w1", Write("r1", transition=Transition.RELEASE)) is Outcome.OK
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.lease_owner) == (RunStatus.PENDING, None)
    assert [r.id for r in await store.claim("w2", ["f"], now=T0 + 3, lease_until=T0 + 9, limit=5)] == ["r1"]


async def test_suspend_is_refused_when_the_inbox_moved(store: Store) -> None:
    await create(store, "r1")
    run = await held(store, "r1")
    seen = run.inbox_seq
    assert await store.deliver(Event("r1", "signal", "u:1", "go", {"payload": 1}), now=T0 + 2) is not None
    still = await store.get_run("r1")
    assert still is not None and still.status is RunStatus.RUNNING  # a running run stays running

    w = Write("r1", transition=Transition.SUSPEND, wake_at=None, seen_inbox=seen)
    assert await commit1(store, "w1", w) is Outcome.INBOX_CHANGED
    run2 = await store.get_run("r1")
    assert run2 is not None
    assert (run2.status, run2.lease_owner) == (RunStatus.RUNNING, "w1")  # still held by w1

    ok = Write("r1", transition=Transition.SUSPEND, wake_at=T0 + 60, seen_inbox=run2.inbox_seq)
    assert await commit1(store, "w1", ok) is Outcome.OK
    run3 = await store.get_run("r1")
    assert run3 is not None
    assert (run3.status, run3.wake_at, run3.lease_owner) == (RunStatus.WAITING, T0 + 60, None)


# -- inbox ------------------------------------------------------------------------------------------


async def test_deliver_to_a_waiting_run_makes_it_pending(store: Store) -> None:
    await waiting(store, "r1", wake_at=T0 + 10_000)
    stored = await store.deliver(Event("r1", "decision", "0", "ok", {"approved": True}), now=T0 + 5)
    assert stored is not None and stored.seq > 0
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.wake_at, run.inbox_seq) == (RunStatus.PENDING, None, 1)
    claimed = await store.claim("w2", ["f"], now=T0 + 6, lease_until=T0 + 60, limit=5)
    assert [r.id for r in claimed] == ["r1"]


async def test_deliver_to_a_finished_run_is_refused(store: Store) -> None:
    await finished(store, "r1")
    before = await kinds(store, "r1")
    with pytest.raises(InvalidStateError):
        await store.deliver(Event("r1", "signal", "u:1", "go", None), now=T0 + 5)
    assert await kinds(store, "r1") == before


async def test_deliver_to_an_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(RunNotFoundError):
        await store.deliver(Event("ghost", "signal", "u:1", "go", None), now=T0)
    assert await store.load_events("ghost") == []


# -- parents and children ---------------------------------------------------------------------------


async def _parent_waiting_for_child(store: Store) -> None:
    await create(store, "parent")
    await held(store, "parent")
    w = Write(
        "parent",
        [Event("parent", "child", "0", "kid", {"run_id": "child"})],
        transition=Transition.SUSPEND,
        seen_inbox=0,
    )
    assert await commit1(store, "w1", w) is Outcome.OK
    await create(store, "child", flow="kid", parent=("parent", "0"), at=T0 + 1)


@pytest.mark.parametrize("transition", [Transition.COMPLETE, Transition.FAIL, Transition.CANCEL])
async def test_child_end_is_journaled_in_the_parent_and_wakes_it(
    store: Store, transition: Transition
) -> None:
    await _parent_waiting_for_child(store)
    await held(store, "child", "w2")
    error = None if transition is Transition.COMPLETE else {"type": "X", "message": "x", "retryable": False}
    output = {"v": 7} if transition is Transition.COMPLETE else None
    end = Write("child", transition=transition, output=output, error=error)
    assert await commit1(store, "w2", end, now=T0 + 9) is Outcome.OK

    parent = await store.get_run("parent")
    assert parent is not None and parent.status is RunStatus.PENDING
    done = [e for e in await store.load_events("parent") if e.kind == "child_done"]
    assert len(done) == 1
    assert done[0].step == "0" and done[0].name == "kid"
    assert done[0].data == {"run_id": "child", "status": transition.value, "output": output, "error": error}


async def test_cancel_idle_child_is_journaled_in_the_parent(store: Store) -> None:
    await _parent_waiting_for_child(store)
    assert await store.cancel_idle("child", now=T0 + 4) is True
    done = [e for e in await store.load_events("parent") if e.kind == "child_done"]
    assert len(done) == 1 and done[0].data["status"] == "cancelled"
    parent = await store.get_run("parent")
    assert parent is not None and parent.status is RunStatus.PENDING


async def test_child_can_finish_after_its_parent_ended(store: Store) -> None:
    """A parent cancelled while its child runs must not make the child's own completion impossible."""
    await _parent_waiting_for_child(store)
    await held(store, "child", "w2")
    assert await store.cancel_idle("parent", now=T0 + 3) is True
    end = Write(
        "child",
        [Event("child", "end", "", None, {"status": "completed", "output": 1})],
        transition=Transition.COMPLETE,
        output=1,
    )
    assert await commit1(store, "w2", end, now=T0 + 5) is Outcome.OK
    child = await store.get_run("child")
    assert child is not None and (child.status, child.output) == (RunStatus.COMPLETED, 1)
    assert ("end", "") in await kinds(store, "child")
    parent = await store.get_run("parent")
    assert parent is not None and parent.status is RunStatus.CANCELLED


# -- cancel, heartbeat ------------------------------------------------------------------------------


async def test_cancel_idle(store: Store) -> None:
    await create(store, "pending")
    assert await store.cancel_idle("pending", now=T0 + 5) is True
    run = await store.get_run("pending")
    assert run is not None
    assert run.status is RunStatus.CANCELLED and run.ended_at == T0 + 5
    assert run.error is not None and run.error["type"] == "Cancelled"
    assert (await store.load_events("pending"))[-1].kind == "end"

    await waiting(store, "waiting", wake_at=T0 + 99)
    assert await store.cancel_idle("waiting", now=T0 + 5) is True
    run = await store.get_run("waiting")
    assert run is not None and (run.status, run.wake_at) == (RunStatus.CANCELLED, None)

    await create(store, "running")
    await held(store, "running")
    assert await store.cancel_idle("running", now=T0 + 5) is False
    run = await store.get_run("running")
    assert run is not None and (run.status, run.lease_owner) == (RunStatus.RUNNING, "w1")

    await finished(store, "done")
    assert await store.cancel_idle("done", now=T0 + 5) is False
    assert await store.cancel_idle("ghost", now=T0 + 5) is False
    assert await store.cancel_idle("pending", now=T0 + 6) is False  # already cancelled


async def test_heartbeat_extends_only_own_running_leases(store: Store) -> None:
    await create(store, "mine")
    await create(store, "theirs")
    await create(store, "idle")
    await held(store, "mine", "w1")
    await held(store, "theirs", "w2")
    await store.deliver(Event("mine", "signal", "u:1", "go", None), now=T0 + 2)
    seqs = await store.heartbeat("w1", ["mine", "theirs", "idle", "ghost"], lease_until=T0 + 500)
    assert seqs == {"mine": 1}
    mine = await store.get_run("mine")
    theirs = await store.get_run("theirs")
    assert mine is not None and mine.lease_until == T0 + 500
    assert theirs is not None and theirs.lease_until == T0 + 1 + LEASE
    assert await store.heartbeat("w1", [], lease_until=T0 + 600) == {}


# -- reading ----------------------------------------------------------------------------------------


async def test_list_runs_filters_and_pages(store: Store) -> None:
    for i in range(6):
        await create(store, f"a{i}", flow="A" if i % 2 == 0 else "B", at=T0 + i)
    await create(store, "kid", flow="A", at=T0 + 10, parent=("a0", "1"))
    await finished(store, "done", flow="A", at=T0 + 11)

    assert [r.id for r in await store.list_runs()] == ["done", "kid", "a5", "a4", "a3", "a2", "a1", "a0"]
    assert [r.id for r in await store.list_runs(flow="B")] == ["a5", "a3", "a1"]
    assert [r.id for r in await store.list_runs(status=[RunStatus.COMPLETED])] == ["done"]
    assert [r.id for r in await store.list_runs(status=[RunStatus.PENDING], flow="A")] == [
        "kid",
        "a4",
        "a2",
        "a0",
    ]
    assert [r.id for r in await store.list_runs(parent_id="a0")] == ["kid"]
    assert await store.list_runs(status=[RunStatus.WAITING]) == []

    page1 = await store.list_runs(limit=3)
    page2 = await store.list_runs(limit=3, before=page1[-1].id)
    page3 = await store.list_runs(limit=3, before=page2[-1].id)
    assert [r.id for r in page1] == ["done", "kid", "a5"]
    assert [r.id for r in page2] == ["a4", "a3", "a2"]
    assert [r.id for r in page3] == ["a1", "a0"]
    assert [r.id for r in await store.list_runs(flow="A", limit=2, before="a4")] == ["a2", "a0"]


async def test_list_runs_orders_same_time_runs_by_id(store: Store) -> None:
    for run_id in ("b", "c", "a"):
        await create(store, run_id, at=T0)
    assert [r.id for r in await store.list_runs()] == ["c", "b", "a"]
    assert [r.id for r in await store.list_runs(before="b")] == ["a"]


async def test_pending_approvals(store: Store) -> None:
    async def ask(run_id: str, names: list[str], at: float) -> None:
        await create(store, run_id, at=at)
        await held(store, run_id)
        events = [Event(run_id, "approval", str(i), n, {"payload": {"n": n}}) for i, n in enumerate(names)]
        w = Write(run_id, events, transition=Transition.SUSPEND, seen_inbox=0)
        assert await commit1(store, "w1", w) is Outcome.OK

    await ask("r1", ["refund", "email"], T0)
    await ask("r2", ["deploy"], T0 + 1)
    got = await store.pending_approvals()
    assert [(r.id, e.name, e.step) for r, e in got] == [
        ("r1", "refund", "0"),
        ("r1", "email", "1"),
        ("r2", "deploy", "0"),
    ]
    assert got[0][1].data == {"payload": {"n": "refund"}}
    assert got[0][0].status is RunStatus.WAITING
    assert len(await store.pending_approvals(limit=1)) == 1

    await store.deliver(Event("r1", "decision", "0", "refund", {"approved": True}), now=T0 + 3)
    assert [(r.id, e.name) for r, e in await store.pending_approvals()] == [("r1", "email"), ("r2", "deploy")]
    assert await store.cancel_idle("r2", now=T0 + 4) is True
    assert [(r.id, e.name) for r, e in await store.pending_approvals()] == [("r1", "email")]


async def test_next_wakeup(store: Store) -> None:
    assert await store.next_wakeup(["f"]) is None
    await create(store, "pending")  # pending runs are claimable now; they are no timer
    await waiting(store, "no_timer")
    assert await store.next_wakeup(["f"]) is None
    await waiting(store, "later", wake_at=T0 + 300)
    await waiting(store, "sooner", wake_at=T0 + 200)
    await waiting(store, "other", wake_at=T0 + 5, flow="other")
    assert await store.next_wakeup(["f"]) == T0 + 200
    assert await store.next_wakeup(["f", "other"]) == T0 + 5
    assert await store.next_wakeup(["nothing"]) is None
    assert await store.next_wakeup([]) is None
    await held(store, "pending", now=T0 + 10)  # running with a lease until T0 + 10 + LEASE
    assert await store.next_wakeup(["f"]) == T0 + 10 + LEASE


# -- gates, continue-as-new, the global feed, API keys ---------------------------------------------


async def test_deliver_with_a_gate_only_while_it_is_open(store: Store) -> None:
    from podium import SignalRefusedError
    from podium.storage.base import Gate

    await create(store, "r1")
    gate = Gate("milestone", ("milestone_end",), "editable")
    sig = Event("r1", "signal", "k:1", "edit", {"payload": 1}, T0)
    with pytest.raises(SignalRefusedError):
        await store.deliver(sig, now=T0, gate=gate)
    assert [e.kind for e in await store.load_events("r1")] == ["start"]  # nothing stored
    run = await store.claim_run("r1", "w", now=T0, lease_until=T0 + LEASE)
    assert run is not None
    ok = await store.commit(
        "w",
        [Write("r1", [Event("r1", "milestone", "3", "editable", None, T0)])],
        now=T0,
        lease_until=T0 + LEASE,
    )
    assert ok == [Outcome.OK]
    assert await store.deliver(sig, now=T0, gate=gate) is not None
    end = Event("r1", "milestone_end", "3", "editable", None, T0)
    await store.commit("w", [Write("r1", [end])], now=T0, lease_until=T0 + LEASE)
    with pytest.raises(SignalRefusedError):
        await store.deliver(Event("r1", "signal", "k:2", "edit", None, T0), now=T0, gate=gate)


async def test_continue_as_new_keeps_unread_signals_and_takes_the_new_input(store: Store) -> None:
    await create(store, "r1", input={"n": 0})
    read = await store.deliver(Event("r1", "signal", "k:a", "s", {"payload": "a"}, T0), now=T0)
    unread = await store.deliver(Event("r1", "signal", "k:b", "s", {"payload": "b"}, T0), now=T0)
    assert read is not None and unread is not None
    await store.claim_run("r1", "w", now=T0, lease_until=T0 + LEASE)
    step = Event("r1", "step", "0", "x", {"result": 1, "ended": T0}, T0)
    await store.commit("w", [Write("r1", [step])], now=T0, lease_until=T0 + LEASE)
    start = Event("r1", "start", "", "f", {"input": {"n": 1}, "generation": 1}, T0)
    w = Write("r1", [start], transition=Transition.CONTINUE, output={"n": 1}, consumed=(read.seq,))
    assert await store.commit("w", [w], now=T0, lease_until=T0 + LEASE) == [Outcome.OK]
    run = await store.get_run("r1")
    assert run is not None and run.status is RunStatus.PENDING and run.input == {"n": 1}
    assert run.lease_owner is None
    events = await store.load_events("r1")
    assert sorted((e.kind, e.step) for e in events) == [("signal", "k:b"), ("start", "")]
    # The position of the dropped step is free again for the next generation.
    await store.claim_run("r1", "w", now=T0, lease_until=T0 + LEASE)
    again = Event("r1", "step", "0", "x", {"result": 2, "ended": T0}, T0)
    assert await store.commit("w", [Write("r1", [again])], now=T0, lease_until=T0 + LEASE) == [Outcome.OK]


async def test_events_after_is_a_feed_of_all_runs_in_order(store: Store) -> None:
    await create(store, "a")
    await create(store, "b")
    await store.deliver(Event("a", "signal", "k:1", "s", None, T0), now=T0)
    feed = await store.events_after(0)
    assert [(e.run_id, e.kind) for e in feed] == [("a", "start"), ("b", "start"), ("a", "signal")]
    assert [e.seq for e in feed] == sorted(e.seq for e in feed)
    rest = await store.events_after(feed[0].seq, limit=1)
    assert [(e.run_id, e.kind) for e in rest] == [("b", "start")]


async def test_api_keys_are_found_by_hash_until_revoked(store: Store) -> None:
    from podium.storage.base import KeyRecord

    await store.key_add(KeyRecord("k1", "ops", "admin", "h1", T0))
    await store.key_add(KeyRecord("k2", "bot", "viewer", "h2", T0 + 1))
    found = await store.key_find("h2")
    assert found is not None and (found.id, found.role, found.name) == ("k2", "viewer", "bot")
    assert await store.key_find("nope") is None
    assert await store.key_revoke("k2", now=T0 + 2)
    assert not await store.key_revoke("k2", now=T0 + 3)
    assert await store.key_find("h2") is None
    keys = await store.key_list()
    assert [(k.id, k.revoked_at) for k in keys] == [("k1", None), ("k2", T0 + 2)]


# -- datasets, feedback, evaluations (podium.management) ------------------------------------------------


async def test_datasets_are_created_once_and_versioned_by_append(store: Store) -> None:
    from podium.storage.base import DatasetRecord, ItemRecord

    assert await store.dataset_create(DatasetRecord("tickets", "support tickets", T0))
    assert not await store.dataset_create(DatasetRecord("tickets", "again", T0 + 1))
    assert await store.dataset_append("nope", [ItemRecord("a", 1)], now=T0) is None
    d = await store.dataset_get("tickets")
    assert d is not None and (d.description, d.created_at, d.version, d.items) == (
        "support tickets",
        T0,
        0,
        0,
    )
    source = {"run_id": "r1", "step": "0", "model": "m", "prompt": {"name": "p", "version": 3, "label": None}}
    assert (
        await store.dataset_append(
            "tickets",
            [ItemRecord("a", {"text": "hi"}, "greeting", {"lang": "en"}, source), ItemRecord("b", "x")],
            now=T0 + 1,
        )
        == 2
    )
    assert await store.dataset_append("tickets", [ItemRecord("a", {"text": "hi"}, "hello")], now=T0 + 2) == 3
    items = await store.dataset_items("tickets")
    assert [(i.id, i.expected, i.version) for i in items] == [("a", "hello", 3), ("b", None, 2)]
    assert items[0].created_at == T0 + 2 and items[0].metadata == {} and items[0].source is None
    old = await store.dataset_items("tickets", version=2)
    assert [(i.id, i.expected) for i in old] == [("a", "greeting"), ("b", None)]
    assert old[0].metadata == {"lang": "en"} and old[0].source == source and old[0].input == {"text": "hi"}
    d = await store.dataset_get("tickets")
    assert d is not None and (d.version, d.items) == (3, 2)
    await store.dataset_create(DatasetRecord("a-first", "", T0))
    assert [x.name for x in await store.dataset_list()] == ["a-first", "tickets"]
    assert await store.dataset_get("missing") is None and await store.dataset_items("missing") == []


async def test_feedback_is_kept_once_per_id_newest_first(store: Store) -> None:
    from podium.storage.base import FeedbackRecord

    first = FeedbackRecord(
        "f1", "r1", "1", "rating", step_name="model:triage", score=-1, comment="wrong team",
        model="fast", served_by="fast", prompt={"name": "triage", "version": 2, "label": "production"},
        created_at=T0,
    )  # fmt: skip
    assert await store.feedback_add(first)
    assert not await store.feedback_add(FeedbackRecord("f1", "r1", "1", "rating", score=1, created_at=T0))
    edit = FeedbackRecord(
        "f2", "r2", "0", "approval", original={"amount": 90}, correction={"amount": 50}, author="ann",
        created_at=T0 + 1,
    )  # fmt: skip
    assert await store.feedback_add(edit)
    assert [f.id for f in await store.feedback_list()] == ["f2", "f1"]
    (got,) = await store.feedback_list(run_id="r1")
    assert got == first
    (got,) = await store.feedback_list(run_id="r2")
    assert got == edit
    assert [f.id for f in await store.feedback_list(limit=1)] == ["f2"]


async def test_evaluations_and_their_results_are_stored_and_replaced(store: Store) -> None:
    from podium.storage.base import EvalRecord, EvalResultRecord

    rec = EvalRecord("e1", "tickets", 3, "triage", {"A": {"prompt:triage": "3"}}, ["exact"], created_at=T0)
    await store.eval_put(rec)
    await store.eval_put(EvalRecord("e2", "other", 1, "f", {"base": {}}, ["regex"], created_at=T0 + 1))
    assert await store.eval_get("e1") == rec and await store.eval_get("nope") is None
    assert [e.id for e in await store.eval_list()] == ["e2", "e1"]
    assert [e.id for e in await store.eval_list(dataset="tickets")] == ["e1"]
    rec.status, rec.finished_at, rec.summary = "finished", T0 + 5, {"A": {"n": 2}}
    await store.eval_put(rec)
    assert await store.eval_get("e1") == rec
    r1 = EvalResultRecord("e1", "B", "a", "run1", {"label": "x"}, {"exact": 1.0, "regex": None}, 0.5, 1.5,
                          None, T0)  # fmt: skip
    r2 = EvalResultRecord("e1", "A", "b", None, None, {"exact": 0.0}, 0.0, 0.0, "boom", T0 + 1)
    r3 = EvalResultRecord("e1", "A", "a", "run3", "ok", {"exact": 1.0}, 0.25, 0.5, None, T0 + 2)
    await store.eval_results_put([r1, r2])
    await store.eval_results_put([r3, EvalResultRecord("e2", "A", "a", "r", 1, {}, created_at=T0)])
    await store.eval_results_put([])
    assert await store.eval_results("e1") == [r2, r3, r1]
    r2b = EvalResultRecord("e1", "A", "b", "run2", "fine", {"exact": 1.0}, 0.1, 0.2, None, T0 + 1)
    await store.eval_results_put([r2b])
    assert await store.eval_results("e1") == [r2b, r3, r1]
    assert await store.eval_results("none") == []


# -- payloads and retention (podium.storage.payloads) -----------------------------------------------

BIG = "context " * 2_000  # 16 KB: above the payload threshold
ODD = {"$payload": "not a reference", "bytes": 3, "text": "é" * 5_000}  # user data that looks like one


async def step_run(
    store: Store, run_id: str, results: list[Any], *, flow: str = "f", end: bool = True
) -> None:
    """A run whose steps returned ``results``; completed with the last one as output when ``end``."""
    await create(store, run_id, flow=flow, input={"doc": BIG, "n": len(results)})
    await held(store, run_id)
    events = [
        Event(run_id, "step", str(i), "s", {"result": r, "attempts": 1, "started": T0, "ended": T0 + 1})
        for i, r in enumerate(results)
    ]
    w = Write(run_id, events)
    if end:
        events.append(Event(run_id, "end", "", None, {"status": "completed", "output": results[-1]}))
        w = Write(run_id, events, transition=Transition.COMPLETE, output=results[-1])
    assert await commit1(store, "w1", w) is Outcome.OK


async def test_large_values_read_back_exactly_everywhere(store: Store) -> None:
    results: list[Any] = [
        BIG,
        {"text": BIG, "i": 1},
        [BIG, BIG + "x"],
        ODD,
        [ODD] * 3,
        "small",
        {"$payload": 1},
    ]
    await step_run(store, "r1", results)
    steps = [e for e in await store.load_events("r1") if e.kind == "step"]
    assert [e.data["result"] for e in steps] == results
    assert steps[0].data["attempts"] == 1
    run = await store.get_run("r1")
    assert run is not None and run.input == {"doc": BIG, "n": len(results)} and run.output == results[-1]
    assert [r.input for r in await store.list_runs()] == [run.input]
    feed = [e for e in await store.events_after(0) if e.kind == "step"]
    assert [e.data["result"] for e in feed] == results


async def test_a_claimed_run_and_a_parents_child_done_carry_large_values(store: Store) -> None:
    await create(store, "p")
    await held(store, "p")
    await create(store, "c", parent=("p", "0"), input=BIG)
    claimed = await store.claim("w2", ["f"], now=T0 + 3, lease_until=T0 + 60, limit=5)
    assert [r.input for r in claimed if r.id == "c"] == [BIG]
    w = Write("c", [Event("c", "end", "", None, {"status": "completed", "output": [BIG]})])
    w.transition, w.output = Transition.COMPLETE, [BIG]
    assert await commit1(store, "w2", w, now=T0 + 4) is Outcome.OK
    done = [e for e in await store.load_events("p") if e.kind == "child_done"]
    assert len(done) == 1 and done[0].data["output"] == [BIG]


async def test_gc_keeps_the_skeleton_of_old_finished_runs_and_drops_their_payloads(store: Store) -> None:
    await step_run(store, "old", [BIG + "old"])
    done = await store.collect_payloads(ended_before=T0 + 100)
    assert done.runs == 1 and done.bytes > 0
    steps = [e for e in await store.load_events("old") if e.kind == "step"]
    data = steps[0].data
    assert (data["attempts"], data["started"], data["ended"]) == (1, T0, T0 + 1)
    assert data["result"]["expired_payload"] is None or len(data["result"]["expired_payload"]) == 64
    assert data["result"]["bytes"] >= len(BIG)
    run = await store.get_run("old")
    assert run is not None and run.status is RunStatus.COMPLETED and "expired_payload" in run.output
    again = await store.collect_payloads(ended_before=T0 + 100)
    assert again.runs == 0 and again.payloads == 0


async def test_gc_never_drops_what_an_unfinished_run_references(store: Store) -> None:
    await step_run(store, "done", [BIG])  # the same value as ...
    await step_run(store, "live", [BIG], end=False)  # ... this running run's
    await create(store, "parent")
    await held(store, "parent")
    await create(store, "child", parent=("parent", "0"))
    await held(store, "child")
    end = Event("child", "end", "", None, {"status": "completed", "output": BIG + "child"})
    assert await commit1(store, "w1", Write("child", [end], Transition.COMPLETE, output=BIG + "child")) is (
        Outcome.OK
    )
    await store.collect_payloads(ended_before=T0 + 1_000)
    live = [e.data["result"] for e in await store.load_events("live") if e.kind == "step"]
    assert live == [BIG]
    run = await store.get_run("live")
    assert run is not None and run.input["doc"] == BIG
    child = await store.get_run("child")  # its parent runs on: it may still read the child's output
    assert child is not None and child.output == BIG + "child"
    done = [e for e in await store.load_events("parent") if e.kind == "child_done"]
    assert done[0].data["output"] == BIG + "child"


async def test_gc_by_flow_and_not_before_the_cutoff(store: Store) -> None:
    await step_run(store, "a", [BIG + "a"], flow="A")
    await step_run(store, "b", [BIG + "b"], flow="B")
    assert (await store.collect_payloads(ended_before=T0)).runs == 0  # ended at T0 + 2: too recent
    assert (await store.collect_payloads(ended_before=T0 + 10, exclude=["A", "B"])).runs == 0
    assert (await store.collect_payloads(ended_before=T0 + 10, flows=["B"])).runs == 1
    a = [e.data["result"] for e in await store.load_events("a") if e.kind == "step"]
    b = [e.data["result"] for e in await store.load_events("b") if e.kind == "step"]
    assert a == [BIG + "a"] and "expired_payload" in b[0]


async def test_storage_usage_by_flow_and_age(store: Store) -> None:
    await step_run(store, "a", [BIG], flow="A")
    await step_run(store, "b", [BIG], flow="B")
    usage = await store.storage_usage(now=T0 + 10 * 86_400)
    assert {(u.flow, u.age, u.runs) for u in usage} == {("A", "7-30d", 1), ("B", "7-30d", 1)}
    assert all(u.journal_bytes > 0 for u in usage)


# -- token streams ------------------------------------------------------------------------------------


async def test_a_token_stream_reads_in_order_and_a_second_epoch_starts_with_a_reset(store: Store) -> None:
    await create(store, "r1")
    await create(store, "r2")
    assert await store.stream_begin("r1", "0", now=T0) == 1
    await store.stream_append("r1", "0", 1, 0, "Hello ", now=T0)
    await store.stream_append("r2", "0", 1, 0, "other run", now=T0)
    await store.stream_append("r1", "0", 1, 6, "wor", now=T0)
    assert await store.stream_begin("r1", "1", now=T0) == 1  # another step: its own epochs
    assert await store.stream_begin("r1", "0", now=T0 + 1) == 2  # the step streams again (a retry)
    await store.stream_append("r1", "0", 2, 0, "Hello world", now=T0 + 1)
    chunks = await store.stream_read("r1")
    assert [(c.step, c.epoch, c.offset, c.text) for c in chunks] == [
        ("0", 1, 0, "Hello "),
        ("0", 1, 6, "wor"),
        ("0", 2, 0, None),
        ("0", 2, 0, "Hello world"),
    ]
    assert [c.id for c in chunks] == sorted(c.id for c in chunks)
    later = await store.stream_read("r1", after=chunks[1].id)
    assert [c.text for c in later] == [None, "Hello world"]
    assert [c.text for c in await store.stream_read("r1", after=chunks[0].id, limit=1)] == ["wor"]
    assert await store.stream_read("nope") == []


async def test_a_token_stream_is_fenced_by_the_lease(store: Store) -> None:
    await create(store, "r1")
    assert await store.stream_begin("r1", "0", now=T0, owner="w1") is None  # pending: nobody holds it
    await held(store, "r1", "w1")
    assert await store.stream_begin("r1", "0", now=T0, owner="w1") == 1
    assert await store.stream_append("r1", "0", 1, 0, "mine", now=T0, owner="w1") is True
    assert await store.stream_append("r1", "0", 1, 4, "zombie", now=T0, owner="w2") is False
    assert await store.stream_begin("r1", "0", now=T0, owner="w2") is None
    assert [c.text for c in await store.stream_read("r1")] == ["mine"]


async def test_runs_keep_their_tenant_and_list_by_tenant(store: Store) -> None:
    for i, tenant in enumerate(["acme", "globex", "acme", "default"]):
        rec = RunRecord(
            f"t{i}", "f", RunStatus.PENDING, None, created_at=T0 + i, updated_at=T0 + i, tenant=tenant
        )
        await store.create_run(rec, Event(rec.id, "start", "", "f", None, T0 + i))
    got = await store.get_run("t1")
    assert got is not None and got.tenant == "globex"
    assert [r.id for r in await store.list_runs(tenant="acme")] == ["t2", "t0"]
    assert [r.id for r in await store.list_runs(tenant="acme", limit=1, before="t2")] == ["t0"]
    assert [r.id for r in await store.list_runs(tenant="nobody")] == []
    assert len(await store.list_runs()) == 4
    await create(store, "plain", at=T0 + 9)
    plain = await store.get_run("plain")
    assert plain is not None and plain.tenant == "default"


async def test_api_keys_keep_their_tenant_and_expiry(store: Store) -> None:
    from podium.storage.base import KeyRecord

    await store.key_add(KeyRecord("k1", "acme-ops", "operator", "h1", T0, None, "acme", T0 + 60))
    await store.key_add(KeyRecord("k2", "root", "admin", "h2", T0 + 1))
    one = await store.key_find("h1")
    assert one is not None and (one.tenant, one.expires_at) == ("acme", T0 + 60)
    two = await store.key_find("h2")
    assert two is not None and (two.tenant, two.expires_at) == (None, None)
    assert [(k.id, k.tenant) for k in await store.key_list()] == [("k1", "acme"), ("k2", None)]


# -- prompt registry ------------------------------------------------------------------------------


def prompt(name: str, hash: str, template: str = "t", **kw: Any) -> Any:
    from podium.storage.base import PromptRecord

    return PromptRecord(name=name, version=0, hash=hash, template=template, created_at=T0, **kw)


async def test_prompt_versions_are_numbered_per_name_and_unique_per_hash(store: Store) -> None:
    v1, created = await store.prompt_push(
        prompt("triage", "h1", "Hi {{ x }}", system="S", variables=["x"], model="fast", params={"t": 0.1})
    )
    assert created and v1.version == 1
    assert (v1.template, v1.system, v1.variables, v1.model, v1.params) == (
        "Hi {{ x }}",
        "S",
        ["x"],
        "fast",
        {"t": 0.1},
    )
    v2, created = await store.prompt_push(prompt("triage", "h2", metadata={"by": "ann"}))
    assert created and v2.version == 2
    again, created = await store.prompt_push(prompt("triage", "h1", "ignored"))
    assert not created and again.version == 1 and again.template == "Hi {{ x }}"
    other, _ = await store.prompt_push(prompt("answer", "h1"))
    assert other.version == 1
    got = await store.prompt_get("triage", 2)
    assert got is not None and got.metadata == {"by": "ann"} and got.hash == "h2"
    assert await store.prompt_get("triage", 3) is None
    assert [p.version for p in await store.prompt_versions("triage")] == [1, 2]
    assert await store.prompt_versions("nope") == []
    assert [(p.name, p.version) for p in await store.prompt_latest()] == [("answer", 1), ("triage", 2)]


async def test_prompt_labels_move_with_a_revision_and_a_history(store: Store) -> None:
    for h in ("a", "b", "c"):
        await store.prompt_push(prompt("p", h))
    assert await store.prompt_label("p", "production") is None
    first = await store.prompt_move("p", "production", 1, now=T0)
    assert (first.version, first.rev) == (1, 1)
    await store.prompt_move("p", "staging", 3, now=T0 + 1)
    moved = await store.prompt_move("p", "production", 2, now=T0 + 2)
    assert (moved.version, moved.rev) == (2, 2)
    back = await store.prompt_move("p", "production", 1, now=T0 + 3, rollback=True)
    assert back.rev == 3
    found = await store.prompt_label("p", "production")
    assert found is not None and (found.version, found.rev, found.updated_at) == (1, 3, T0 + 3)
    assert [(lb.label, lb.version) for lb in await store.prompt_labels("p")] == [
        ("production", 1),
        ("staging", 3),
    ]
    moves = await store.prompt_moves("p", "production")
    assert [(m.from_version, m.to_version, m.rollback) for m in moves] == [
        (None, 1, False),
        (1, 2, False),
        (2, 1, True),
    ]


async def test_prompt_splits_keep_their_arms_in_order(store: Store) -> None:
    assert await store.prompt_split("p") is None
    await store.prompt_split_put("p", {"production": 90, "3": 10}, now=T0)
    assert list((await store.prompt_split("p") or {}).items()) == [("production", 90), ("3", 10)]
    await store.prompt_split_put("p", {"staging": 100}, now=T0 + 1)
    assert await store.prompt_split("p") == {"staging": 100}
    await store.prompt_split_put("p", None, now=T0 + 2)
    assert await store.prompt_split("p") is None
