"""One run's in-memory state while it executes: the index of its journal, the events waiting to be committed,
and how the engine stops it.

``Execution`` (``podium.engine.execution``) builds on it: steps and values (``.steps``), waits and
quiescence (``.waits``), then races, compensation and the run's end.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NondeterminismError
from ..hooks import EngineEvent, notify
from ..storage.base import Event, Outcome, RunRecord, Write
from ..types import JSON
from ..workflow.branches import Branch, Region, is_doomed
from ..workflow.context import Scope
from ..workflow.flow import Flow

if TYPE_CHECKING:
    from .execution import Execution
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


class _RunState:
    """The state of one executing run and its journal index; see ``Execution``."""

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

    @property
    def _ex(self) -> Execution:
        """This state as the ``Execution`` it is part of (what the committer takes)."""
        return self  # type: ignore[return-value]

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
            self.worker.committer.request_nowait(self._ex)
            return Outcome.OK
        if self.durable:
            earlier, self._unsettled = self._unsettled, None
            # joins the batch of `earlier` if it waits
            outcome = await self.worker.committer.request(self._ex)
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
