"""The engine's side of waiting for the world (``Execution`` inherits it): timers, signals, approvals and
child runs, and **quiescence**: when every branch of the flow waits, the run is suspended in the store and
leaves memory."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import ApplicationError, RunCancelledError, RunFailedError
from ..storage.base import Outcome, Transition, Write
from ..types import JSON
from ..workflow.branches import is_doomed
from ..workflow.context import Approval, Scope
from ..workflow.flow import Flow
from .codec import to_json
from .run_state import _HALTS, MAX_DEPTH, Abort, _Wait
from .steps import _Steps


class _Waits(_Steps):
    """Waits for the outside world and suspending the run once nothing else can move."""

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
                self.worker.committer.request_nowait(self._ex)
            try:
                sig = await self._block(scope, sid, "signal", name)
            except asyncio.CancelledError:
                if self.stop_reason not in _HALTS and f"{sid}" not in self.closed_waits:
                    self.closed_waits.add(sid)  # this wait is over for good: refuse transient signals
                    self._append("unlisten", sid, name, None)
                    self.worker.committer.request_nowait(self._ex)
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
                    self.worker.committer.request_nowait(self._ex)
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
