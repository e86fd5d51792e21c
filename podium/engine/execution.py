"""One claimed run, executed: replay its journal, run the flow code, journal every new effect.

Finished positions return their journaled outcome without running anything. New effects run and are
appended to the journal (committed) before the flow moves on. When every branch of the flow waits for the
outside world (a signal, an approval, a child run, a long timer) the run is **quiescent**: it is suspended
in the store (status ``waiting``) and leaves memory; any worker resumes it later by replay.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import InvalidInputError, RunError, RunTimeoutError, StepError
from ..storage.base import Event, Transition, Write
from ..types import JSON
from ..workflow.branches import Branch, Join, Region, reap, wait_join
from ..workflow.context import Context, ContinueAsNew, Scope, enter_scope
from ..workflow.step import _scope
from .codec import describe_error
from .run_state import _HALTS, MAX_DEPTH, POSITIONAL, Abort
from .waits import _Waits

__all__ = ["MAX_DEPTH", "POSITIONAL", "Abort", "Execution"]

_enter = _scope.set
_exit = _scope.reset


class Execution(_Waits):
    """The engine's side of a running flow; implements ``workflow.context.Driver``.

    Built in layers: its state and journal index (``.run_state``), steps (``.steps``), waits and
    quiescence (``.waits``); here races, regions, compensation and the run from start to end."""

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
            ctx = Context(
                self,
                run_id=run.id,
                flow=self.flow.name,
                attempt=run.claims,
                tenant=run.tenant,
                subject=run.subject,
            )
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
