"""The engine's side of steps and journaled values (``Execution`` inherits it): a journaled position
returns its recorded outcome; a new one runs (with its retry policy and timeout) and is journaled."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ..errors import StepError
from ..hooks import model_data
from ..storage.base import Event
from ..types import JSON
from ..workflow.branches import Undo, is_doomed
from ..workflow.context import Scope
from ..workflow.step import StepInfo, StepOptions
from .codec import PydanticSerializationError, describe_error, from_json, to_json
from .run_state import _RunState
from .streams import TokenPublisher


class _Steps(_RunState):
    """Steps, values and patches: the Driver methods that take a position and never wait for the world."""

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
                    # journal the attempt; no need to wait
                    self.worker.committer.request_nowait(self._ex)
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
                self._unsettled = self.worker.committer.request(self._ex)
            else:
                self.worker.committer.request_nowait(self._ex)
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
        # committed before (or with) anything that needs it
        self.worker.committer.request_nowait(self._ex)
        return value

    async def record_async(self, sid: str, name: str, produce: Callable[[], Awaitable[JSON]]) -> JSON:
        self._check_halt()
        ev = self._journaled(sid, "value", name)
        if ev is not None:
            return ev.data
        value = await produce()
        self._check_halt()
        self._append("value", sid, name, value)
        self.worker.committer.request_nowait(self._ex)
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
        self.worker.committer.request_nowait(self._ex)
        return True
