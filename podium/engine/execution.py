"""One claimed run, executed: replay its journal, run the flow code, journal every new effect.

Finished positions return their journaled outcome without running anything. New effects run and are
appended to the journal (committed) before the flow moves on. When every branch of the flow waits for the
outside world (a signal, an approval, a child run, a long timer) the run is **quiescent**: it is suspended
in the store (status ``waiting``) and leaves memory; any worker resumes it later by replay.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import (
    ApplicationError,
    InvalidInputError,
    NondeterminismError,
    RunCancelledError,
    RunError,
    RunFailedError,
    RunTimeoutError,
    StepError,
)
from ..hooks import EngineEvent, model_data, notify
from ..storage.base import Event, Outcome, RunRecord, Transition, Write
from ..types import JSON
from ..workflow.branches import Branch, Join, Region, Undo, is_doomed, reap, wait_join
from ..workflow.context import Approval, Context, ContinueAsNew, Scope, enter_scope
from ..workflow.flow import Flow
from ..workflow.step import StepInfo, StepOptions, _scope
from .codec import PydanticSerializationError, describe_error, from_json, to_json
from .streams import TokenPublisher

_enter = _scope.set
_exit = _scope.reset

if TYPE_CHECKING:
    from .worker import Worker


# Journal event kinds that occupy a position in the flow.
POSITIONAL = frozenset(
    {"step", "value", "timer", "approval", "receive", "child", "join", "milestone", "patch"}
)

MAX_DEPTH = 100
"""How deep child runs may nest (a flow that starts itself as a child must stop somewhere)."""


_HALTS = frozenset({"suspend", "shutdown", "lease_lost", "store"})


class Abort(BaseException):
    """Internal: stop executing this run now (lease lost, store failure, suspended). Not an error of
    the flow, so it derives from BaseException and flow code cannot swallow it."""


@dataclass(slots=True)
class _Wait:
    kind: str  # "timer" | "signal" | "approval" | "child"
    future: asyncio.Future[Any]
    name: str = ""
    fire_at: float | None = None
    woken: bool = False


class Execution:
    """The engine's side of a running flow; implements ``workflow.context.Driver``."""

    def __init__(self, worker: Worker, run: RunRecord, flow: Flow[Any, Any], events: list[Event]) -> None:
        self.worker = worker
        self.clock = worker.clock
        self.models = worker.models
        self.cache = worker.cache
        self.store = worker.store
        self.durable = worker.store.durable
        self.run = run
        self.run_id = run.id
        self.flow = flow
        self.active = 1
        self.blocked = 0
        self.spent = 0.0  # dollars of model calls so far, accumulated in code order (same on replay)
        self.budget = flow.budget
        self.daily_budget = flow.daily_budget
        self.positions: dict[str, Event] = {}
        self.decisions: dict[str, Event] = {}
        self.children: dict[str, Event] = {}
        self.signals: list[Event] = []
        self.consumed: set[int] = set()
        self.failed_attempts: dict[str, int] = {}
        self.cancel_requested = False
        self.last_seq = 0
        self.seen_inbox = run.inbox_seq
        self.buffer: list[Event] = []
        self.transition: Write | None = None
        self.waits: dict[str, _Wait] = {}
        self.stop_reason: str | None = None
        self.nondeterminism: NondeterminismError | None = None
        self.task: asyncio.Task[Any] | None = None
        self._settling = False
        self._refreshing = False
        self.suspending = False  # a SUSPEND write is being committed
        self.ending = False  # the run's end is being committed (its lease goes with it)
        self._in_flow = False
        self._unsettled: asyncio.Future[Outcome] | None = None
        self.loop = asyncio.get_running_loop()
        self.observers = worker.observers
        self.root = Region("", None)
        self.resumed_at = self.clock()
        self.cancelled_regions: set[str] = set()
        self.detached: set[Branch] = set()
        self.main: Scope | None = None
        self.listening: set[str] = set()  # positions of signal waits journaled as open
        self.closed_waits: set[str] = set()  # ... and those journaled as given up (cancelled)
        self.generation = 0  # how many times the run continued as new
        self.depth = 0  # how many parents it has
        self.pins: dict[str, str] = {}  # the run's pins (``Client.start(pins=)``), inherited by children
        for e in events:
            self._index(e)
        self.has_children = any(e.kind == "child" for e in self.positions.values())

    # -- journal index ------------------------------------------------------------------------
    def _index(self, e: Event) -> None:
        if e.seq > self.last_seq:
            self.last_seq = e.seq
        kind = e.kind
        if kind in POSITIONAL:
            self.positions[e.step] = e
            if kind == "receive":
                self.consumed.add(e.data["seq"])
        elif kind == "attempt":
            sid, _, n = e.step.rpartition("@")
            self.failed_attempts[sid] = max(self.failed_attempts.get(sid, 0), int(n))
        elif kind == "decision":
            self.decisions[e.step] = e
            self._resolve(e.step, "approval", e)
        elif kind == "child_done":
            self.children[e.step] = e
            self._resolve(e.step, "child", e)
        elif kind == "signal":
            self.signals.append(e)
            self._match_signals()
        elif kind == "cancelled":
            self.cancelled_regions.add(e.step)
        elif kind == "listen":
            self.listening.add(e.step)
        elif kind in ("unlisten", "milestone_end", "withdrawn"):
            self.closed_waits.add(e.step)
        elif kind == "start":
            data = e.data or {}
            self.generation = data.get("generation", 0)
            self.depth = data.get("depth", 0)
            self.pins = dict(data.get("pins") or {})
        elif kind == "cancel":
            self.cancel_requested = True
            if self.task is not None:
                self.stop("cancel")

    def _resolve(self, sid: str, kind: str, value: Any) -> None:
        w = self.waits.get(sid)
        if w is not None and w.kind == kind:
            self._wake(w, value)

    def _wake(self, w: _Wait, value: Any) -> None:
        """Answer a wait. Its branch counts as active from this moment, not from when it resumes, so the
        run cannot be suspended in between (that would strand an answer already consumed)."""
        if self.suspending:
            # A suspend is being committed: once it is, the run leaves memory, and a branch woken now could
            # start work that the stop would cut short (and a later execution repeat). Wake it only if the
            # suspend is refused; if it succeeds, the next execution finds the timer due by itself.
            self.loop.call_later(0.005, self._wake, w, value)
            return
        if not w.future.done():
            w.future.set_result(value)
            w.woken = True
            self.blocked -= 1
            self.active += 1

    def _match_signals(self) -> None:
        for w in list(self.waits.values()):
            if w.kind != "signal" or w.future.done():
                continue
            sig = self._next_signal(w.name)
            if sig is not None:
                self.consumed.add(sig.seq)
                self._wake(w, sig)

    def _next_signal(self, name: str) -> Event | None:
        for s in self.signals:
            if s.name == name and s.seq not in self.consumed:
                return s
        return None

    def _lookup(self, scope: Scope, sid: str, kind: str, name: str) -> Event | None:
        """The journaled event at ``sid``; ``None`` if it is new, which a cancelled region refuses."""
        if sid not in self.positions and is_doomed(scope.region):
            raise asyncio.CancelledError
        return self._journaled(sid, kind, name)

    def _journaled(self, sid: str, kind: str, name: str) -> Event | None:
        ev = self.positions.get(sid)
        if ev is None:
            if self.worker.replay_only:
                err = NondeterminismError(
                    run_id=self.run_id,
                    position=sid,
                    journaled="nothing (the journal ends here)",
                    requested=f"{kind} {name!r}",
                )
                self.nondeterminism = self.nondeterminism or err
                raise err
            return None
        if ev.kind != kind or ev.name != name:
            err = NondeterminismError(
                run_id=self.run_id,
                position=sid,
                journaled=f"{ev.kind} {ev.name!r}",
                requested=f"{kind} {name!r}",
            )
            self.nondeterminism = self.nondeterminism or err
            raise err
        return ev

    # -- writing ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock()

    async def flush(self, transition: Write | None = None) -> Outcome:
        """Commit buffered events (and an optional transition); returns the outcome for this run."""
        if transition is not None:
            self.transition = transition
        elif not self.durable:  # nothing to wait for: the journal is visible from the next loop turn
            self.worker.committer.request_nowait(self)
            return Outcome.OK
        if self.durable:
            earlier, self._unsettled = self._unsettled, None
            outcome = await self.worker.committer.request(self)  # joins the batch of `earlier` if it waits
            if earlier is not None and outcome is Outcome.OK:
                outcome = await earlier
        else:  # an in-memory transition: commit inline, no batching needed
            now = self.clock()
            lease_until = now + self.worker.settings.lease_seconds
            outcome = (
                await self.store.commit(
                    self.worker.owner, [self.take_write()], now=now, lease_until=lease_until
                )
            )[0]
        if outcome is Outcome.LEASE_LOST:
            self.stop("lease_lost")
            raise Abort("lease lost")
        return outcome

    async def wait_durable(self) -> None:
        """Wait until everything journaled so far is committed. Called before any new effect starts, so
        a step's result is on disk before the next step's body (or any wait, or the run's end) runs;
        pure flow code between two steps need not wait for the disk."""
        fut, self._unsettled = self._unsettled, None
        if fut is not None and await fut is Outcome.LEASE_LOST:
            self.stop("lease_lost")
            raise Abort("lease lost")

    def take_write(self) -> Write:
        events, self.buffer = self.buffer, []
        w = self.transition
        self.transition = None
        if w is None:
            return Write(self.run_id, events)
        w.events = events + w.events
        return w

    def _append(self, kind: str, sid: str, name: str | None, data: JSON) -> Event:
        e = Event(self.run_id, kind, sid, name, data, self._now())
        self.buffer.append(e)
        return e

    # -- Driver: steps ------------------------------------------------------------------------
    async def step(
        self,
        scope: Scope,
        sid: str,
        options: StepOptions,
        fn: Callable[..., Any],
        is_async: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        name = options.name
        if self.stop_reason is not None:
            self._check_halt()
        ev = self.positions.get(sid)
        if (
            ev is None
            and (scope.region.doomed or scope.region.parent is not None)
            and is_doomed(scope.region)
        ):
            raise asyncio.CancelledError  # a cancelled region starts nothing new (also on replay)
        if ev is not None or self.worker.replay_only:
            ev = self._journaled(sid, "step", name)
        if ev is not None:
            data = ev.data
            if "error" in data:
                err = data["error"]
                raise StepError(
                    err.get("message", ""),
                    type=err.get("type"),
                    retryable=bool(err.get("retryable")),
                    step=sid,
                    name=name,
                    attempts=data.get("attempts", 1),
                )
            result = from_json(fn, data["result"]) if self.durable else data["result"]
            ended = data["ended"]
            if ended > scope.at:
                scope.at = ended
            if name[0] in "me" and options.priced:
                self.spent += float(getattr(result, "cost", 0.0) or 0.0)
            if options.compensate is not None:
                scope.region.undo.append(Undo(options.compensate, sid, ended, args, kwargs, result))
            return result
        if self._unsettled is not None:
            await self.wait_durable()
        attempt = self.failed_attempts.get(sid, 0)
        started = self.clock()
        scope.step_id = sid
        scope.step_name = name
        policy = options.retry
        if self.observers:
            self._tell("step.started", sid, name, attempt=attempt + 1, started=started)
        while True:
            attempt += 1
            scope.in_step = scope.fresh = True  # fresh: this branch can only finish later than now
            scope.attempt = attempt
            try:
                if options.ray is not None:  # a Ray task (podium.engine.ray_executor)
                    info = StepInfo(self.run_id, sid, name, attempt)
                    remote = self.worker.ray.run(options.ray, fn, is_async, args, kwargs, info)
                    if options.timeout is None:
                        result = await remote
                    else:
                        async with asyncio.timeout(options.timeout):
                            result = await remote
                elif is_async:
                    if options.timeout is None:
                        result = await fn(*args, **kwargs)
                    else:
                        async with asyncio.timeout(options.timeout):
                            result = await fn(*args, **kwargs)
                else:
                    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
                    fut = self.loop.run_in_executor(None, call)
                    if options.timeout is None:
                        result = await fut
                    else:
                        async with asyncio.timeout(options.timeout):
                            result = await fut
                if self.durable:
                    try:
                        stored = to_json(result)
                    except PydanticSerializationError as exc:
                        raise StepError(
                            f"step {name!r} returned a value that cannot be journaled as JSON: {exc}",
                            type="UnserializableResult",
                            retryable=False,
                            step=sid,
                            name=name,
                        ) from None
                else:
                    stored = result
            except Exception as exc:
                error = describe_error(exc)
                if isinstance(exc, TimeoutError) and options.timeout is not None:
                    error["message"] = f"step {name!r} attempt {attempt} timed out after {options.timeout}s"
                retryable = error["retryable"] and not isinstance(exc, policy.non_retryable)
                if retryable and attempt < policy.max_attempts:
                    delay = policy.delay(attempt)
                    if self.observers:
                        self._tell(
                            "step.retrying", sid, name, attempt=attempt, error=error, data={"delay": delay}
                        )
                    self._append("attempt", f"{sid}@{attempt}", name, {"error": error, "delay": delay})
                    self.worker.committer.request_nowait(self)  # journal the attempt; no need to wait
                    await asyncio.sleep(delay)
                    continue
                error["retryable"] = retryable
                self._append(
                    "step",
                    sid,
                    name,
                    {
                        "error": error,
                        "attempts": attempt,
                        "started": started,
                        "ended": self._now(),
                    },
                )
                if self.observers:
                    self._tell(
                        "step.ended", sid, name, "failed", attempt, started, self.clock() - started, error
                    )
                await self.flush()
                raise StepError(
                    error["message"],
                    type=error["type"],
                    retryable=retryable,
                    step=sid,
                    name=name,
                    attempts=attempt,
                ) from exc
            finally:
                scope.in_step = scope.fresh = False
            ended = self.clock()
            data = {"result": stored, "attempts": attempt, "started": started, "ended": ended}
            if options.compensate is not None:
                data["undo"] = True  # a cancel must let a worker run its compensation
            self.buffer.append(Event(self.run_id, "step", sid, name, data, ended))
            if self.durable:  # committed before the next effect starts (wait_durable)
                self._unsettled = self.worker.committer.request(self)
            else:
                self.worker.committer.request_nowait(self)
            scope.at = ended
            if self.observers:
                data = model_data(result) if options.priced else None
                self._tell("step.ended", sid, name, "ok", attempt, started, ended - started, data=data)
            if options.compensate is not None:
                scope.region.undo.append(Undo(options.compensate, sid, ended, args, kwargs, result))
            if name[0] in "me" and options.priced:
                cost = float(getattr(result, "cost", 0.0) or 0.0)
                self.spent += cost
                if cost > 0:  # the flow's daily spending (a crash before the commit may count a call twice)
                    await self.store.spend_add(self.flow.name, self._day(), cost)
            return result

    def _tell(
        self,
        kind: Any,
        position: str = "",
        name: str = "",
        status: str = "",
        attempt: int = 0,
        started: float | None = None,
        duration: float | None = None,
        error: Any = None,
        data: Any = None,
    ) -> None:
        event = EngineEvent(
            kind,
            self.run_id,
            self.flow.name,
            self.clock(),
            position,
            name,
            status,
            attempt,
            started,
            duration,
            error,
            self.run.parent_id,
            data,
        )
        notify(self.observers, event)

    def _day(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")

    async def spent_today(self) -> float:
        """Dollars this run's flow spent on model calls today (UTC), across all its runs."""
        return await self.store.spend_get(self.flow.name, self._day())

    def token_stream(self, sid: str) -> TokenPublisher | None:
        if self.worker.replay_only:
            return None
        return TokenPublisher(self.worker.store, self.run_id, sid, self.clock, self.worker.owner)

    def record(self, sid: str, name: str, produce: Callable[[], JSON]) -> JSON:
        self._check_halt()
        ev = self._journaled(sid, "value", name)
        if ev is not None:
            return ev.data
        value = produce()
        self._append("value", sid, name, value)
        self.worker.committer.request_nowait(self)  # committed before (or with) anything that needs it
        return value

    async def record_async(self, sid: str, name: str, produce: Callable[[], Awaitable[JSON]]) -> JSON:
        self._check_halt()
        ev = self._journaled(sid, "value", name)
        if ev is not None:
            return ev.data
        value = await produce()
        self._check_halt()
        self._append("value", sid, name, value)
        self.worker.committer.request_nowait(self)
        return value

    def held(self, sid: str) -> tuple[str, str] | None:
        """The kind and name of what the journal holds at ``sid`` (None past its end)."""
        ev = self.positions.get(sid)
        return None if ev is None else (ev.kind, ev.name or "")

    def patched(self, scope: Scope, name: str) -> bool:
        """``ctx.patched``: True (and a ``patch`` marker journaled) where the run meets the change for the
        first time; False, taking no position, where the journal holds what older code did here."""
        self._check_halt()
        sid = scope.prefix + str(scope.n)
        ev = self.positions.get(sid)
        if ev is not None:
            if ev.kind == "patch" and ev.name == name:
                scope.n += 1
                return True
            return False  # a run that passed here before the change: keep its old path
        if self.worker.replay_only:
            return False  # a recorded journal that holds no marker here was written by the old code
        scope.n += 1
        self._append("patch", sid, name, None)
        self.worker.committer.request_nowait(self)
        return True

    # -- Driver: waiting ----------------------------------------------------------------------
    async def _block(
        self, scope: Scope, sid: str, kind: str, name: str = "", fire_at: float | None = None
    ) -> Any:
        if is_doomed(scope.region):  # a cancelled region never starts waiting (also on replay)
            raise asyncio.CancelledError
        fut: asyncio.Future[Any] = self.loop.create_future()
        w = _Wait(kind, fut, name, fire_at)
        self.waits[sid] = w
        self.blocked += 1
        self.active -= 1
        handle = None
        if fire_at is not None:
            handle = self.loop.call_later(max(0.0, fire_at - self._now()), self._wake, w, None)
        if kind == "signal":
            self._match_signals()
        self.settle()
        scope.fresh = True
        try:
            return await fut
        except asyncio.CancelledError:
            if w.woken and kind == "signal" and fut.result() is not None:
                # answered, then cancelled before it could journal the receipt: the signal stays unread
                self.consumed.discard(fut.result().seq)
                self._match_signals()
            raise
        finally:
            scope.fresh = False
            if not w.woken:  # cancelled while waiting
                self.blocked -= 1
                self.active += 1
            self.waits.pop(sid, None)
            if handle is not None:
                handle.cancel()

    async def sleep(self, scope: Scope, sid: str, seconds: float) -> None:
        self._check_halt()
        ev = self._lookup(scope, sid, "timer", "sleep")
        if ev is None:
            fire_at = self._now() + seconds
            self._append("timer", sid, "sleep", {"fire_at": fire_at, "seconds": seconds})
            await self.flush()
        else:
            fire_at = ev.data["fire_at"]
        remaining = fire_at - self._now()
        if remaining > 0:
            if remaining <= self.worker.settings.hold_seconds and not is_doomed(scope.region):
                scope.fresh = True
                try:
                    await asyncio.sleep(remaining)
                finally:
                    scope.fresh = False
            else:
                await self._block(scope, sid, "timer", "sleep", fire_at)
        if fire_at > scope.at:
            scope.at = fire_at

    async def wait_signal(self, scope: Scope, sid: str, name: str) -> JSON:
        self._check_halt()
        ev = self._lookup(scope, sid, "receive", name)
        if ev is not None:
            sent = ev.data.get("sent", ev.at)
            if sent > scope.at:
                scope.at = sent
            return ev.data["payload"]
        sig = self._next_signal(name)
        if sig is not None:
            self.consumed.add(sig.seq)
        else:
            if sid not in self.listening:  # journaled as open, so a transient signal may be accepted
                self.listening.add(sid)
                self._append("listen", sid, name, None)
                self.worker.committer.request_nowait(self)
            try:
                sig = await self._block(scope, sid, "signal", name)
            except asyncio.CancelledError:
                if self.stop_reason not in _HALTS and f"{sid}" not in self.closed_waits:
                    self.closed_waits.add(sid)  # this wait is over for good: refuse transient signals
                    self._append("unlisten", sid, name, None)
                    self.worker.committer.request_nowait(self)
                raise
        payload = (sig.data or {}).get("payload")
        self._append(
            "receive", sid, name, {"seq": sig.seq, "payload": payload, "key": sig.step, "sent": sig.at}
        )
        if sig.at > scope.at:
            scope.at = sig.at
        await self.flush()
        return payload

    async def approval(self, scope: Scope, sid: str, name: str, payload: JSON) -> Approval:
        self._check_halt()
        ev = self._lookup(scope, sid, "approval", name)
        if ev is None:
            payload = to_json(payload)
            self._append("approval", sid, name, {"payload": payload})
            await self.flush()
        else:
            payload = ev.data["payload"]
        dec = self.decisions.get(sid)
        if dec is None:
            try:
                dec = await self._block(scope, sid, "approval", name)
            except asyncio.CancelledError:
                if self.stop_reason not in _HALTS and sid not in self.closed_waits:
                    self.closed_waits.add(sid)  # withdrawn: it leaves the reviewers' inbox
                    self._append("withdrawn", sid, name, None)
                    self.worker.committer.request_nowait(self)
                raise
        if dec.at > scope.at:
            scope.at = dec.at
        d = dec.data
        edited = bool(d.get("edited"))
        return Approval(
            approved=bool(d["approved"]),
            payload=d.get("payload") if edited else payload,
            by=d.get("by"),
            comment=d.get("comment"),
            edited=edited,
        )

    async def child(self, scope: Scope, sid: str, flow: Flow[Any, Any], input: Any) -> Any:
        self._check_halt()
        ev = self._lookup(scope, sid, "child", flow.name)
        self.has_children = True
        if ev is None:
            if self.depth + 1 > MAX_DEPTH:
                raise ApplicationError(
                    f"child runs nest deeper than {MAX_DEPTH} levels "
                    "(a flow that starts itself needs a base case)",
                    type="RecursionLimit",
                    retryable=False,
                )
            await self.wait_durable()
            child = await self.worker.start_child(self.run, sid, flow, input, self.depth + 1, self.pins)
            self._append("child", sid, flow.name, {"run_id": child.id})
            await self.flush()
            self.worker.poke(child.id)
            child_id = child.id
        else:
            child_id = ev.data["run_id"]
        done = self.children.get(sid)
        if done is None:
            try:
                done = await self._block(scope, sid, "child", flow.name)
            except asyncio.CancelledError:
                if self.stop_reason is None:  # a cancelled region or race: the child run goes too
                    await self.wait_durable()
                    await self.worker.cancel_run(child_id)
                raise
        if done.at > scope.at:
            scope.at = done.at
        d = done.data
        if d["status"] == "completed":
            out = d.get("output")
            return flow.load_output(out)  # outputs are stored in JSON form
        if d["status"] == "cancelled":
            raise RunCancelledError(d["run_id"])
        raise RunFailedError(d["run_id"], d.get("error") or {})

    # -- Driver: races, regions, compensation -------------------------------------------------
    def joined(self, sid: str, name: str) -> Any:
        self._check_halt()
        ev = self._journaled(sid, "join", name)
        return None if ev is None else ev.data

    def record_join(self, sid: str, name: str, data: JSON) -> None:
        self._check_halt()
        self._append("join", sid, name, data)
        if self.durable:  # on disk before the next effect starts (a compensation, a child's cancel, ...)
            self._unsettled = self.worker.committer.request(self)
        else:
            self.worker.committer.request_nowait(self)

    def region_doomed(self, sid: str) -> bool:
        return sid in self.cancelled_regions

    def record_cancel(self, sid: str) -> None:
        if self.stop_reason in _HALTS or sid in self.cancelled_regions:
            return
        self.cancelled_regions.add(sid)
        self._append("cancelled", sid, None, None)
        self.worker.committer.request_nowait(self)

    async def compensate(self, region: Region) -> None:
        """Run ``region``'s compensations, newest first, each a journaled step at ``<region>~<k>``.
        A failing compensation is journaled as a failed step and does not stop the others."""
        if self.stop_reason in _HALTS:
            return
        undo = region.pop_undo()
        if not undo:
            return
        scope = Scope(self, "", asyncio.current_task())
        scope.region = Region("", None)  # compensations run even inside a cancelled region
        _scope_token = _enter(scope)
        try:
            for k, u in enumerate(undo):
                kwargs = dict(u.kwargs)
                if u.comp.wants_result:
                    kwargs["result"] = u.result
                try:
                    await self.step(
                        scope, f"{region.sid}~{k}", u.comp.options, u.comp.fn, u.comp.is_async, u.args, kwargs
                    )
                except StepError:
                    pass  # journaled; the other compensations still run
        finally:
            _exit(_scope_token)

    def add_detached(self, branch: Branch) -> None:
        self.detached.add(branch)

    async def milestone(self, scope: Scope, sid: str, name: str, entering: bool) -> None:
        if entering:
            self._check_halt()
            if self._lookup(scope, sid, "milestone", name) is None:
                await self.wait_durable()
                self._append("milestone", sid, name, None)
                await self.flush()
        elif sid not in self.closed_waits and self.stop_reason not in _HALTS:
            self.closed_waits.add(sid)
            self._append("milestone_end", sid, name, None)
            await self.flush()

    async def _finish_detached(self, scope: Scope) -> None:
        """The flow returned: wait for work it started and never awaited (``ctx.start``)."""
        pending = [b for b in self.detached if not b.finished]
        if pending:
            join = Join(lambda j, b: all(x.finished for x in pending))
            for b in pending:
                b.joins.append(join)
            await wait_join(self, scope, join)
        reap(list(self.detached))

    async def _cancel_detached(self) -> None:
        pending = [b for b in self.detached if not b.finished and b.task is not None]
        for b in pending:
            if b.region is not None and not b.region.cancelled:
                b.region.cancelled = b.region.doomed = True
            assert b.task is not None
            b.task.cancel()
        if pending:
            await asyncio.wait([b.task for b in pending if b.task is not None])
        reap(list(self.detached))

    # -- quiescence, inbox, stopping ----------------------------------------------------------
    def settle(self) -> None:
        if self.active <= 0 and self.blocked > 0 and not self._settling and self.stop_reason is None:
            self._settling = True
            self.loop.call_soon(self._check_quiescent)

    def quiescent(self) -> bool:
        """No branch can move without the outside world (and at least one waits for it)."""
        return self.active <= 0 and self.blocked > 0 and self.stop_reason is None

    def _check_quiescent(self) -> None:
        self._settling = False
        if self.quiescent():
            self.loop.create_task(self._suspend())

    async def _suspend(self) -> None:
        if not self.quiescent():
            return
        timers = [w.fire_at for w in self.waits.values() if w.fire_at is not None and not w.future.done()]
        if self.run.deadline is not None:
            timers.append(self.run.deadline)
        wake_at = min(timers) if timers else None
        w = Write(self.run_id, transition=Transition.SUSPEND, wake_at=wake_at, seen_inbox=self.seen_inbox)
        self.suspending = True  # nothing wakes until the store said yes or no
        try:
            outcome = await self.flush(w)
        except Abort:
            return
        finally:
            if self.stop_reason is None:
                self.suspending = False
        if outcome is Outcome.OK:
            self.suspending = True
            self.stop("suspend")
            self.stop("suspend")
            if self.observers:
                self._tell("run.suspended", data={"wake_at": wake_at})
        elif outcome is Outcome.INBOX_CHANGED:
            await self.refresh()
            self.settle()

    async def refresh(self) -> None:
        """Read inbox events that arrived since the journal was loaded (signals, decisions, cancel)."""
        if self._refreshing or self.stop_reason is not None or self.suspending:
            return
        self._refreshing = True
        try:
            run = await self.store.get_run(self.run_id)
            if run is None:
                return
            events = await self.store.load_events(self.run_id, after=self.last_seq)
            if self.suspending or self.stop_reason is not None:
                return  # the run is leaving memory: the next execution (or the refused suspend) reads them
            for e in events:
                self._index(e)
            self.seen_inbox = max(self.seen_inbox, run.inbox_seq)
        finally:
            self._refreshing = False

    def _check_halt(self) -> None:
        """Refuse new effects once the engine stopped this run (suspend, shutdown, lost lease, store error):
        flow code unwinding through ``finally`` must not start steps the run has not reached."""
        if self.stop_reason in _HALTS:
            raise Abort(f"run {self.run_id} is stopping ({self.stop_reason})")

    def stop(self, reason: str) -> None:
        """Stop the flow's task: 'suspend', 'cancel', 'timeout', 'lease_lost', 'store', 'shutdown'."""
        if self.stop_reason is None:
            self.stop_reason = reason
            if self._in_flow and self.task is not None and not self.task.done():
                self.task.cancel()

    # -- the whole run ------------------------------------------------------------------------
    async def execute(self) -> str:
        """Run the flow to its next stop; returns the reason it stopped or the final status."""
        run = self.run
        try:
            if self.cancel_requested:
                if not any(e.kind == "step" for e in self.positions.values()):
                    return await self._end(Transition.CANCEL, error=_cancelled())
                # Cancelled while no worker held it: replay what it did, refusing anything new, so that
                # the compensations of its completed steps run before it ends.
                self.stop_reason = "cancel"
                self.root.cancelled = self.root.doomed = True
            if run.deadline is not None and run.deadline <= self._now():
                return await self._end(Transition.FAIL, error=RunTimeoutError("the run timed out").to_dict())
            try:
                value = self.flow.validate_input(run.input)
            except InvalidInputError as exc:
                return await self._end(Transition.FAIL, error={**describe_error(exc), "retryable": False})
            ctx = Context(self, run_id=run.id, flow=self.flow.name, attempt=run.claims, tenant=run.tenant)
            if self.observers:
                self._tell("run.claimed", attempt=run.claims, started=run.created_at)
            # The flow runs in this very task (one task per run); stop() cancels it while flow code runs.
            self.task = asyncio.current_task()
            prefix = f"{self.generation}/" if self.generation else ""  # positions of this generation
            self.root.sid = prefix
            self.main = main = Scope(self, prefix, self.task)
            enter_scope(main)
            deadline = None
            if run.deadline is not None:
                deadline = self.loop.call_later(run.deadline - self._now(), self.stop, "timeout")
            self._in_flow = True
            try:
                if self.flow.takes_input:
                    output = await self.flow.fn(ctx, value)
                else:
                    output = await self.flow.fn(ctx)
                if self.detached:
                    await self._finish_detached(main)
            except asyncio.CancelledError:
                if self.stop_reason is None:
                    if self.task is not None and self.task.cancelling():
                        raise  # cancelled from outside (the worker is going away)
                    # Raised by the flow's own code (it awaited work it had cancelled): a failure.
                    self._in_flow = False
                    await self._roll_back()
                    error = {
                        "type": "CancelledError",
                        "message": "the flow raised asyncio.CancelledError (it awaited a task it had "
                        "cancelled?); catch it, or check handle.done() first",
                        "retryable": False,
                    }
                    return await self._end(Transition.FAIL, error=error)
                if self.task is not None:
                    self.task.uncancel()
                self._in_flow = False
                return await self._stopped()
            except Abort:
                return self.stop_reason or "aborted"
            except ContinueAsNew as again:
                self._in_flow = False
                return await self._continue(again.input)
            except Exception as exc:
                if self.nondeterminism is not None:
                    return await self._end(Transition.FAIL, error=self.nondeterminism.to_dict())
                if isinstance(exc, StepError | RunError):
                    error = exc.to_dict()
                else:
                    error = {**describe_error(exc), "retryable": False}
                self._in_flow = False
                await self._roll_back()
                return await self._end(Transition.FAIL, error=error)
            finally:
                self._in_flow = False
                if deadline is not None:
                    deadline.cancel()
            if self.nondeterminism is not None:
                return await self._end(Transition.FAIL, error=self.nondeterminism.to_dict())
            if self.stop_reason == "cancel":  # cancelled, but its code had nothing left to refuse
                await self._roll_back()
                return await self._end(Transition.CANCEL, error=_cancelled())
            try:
                stored = self.flow.dump_output(output)
            except Exception as exc:
                error = {
                    "type": "InvalidOutput",
                    "message": f"flow output cannot be stored: {exc}",
                    "retryable": False,
                }
                return await self._end(Transition.FAIL, error=error)
            return await self._end(Transition.COMPLETE, output=stored)
        except Abort:
            return self.stop_reason or "aborted"

    async def _continue(self, input: Any) -> str:
        """Continue-as-new: one commit swaps the journal for a fresh one with the new input."""
        if self.nondeterminism is not None:
            return await self._end(Transition.FAIL, error=self.nondeterminism.to_dict())
        try:
            data = self.flow.dump_input(self.flow.validate_input(input))
        except Exception as exc:
            error = {**describe_error(exc), "retryable": False}
            return await self._end(Transition.FAIL, error=error)
        if self.detached:
            await self._cancel_detached()
        await self.wait_durable()
        start = {
            "input": data,
            "generation": self.generation + 1,
            "depth": self.depth,
            "version": self.flow.version,
        }
        if self.pins:
            start["pins"] = self.pins
        self.buffer = [Event(self.run_id, "start", "", self.flow.name, start, self._now())]
        consumed = tuple(sorted(self.consumed))
        await self.flush(Write(self.run_id, transition=Transition.CONTINUE, output=data, consumed=consumed))
        if self.has_children:
            await self.worker.cancel_children(self.run_id)
        if self.observers:
            self._tell("run.ended", status="continued", started=self.run.created_at)
        return "continued"

    async def _roll_back(self) -> None:
        """The run failed or was cancelled: stop the work it started and compensate what it completed."""
        if self.detached:
            await self._cancel_detached()
        if self.main is not None:
            token = _enter(self.main)
            try:
                await self.compensate(self.root)
            finally:
                _exit(token)

    async def _stopped(self) -> str:
        reason = self.stop_reason or "shutdown"
        if reason == "cancel":
            await self._roll_back()
            return await self._end(Transition.CANCEL, error=_cancelled())
        if reason == "timeout":
            await self._roll_back()
            return await self._end(Transition.FAIL, error=RunTimeoutError("the run timed out").to_dict())
        if reason == "shutdown":  # what finished before the stop is kept; nothing started after it
            await self.flush(Write(self.run_id, transition=Transition.RELEASE))
        return reason

    async def _end(
        self, transition: Transition, *, output: JSON = None, error: dict[str, Any] | None = None
    ) -> str:
        data: dict[str, Any] = {"status": transition.value}
        if transition is Transition.COMPLETE:
            data["output"] = output
        else:
            data["error"] = error
        self.buffer.append(Event(self.run_id, "end", "", None, data, self._now()))
        self.ending = True
        await self.flush(Write(self.run_id, transition=transition, output=output, error=error))
        if self.observers:
            now = self.clock()
            self._tell(
                "run.ended",
                status=transition.value,
                started=self.run.created_at,
                duration=now - self.run.created_at,
                error=error,
            )
        if self.has_children:
            await self.worker.cancel_children(self.run_id)  # no orphans: a child outlives no parent
        return transition.value


def _cancelled() -> dict[str, Any]:
    return {"type": "Cancelled", "message": "cancelled", "retryable": False}
