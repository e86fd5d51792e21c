"""The control plane: start, get, list, cancel, signal, approve. The CLI and the server use it too.

```python
async with podium.Client() as client:                 # settings from PODIUM_* variables
    handle = await client.start(checkout, order, key="order-42")   # idempotent on key
    receipt = await handle.result()
```
By default a ``Client`` also runs a worker in its process for the flows registered here, so a script needs
nothing else; pass ``worker=False`` for a pure control-plane client (``podium worker`` runs elsewhere).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .client_erasure import ErasureMixin, check_subject
from .client_journal import JournalMixin
from .client_keys import KeysMixin
from .client_management import _UNSET, ManagementMixin
from .client_schedules import SchedulesMixin
from .config import Settings
from .engine.codec import to_json
from .engine.timeline import ModelUsage, TimelineRow, timeline, usage
from .engine.worker import Worker, cancel_children, request_cancel
from .errors import (
    InvalidStateError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    SignalRefusedError,
    StoreError,
    UsageError,
)
from .hooks import Observer
from .management.prompts import Prompts
from .observability.audit import Auditor
from .policies import configure as configure_policies
from .policies import enforce as _policies
from .policies.access import DEFAULT_TENANT, Permissions, check_tenant
from .policies.engine import Facts
from .policies.engine import active as active_policies
from .records import (
    FeedEntry,
    JournalEntry,
    PendingApproval,
    ReplayReport,
    Run,
)
from .runtime import close_observers, make_observers, make_store
from .storage.audit import AuditDraft
from .storage.base import Event, Gate, RunRecord, Store
from .types import JSON, Clock, Duration, RunStatus, check_pins, new_id, parse_duration
from .workflow.flow import Flow, registered, resolve_flow

if TYPE_CHECKING:
    pass

log = logging.getLogger("podium.client")

if TYPE_CHECKING:
    pass

T = TypeVar("T")


class RunHandle(Generic[T]):
    """A started run. ``await handle.result()`` waits for its output."""

    def __init__(
        self, client: Client, run_id: str, flow: Flow[Any, T] | None, *, created: bool = False
    ) -> None:
        self._client = client
        self.id = run_id
        self._flow = flow
        self.created = created
        """True if the ``start`` that returned this handle created the run (False: its key named a run
        that existed already)."""

    async def result(self, *, timeout: Duration | None = None) -> T:
        """Wait for the run to finish; its output, or ``RunFailedError`` / ``RunCancelledError``."""
        return await self._client.result(self.id, timeout=timeout)  # type: ignore[no-any-return]

    async def get(self) -> Run:
        return await self._client.get(self.id)

    async def cancel(self) -> Run:
        return await self._client.cancel(self.id)

    async def signal(
        self,
        name: str,
        payload: JSON = None,
        *,
        key: str | None = None,
        transient: bool = False,
        milestone: str | None = None,
    ) -> bool:
        """``Client.signal`` to this run."""
        return await self._client.signal(
            self.id, name, payload, key=key, transient=transient, milestone=milestone
        )

    def __repr__(self) -> str:
        return f"<RunHandle {self.id}>"


class Client(KeysMixin, SchedulesMixin, ManagementMixin, JournalMixin, ErasureMixin):
    """Start and steer runs. Use as ``async with Client() as c: ...``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        worker: bool = True,
        clock: Clock = time.time,
        observers: Iterable[Observer] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.observers: tuple[Observer, ...] = () if observers is None else tuple(observers)
        self._own_observers = observers is None  # built from the settings when the worker starts
        self.clock = clock
        self.store = store or make_store(self.settings)
        self.auditor: Auditor | None = None
        """Records security-relevant events in the store's audit trail (None with ``audit=False``)."""
        if self.settings.audit:
            self.auditor = Auditor(self.store, key_path=self.settings.audit_key_path, clock=clock)
        self.permissions = Permissions.from_config(self.settings.config)
        """The ``[[permissions]]`` rules of ``podium.toml`` that bound clients (``acting_as``) enforce."""
        configure_policies(self.settings.config.get("policies"))
        self.prompts = Prompts(self.store, clock=clock)
        """The prompt registry in this client's store: push, label, rollback, diff, split."""
        self._want_worker = worker
        self.worker: Worker | None = None
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._open = False

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self._open:
            return
        if self._want_worker and self._own_observers:
            self.observers = tuple(make_observers(self.settings, store=self.store))
        await self.store.open()
        self._open = True
        if self._want_worker:
            self.worker = Worker(
                self.store,
                self.settings,
                on_finish=self._finished,
                clock=self.clock,
                observers=self.observers,
            )
            await self.worker.start()

    async def close(self) -> None:
        if not self._open:
            return
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
        if self.auditor is not None:
            try:
                await self.auditor.close()  # a last signed checkpoint
            except Exception as exc:
                log.warning("could not sign the audit trail's checkpoint: %s", exc)
        if self._own_observers:
            close_observers(self.observers)
            self.observers = ()
        await self.store.close()
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise UsageError("the client is not open: use `async with podium.Client() as client:`")

    # -- runs ---------------------------------------------------------------------------------
    async def start(
        self,
        flow: Flow[Any, T] | str,
        input: Any = None,
        *,
        key: str | None = None,
        timeout: Duration | None = None,
        by: str | None = None,
        priority: int = 0,
        pins: Mapping[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        subject: str | None = None,
    ) -> RunHandle[T]:
        """Start a run of ``flow``. With ``key``, starting again returns the same run (idempotent).

        Runnable runs are claimed highest ``priority`` first (then oldest first); child runs inherit it.

        ``pins`` fix choices for the whole run (journaled, inherited by child runs): ``{"model:default":
        "smart"}`` makes ``ctx.model("default")`` call the model ``smart``; ``{"prompt:triage": "3"}`` pins
        a prompt version (or a label); other keys are the flow's own, read with ``ctx.pins``.

        ``timeout`` bounds the whole run (default: the flow's own ``timeout``). ``by`` (who asked) is
        journaled with the start. The run belongs to ``tenant`` (its child runs too); a ``key`` taken by a run
        of another tenant is refused with ``InvalidStateError``.

        ``subject`` names the person whose data the run holds (a user id): ``erase_subject`` erases it later
        (and the run never writes the shared response cache).
        """
        self._check_open()
        check_tenant(tenant)
        check_subject(subject)
        fl = resolve_flow(flow)
        if key is not None and (not isinstance(key, str) or not key):
            raise UsageError("key must be a non-empty string")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise UsageError(f"priority must be an integer, not {priority!r}")
        pinned = check_pins(pins)
        value = fl.validate_input(input)
        data = fl.dump_input(value)
        seconds = parse_duration(timeout) if timeout is not None else fl.timeout
        now = self.clock()
        run = RunRecord(
            id=new_id(),
            flow=fl.name,
            status=RunStatus.PENDING,
            input=data,
            key=key,
            created_at=now,
            updated_at=now,
            deadline=None if seconds is None else now + seconds,
            priority=priority,
            queue=fl.queue,
            tenant=tenant,
            subject=subject,
        )
        lease = None if self.worker is None else self.worker.lease_new(fl.name)
        if lease is not None:  # created already claimed by our worker: one transaction fewer
            run.status, run.lease_owner, run.lease_until, run.claims = (
                RunStatus.RUNNING,
                lease[0],
                lease[1],
                1,
            )
        start: dict[str, Any] = {"input": data, "version": fl.version}
        if by is not None:
            start["by"] = by
        if pinned:
            start["pins"] = pinned
        first = Event(run.id, "start", "", fl.name, start, now)
        if len(active_policies()):  # podium.policies at run.start: a deny changes nothing
            facts = {"flow": fl.name, "input": data, "pins": pinned or {}, "by": by, "key": key}
            facts["tenant"] = (pinned or {}).get("tenant") if tenant == DEFAULT_TENANT else tenant
            await _policies.control(self._audit_store, "run.start", Facts(facts), subject=run.id, actor=by)
        rec, created = await self.store.create_run(run, first)
        if not created and rec.tenant != tenant:
            raise InvalidStateError(f"key {key!r} is in use; choose another")
        if not created and rec.flow != fl.name:
            raise InvalidStateError(f"key {key!r} belongs to run {rec.id} of flow {rec.flow!r}")
        if created and self.auditor is not None:
            await self.auditor.record_many([_started(rec, by, key, pinned)])
        if self.worker is not None and not rec.status.terminal:
            if created and lease is not None:
                await self.worker.adopt(rec, [first])
            elif not await self.worker.take(rec.id):
                self.worker.poke(rec.id)
        return RunHandle(self, rec.id, fl, created=created)

    @property
    def _audit_store(self) -> Store | None:
        return self.store if self.auditor is not None else None

    def handle(self, run_id: str) -> RunHandle[Any]:
        """A handle for an existing run."""
        return RunHandle(self, run_id, None)

    async def _record(self, run_id: str) -> RunRecord:
        self._check_open()
        if not isinstance(run_id, str) or not run_id:
            raise UsageError("a run id must be a non-empty string")
        rec = await self.store.get_run(run_id)
        if rec is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return rec

    async def get(self, run_id: str) -> Run:
        """The run's current state. ``RunNotFoundError`` if there is none."""
        return Run._of(await self._record(run_id))

    async def list(
        self,
        *,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        flow: str | None = None,
        limit: int = 50,
        before: str | None = None,
        tenant: str | None = None,
    ) -> builtins.list[Run]:
        """Runs, newest first. ``before`` is the last id of the previous page; ``tenant`` keeps that
        tenant's runs only."""
        self._check_open()
        if not 1 <= limit <= 1000:
            raise UsageError("limit must be between 1 and 1000")
        statuses = None
        if status is not None:
            items = [status] if isinstance(status, str | RunStatus) else list(status)
            try:
                statuses = [RunStatus(s) for s in items]
            except ValueError:
                valid = ", ".join(s.value for s in RunStatus)
                raise UsageError(f"unknown status in {items!r}; use one of {valid}") from None
        rows = await self.store.list_runs(
            status=statuses, flow=flow, limit=limit, before=before, tenant=tenant
        )
        return [Run._of(r) for r in rows]

    async def result(self, run_id: str, *, timeout: Duration | None = None) -> Any:
        """Wait for the run to finish and return its output (see ``RunHandle.result``)."""
        deadline = None if timeout is None else time.monotonic() + parse_duration(timeout)
        while True:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(run_id, []).append(fut)
            try:
                rec = await self._record(run_id)
                if rec.status.terminal:
                    return self._outcome(rec)
                wait = self.settings.poll_seconds
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"run {run_id} is still {rec.status.value}")
                    wait = min(wait, left)
                try:
                    async with asyncio.timeout(wait):
                        await fut
                except TimeoutError:
                    pass
            finally:
                waiters = self._waiters.get(run_id)
                if waiters is not None:
                    if fut in waiters:
                        waiters.remove(fut)
                    if not waiters:
                        del self._waiters[run_id]

    def _outcome(self, rec: RunRecord) -> Any:
        if rec.status is RunStatus.COMPLETED:
            fl = registered().get(rec.flow)
            if fl is not None:  # outputs are stored in JSON form: rebuild the annotated type
                return fl.load_output(rec.output)
            return rec.output
        if rec.status is RunStatus.CANCELLED:
            raise RunCancelledError(rec.id)
        raise RunFailedError(rec.id, rec.error or {})

    def _finished(self, run_id: str, outcome: str) -> None:
        for fut in self._waiters.get(run_id, ()):
            if not fut.done():
                fut.set_result(None)

    # -- steering -----------------------------------------------------------------------------
    async def _deliver(self, event: Event, gate: Gate | None = None) -> Event | None:
        stored = await self.store.deliver(event, now=self.clock(), gate=gate)
        if stored is not None and self.worker is not None:
            self.worker.notify_inbox(event.run_id)
        return stored

    async def cancel(self, run_id: str, *, by: str | None = None) -> Run:
        """Cancel a run. Idempotent: cancelling a cancelled run returns it unchanged.

        A pending or waiting run is cancelled at once; a running one as soon as its worker notices
        (within a heartbeat), its in-flight steps interrupted. ``by`` is journaled with the request.
        """
        rec = await self._record(run_id)
        if rec.status is RunStatus.CANCELLED:
            return Run._of(rec)
        if rec.status.terminal:
            raise InvalidStateError(f"run {run_id} is {rec.status.value}; it cannot be cancelled")
        request = Event(run_id, "cancel", "", None, None if by is None else {"by": by}, self.clock())
        try:
            idle = await request_cancel(self.store, request, self.clock())
        except InvalidStateError:
            rec = await self._record(run_id)
            if rec.status is RunStatus.CANCELLED:
                return Run._of(rec)
            raise
        if self.auditor is not None:
            facts = {"flow": rec.flow, "tenant": rec.tenant}
            await self.auditor.record("run.cancelled", subject=run_id, actor=by, payload=facts)
        if idle:
            self._finished(run_id, "cancelled")
            await cancel_children(self.store, run_id, self.clock())
        elif self.worker is not None:
            self.worker.notify_inbox(run_id)
        return await self.get(run_id)

    async def signal(
        self,
        run_id: str,
        name: str,
        payload: JSON = None,
        *,
        key: str | None = None,
        transient: bool = False,
        milestone: str | None = None,
        by: str | None = None,
    ) -> bool:
        """Send signal ``name`` to a run (``ctx.wait_for_signal(name)`` receives it). True if delivered.

        Signals are **persistent**: one sent before the flow waits is kept and goes to the first matching
        wait, in the order sent. With ``key``, sending the same signal again is a no-op (returns False).
        A ``transient`` signal is delivered only if the run is waiting for it right now; otherwise it is
        dropped and this returns False. With ``milestone``, the signal is accepted only while the run is
        inside ``ctx.milestone(milestone)``; otherwise ``SignalRefusedError`` is raised and nothing changes.
        """
        if not isinstance(name, str) or not name:
            raise UsageError("a signal needs a non-empty name")
        if milestone is not None and (not isinstance(milestone, str) or not milestone):
            raise UsageError("milestone must be a non-empty string")
        await self._record(run_id)
        try:
            data = {"payload": to_json(payload)}
        except Exception as exc:
            raise UsageError(f"signal payload is not JSON-serializable: {exc}") from None
        if by is not None:
            data["by"] = by
        event = Event(
            run_id, "signal", f"k:{key}" if key else f"u:{uuid.uuid4().hex}", name, data, self.clock()
        )
        if milestone is not None:
            try:
                return (
                    await self._deliver(event, Gate("milestone", ("milestone_end",), milestone)) is not None
                )
            except SignalRefusedError:
                raise SignalRefusedError(
                    f"run {run_id} is not in milestone {milestone!r}; signal {name!r} refused"
                ) from None
        if transient:
            try:
                return await self._deliver(event, Gate("listen", ("receive", "unlisten"), name)) is not None
            except SignalRefusedError:
                return False  # nothing waits for it: dropped
        return await self._deliver(event) is not None

    async def pending_approvals(self, run_id: str | None = None) -> builtins.list[PendingApproval]:
        """Approvals waiting for a decision (all runs, or one run), oldest first."""
        self._check_open()
        if run_id is not None:
            await self._record(run_id)
            pairs = [(r, e) for r, e in await self.store.pending_approvals(limit=1000) if r.id == run_id]
        else:
            pairs = await self.store.pending_approvals(limit=1000)
        return [
            PendingApproval(r.id, r.flow, e.name or "", e.step, (e.data or {}).get("payload"), e.at)
            for r, e in pairs
        ]

    async def approve(
        self,
        run_id: str,
        name: str | None = None,
        *,
        payload: JSON = _UNSET,
        by: str | None = None,
        comment: str | None = None,
    ) -> PendingApproval:
        """Approve the run's pending approval (``name`` picks one if several wait).

        ``payload`` replaces what the flow proposed (a human correction); the flow receives it.
        Deciding twice raises ``InvalidStateError``; only the first decision counts.
        """
        return await self._decide(run_id, name, True, payload, by, comment)

    async def reject(
        self, run_id: str, name: str | None = None, *, by: str | None = None, comment: str | None = None
    ) -> PendingApproval:
        """Reject the run's pending approval."""
        return await self._decide(run_id, name, False, _UNSET, by, comment)

    async def _decide(
        self,
        run_id: str,
        name: str | None,
        approved: bool,
        payload: JSON,
        by: str | None,
        comment: str | None,
    ) -> PendingApproval:
        rec = await self._record(run_id)
        events = await self.store.load_events(run_id)
        decided = {e.step for e in events if e.kind in ("decision", "withdrawn")}
        requests = [e for e in events if e.kind == "approval" and (name is None or e.name == name)]
        pending = [e for e in requests if e.step not in decided]
        if not pending or rec.status.terminal:
            state = f"the run is {rec.status.value}"
            if requests:
                which = f"approval {name!r}" if name else "its approval"
                raise InvalidStateError(f"{which} of run {run_id} was decided already ({state})")
            what = f"an approval named {name!r}" if name else "a pending approval"
            raise InvalidStateError(f"run {run_id} is not waiting for {what} ({state})")
        if len(pending) > 1 and name is None:
            names = ", ".join(sorted({e.name or "" for e in pending}))
            raise UsageError(f"run {run_id} waits for several approvals ({names}); name the one to decide")
        target = pending[0]
        data: dict[str, Any] = {"approved": approved, "by": by, "comment": comment, "edited": False}
        if payload is not _UNSET:
            try:
                data["payload"] = to_json(payload)
            except Exception as exc:
                raise UsageError(f"edited payload is not JSON-serializable: {exc}") from None
            data["edited"] = True
        if len(active_policies()):  # podium.policies at approval: a deny changes nothing
            facts = {"run_id": run_id, "flow": rec.flow, "approval": target.name, "approved": approved}
            facts.update(by=by, comment=comment, payload=(target.data or {}).get("payload"))
            facts["edited"], facts["tenant"] = data["edited"], rec.tenant
            await _policies.control(self._audit_store, "approval", Facts(facts), subject=run_id, actor=by)
        gate = Gate("approval", ("decision", "withdrawn"), target.name or "")
        try:
            stored = await self._deliver(
                Event(run_id, "decision", target.step, target.name, data, self.clock()), gate
            )
        except SignalRefusedError:
            raise InvalidStateError(f"approval {target.name!r} of run {run_id} was withdrawn") from None
        if stored is None:
            raise InvalidStateError(f"approval {target.name!r} of run {run_id} was decided already")
        if self.auditor is not None:
            summary = {k: v for k, v in data.items() if k != "payload"}
            summary["approval"], summary["tenant"] = target.name, rec.tenant
            await self.auditor.record("approval.decided", subject=run_id, actor=by, payload=summary)
        if data["edited"]:  # a human correction is data: keep the proposal and the edit
            from .management.feedback import approval_feedback

            try:
                await approval_feedback(self, target, data["payload"], by=by, comment=comment)
            except StoreError as exc:  # the decision counts; only its feedback record is missing
                log.warning("approval %s of run %s: feedback not recorded: %s", target.name, run_id, exc)
        return PendingApproval(
            run_id, rec.flow, target.name or "", target.step, (target.data or {}).get("payload"), target.at
        )

    # -- reading ------------------------------------------------------------------------------
    async def journal(self, run_id: str) -> builtins.list[JournalEntry]:
        """The run's journal, in order."""
        await self._record(run_id)
        return [
            JournalEntry(e.seq, e.kind, e.step, e.name, to_json(e.data), e.at)  # JSON from every store
            for e in await self.store.load_events(run_id)
        ]

    async def usage(self, run_id: str) -> ModelUsage:
        """The run's model calls: count, cache hits, tokens and dollars."""
        await self._record(run_id)
        return usage(await self.store.load_events(run_id))

    async def usage_by_flow(self, *, flow: str | None = None, limit: int = 1000) -> dict[str, ModelUsage]:
        """Model usage summed per flow over the newest ``limit`` runs (of one flow, or all)."""
        totals: dict[str, ModelUsage] = {}
        for run in await self.list(flow=flow, limit=limit):
            totals.setdefault(run.flow, ModelUsage()).add(usage(await self.store.load_events(run.id)))
        return totals

    async def tenant_spend(self, tenant: str = DEFAULT_TENANT, *, day: str | None = None) -> float:
        """Dollars the model calls of ``tenant``'s runs cost on ``day`` (``YYYY-MM-DD``, UTC; default today):
        the figure a ``projected_tenant_cost_today`` budget policy checks."""
        self._check_open()
        check_tenant(tenant)
        when = day or datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")
        return float(await self.store.spend_get(f"tenant:{tenant}", when))

    async def feed(self, after: int = 0, *, limit: int = 500) -> builtins.list[FeedEntry]:
        """Journal events of all runs after ``after`` (a ``seq``), in order: a live feed of everything."""
        self._check_open()
        if not 1 <= limit <= 5000:
            raise UsageError("limit must be between 1 and 5000")
        return [
            FeedEntry(e.seq, e.run_id, e.kind, e.step, e.name, to_json(e.data), e.at)
            for e in await self.store.events_after(after, limit=limit)
        ]

    async def check_replay(self, run_id: str) -> ReplayReport:
        """Replay the run's journal against the flow code loaded in this process, running nothing: does
        today's code still take the path the run took? (The check before a deploy; ``podium replay``.)

        Finished runs must replay to the same outcome; runs in flight must replay up to where they are.
        """
        from .engine.replay import replay_events
        from .runtime import scratch_store

        rec = await self._record(run_id)
        fl = resolve_flow(rec.flow)
        events = await self.store.load_events(run_id)
        start = next((e for e in events if e.kind == "start"), None)
        recorded = ((start.data or {}).get("version") if start is not None else None) or None
        done = await replay_events(fl, [replace(e, data=to_json(e.data)) for e in events], scratch_store())
        problem = position = None
        nd = done.nondeterminism
        if nd is not None:
            ran_out = "journal ends here" in nd.journaled
            if not (ran_out and not rec.status.terminal):  # a run in flight replays up to where it is
                problem, position = str(nd), nd.position
        elif rec.status.terminal:
            was, now = (rec.error or {}).get("type"), (done.error or {}).get("type")
            cancelled = done.status == "stopped" and rec.status is RunStatus.CANCELLED
            if done.status != rec.status.value and not cancelled:
                problem = f"the run {rec.status.value}, the code now {done.status}"
            elif rec.status is RunStatus.COMPLETED and to_json(done.output) != to_json(rec.output):
                problem = "the code now computes another output"
            elif rec.status is RunStatus.FAILED and was != now:
                problem = f"the run failed with {was}, the code now with {now}"
        return ReplayReport(
            run_id, rec.flow, rec.status, problem is None, problem, position, recorded, fl.version
        )

    async def timeline(self, run_id: str) -> builtins.list[TimelineRow]:
        """The run's positions with outcomes, durations, attempts and errors."""
        await self._record(run_id)
        events = await self.store.load_events(run_id)
        return timeline([replace(e, data=to_json(e.data)) for e in events], now=self.clock())

    async def start_many(
        self,
        runs: Sequence[
            tuple[Flow[Any, Any] | str, Any, str | None]
            | tuple[Flow[Any, Any] | str, Any, str | None, Mapping[str, str] | None]
        ],
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> builtins.list[RunHandle[Any]]:
        """Start several runs, ``(flow, input, key)`` or ``(flow, input, key, pins)`` each, in one store
        transaction: ``start`` for many runs at the cost of one commit. All inputs are checked first; a
        ``UsageError`` creates none. With a worker here, as many as it has room for are created already
        claimed by it. A key that names a run of another flow (or tenant) raises ``InvalidStateError`` after
        the other runs were started. The runs belong to ``tenant``."""
        self._check_open()
        check_tenant(tenant)
        now = self.clock()
        room = 0 if self.worker is None else self.settings.concurrency - len(self.worker.executions)
        items: builtins.list[tuple[RunRecord, Event]] = []
        flows: builtins.list[Flow[Any, Any]] = []
        leased: set[str] = set()
        for item in runs:
            if not isinstance(item, tuple) or len(item) not in (3, 4):
                raise UsageError("start_many takes (flow, input, key) or (flow, input, key, pins) tuples")
            flow, input, key = item[0], item[1], item[2]
            pinned = check_pins(item[3] if len(item) == 4 else None)
            fl = resolve_flow(flow)
            if key is not None and (not isinstance(key, str) or not key):
                raise UsageError("key must be a non-empty string")
            data = fl.dump_input(fl.validate_input(input))
            run = RunRecord(
                id=new_id(),
                flow=fl.name,
                status=RunStatus.PENDING,
                input=data,
                key=key,
                created_at=now,
                updated_at=now,
                deadline=None if fl.timeout is None else now + fl.timeout,
                queue=fl.queue,
                tenant=tenant,
            )
            lease = None if self.worker is None or len(leased) >= room else self.worker.lease_new(fl.name)
            if lease is not None:
                run.status, run.lease_owner, run.lease_until, run.claims = RunStatus.RUNNING, *lease, 1
                leased.add(run.id)
            start: dict[str, Any] = {"input": data, "version": fl.version}
            if pinned:
                start["pins"] = pinned
            items.append((run, Event(run.id, "start", "", fl.name, start, now)))
            flows.append(fl)
        results = await self.store.create_runs(items)
        if self.auditor is not None:
            started = [
                _started(rec, None, rec.key, (first.data or {}).get("pins") or {})
                for (rec, created), (_, first) in zip(results, items, strict=True)
                if created
            ]
            await self.auditor.record_many(started)
        handles: builtins.list[RunHandle[Any]] = []
        waiting = False
        conflict: InvalidStateError | None = None
        for (rec, created), fl, (_, first) in zip(results, flows, items, strict=True):
            if not created and rec.tenant != tenant:
                conflict = InvalidStateError(f"key {rec.key!r} is in use; choose another")
                continue  # another tenant's run: no handle on it
            if not created and rec.flow != fl.name:
                conflict = InvalidStateError(f"key {rec.key!r} belongs to run {rec.id} of flow {rec.flow!r}")
            if self.worker is not None and not rec.status.terminal:
                if created and rec.id in leased:
                    await self.worker.adopt(rec, [first])
                else:
                    waiting = True
            handles.append(RunHandle(self, rec.id, fl, created=created))
        if waiting and self.worker is not None:
            self.worker.poke()  # the rest are claimed in batches by the worker's claim loop
        if conflict is not None:  # as ``start`` does, once the runs that were created are under way
            raise conflict
        return handles

    @classmethod
    def for_worker(cls, worker: Worker) -> Client:
        """An open client on ``worker``'s store, settings and clock whose runs start on that worker (created
        already claimed, as with a client's own worker). For triggers running beside a worker, such as its
        scheduler and ``podium worker``'s event consumers. It owns neither the worker nor the store: closing
        it leaves both running."""
        return _WorkerClient(worker)


class _WorkerClient(Client):
    """``Client.for_worker``: borrows a running worker and its store."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker.settings, store=worker.store, worker=False, clock=worker.clock)
        self.worker = worker
        self._open = True

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False


def run(
    flow: Flow[Any, T] | str,
    input: Any = None,
    *,
    key: str | None = None,
    timeout: Duration | None = None,
    settings: Settings | None = None,
) -> T:
    """Run a flow to completion from synchronous code and return its output.

    ```python
    receipt = podium.run(checkout, order)
    ```
    Uses the store from settings (by default ``.podium/podium.db``); the run is durable, so if this
    process dies, ``podium worker`` (or another ``podium.run`` with the same ``key``) finishes it.
    """

    async def go() -> T:
        async with Client(settings) as client:
            handle = await client.start(flow, input, key=key)
            return await handle.result(timeout=timeout)

    return asyncio.run(go())


def _started(rec: RunRecord, by: str | None, key: str | None, pins: Mapping[str, str]) -> AuditDraft:
    payload: dict[str, Any] = {"flow": rec.flow, "tenant": rec.tenant}
    if key is not None:
        payload["key"] = key
    if pins:
        payload["pins"] = dict(pins)
    return AuditDraft("run.started", rec.created_at, by, rec.id, payload)
