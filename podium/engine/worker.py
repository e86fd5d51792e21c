"""The worker: claims runnable runs, executes them, keeps their leases alive, and lets go cleanly.

Several workers (in one process or many, on one SQLite file or a shared database) can run at once: a run
is executed by whoever holds its lease, and the lease of a dead worker expires so another takes over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import InvalidStateError, StoreError
from ..hooks import Observer
from ..storage.base import Event, RunRecord, Store
from ..types import Clock, RunStatus, check_queue_name, new_id
from ..workflow.flow import Flow, registered
from .committer import Committer
from .execution import Execution

if TYPE_CHECKING:
    from ..triggers.schedule import Scheduler

log = logging.getLogger("podium.worker")

FinishCallback = Callable[[str, str], None]


class Worker:
    """Executes runs of the flows registered in this process (or of ``flows`` only, or of the flows of
    ``queues`` only), within the per-flow and per-queue limits (``settings.queue_limits``).

    ```python
    worker = Worker(store, Settings.from_env())
    await worker.start()
    ...
    await worker.stop()
    ```
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        flows: Collection[str] | None = None,
        owner: str | None = None,
        on_finish: FinishCallback | None = None,
        clock: Clock = time.time,
        replay_only: bool = False,
        observers: Iterable[Observer] = (),
        queues: Collection[str] | None = None,
    ) -> None:
        self.store = store
        self.observers: tuple[Observer, ...] = tuple(observers)
        """Told of every run and step event (``podium.hooks``); empty costs the engine nothing."""
        self.replay_only = replay_only  # new effects are a NondeterminismError (replaying recorded runs)
        self.clock = clock
        subscribe = getattr(clock, "subscribe", None)
        if subscribe is not None:  # a manual clock: look for due timers whenever it moves
            subscribe(self.poke)
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._flows = None if flows is None else set(flows)
        self.queues = None if queues is None else frozenset(check_queue_name(q) for q in queues)
        """The queues this worker serves (None: every queue)."""
        self.queue_limits = settings.queue_limits
        """Runs at once per queue, across all workers (``[queues]`` in ``podium.toml``)."""
        self._on_finish = on_finish
        self.executions: dict[str, Execution] = {}
        self._tasks: dict[str, asyncio.Task[str]] = {}
        self._targets: list[str] = []
        self._relaunch: dict[str, RunRecord] = {}
        self._wake: asyncio.Event | None = None
        self._backlog = False  # the last claim filled every free slot: more runs may be waiting
        self._loops: list[asyncio.Task[None]] = []
        self._unlisten: Callable[[], Awaitable[None]] | None = None
        self.committer = Committer(self)
        self._models: Any = None
        self._cache: Any = None
        self._ray: Any = None
        self.finished = 0
        self._stopping = False
        self.scheduler: Scheduler | None = None  # fires due cron schedules (podium.triggers.schedule)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._loops:
            return
        self._wake = asyncio.Event()
        self._stopping = False
        # Imported here, not at the top: triggers sit above the engine (they start runs through the Client).
        from ..triggers.schedule import Scheduler

        self.scheduler = Scheduler(self)
        listen = getattr(self.store, "listen", None)  # PostgreSQL: LISTEN/NOTIFY wakes this worker at once
        if listen is not None:
            self._unlisten = await listen(self._notified)
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="podium-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="podium-heartbeat"),
            asyncio.create_task(self.scheduler.run(), name="podium-scheduler"),
        ]
        if self.settings.storage.gc_interval > 0 and not self.replay_only:
            self._loops.append(asyncio.create_task(self._gc_loop(), name="podium-gc"))

    async def stop(self) -> None:
        """Stop claiming; release every run this worker holds so another worker resumes it at once."""
        self._stopping = True
        if self._unlisten is not None:
            unlisten, self._unlisten = self._unlisten, None
            await unlisten()
        for t in self._loops:
            t.cancel()
        for t in self._loops:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._loops = []
        for ex in list(self.executions.values()):
            ex.stop("shutdown")
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks)
        await self.committer.drain()  # writes made without waiting (PostgreSQL commits in a task)
        if self._models is not None:
            await self._models.aclose()  # HTTP connection pools of model providers
        if self._ray is not None:
            ray, self._ray = self._ray, None
            await ray.close()  # a local Ray instance this worker started

    async def run_forever(self) -> None:
        """Start and keep running until cancelled (``podium worker``)."""
        await self.start()
        try:
            await asyncio.gather(*self._loops)
        finally:
            await self.stop()

    @property
    def models(self) -> Any:
        """The named models flows reach with ``ctx.model`` (``podium.models.Models``), built on first use."""
        if self._models is None:
            from ..models.registry import Models

            self._models = Models.from_config(self.settings.config)
        return self._models

    @property
    def ray(self) -> Any:
        """Runs ``executor="ray"`` steps (``podium.engine.ray_executor.RayExecutor``), made on first use;
        a non-retryable ``RunError`` saying ``pip install podium[ray]`` when Ray is missing."""
        if self._ray is None:
            from .ray_executor import RayExecutor

            self._ray = RayExecutor(self.settings.ray)
        return self._ray

    @property
    def cache(self) -> Any:
        """The model response cache on this worker's store (``podium.models.cache.ResponseCache``)."""
        if self._cache is None:
            from ..models.cache import ResponseCache

            self._cache = ResponseCache(self.store)
        return self._cache

    def limits(self) -> dict[str, int]:
        """Per-flow caps on runs at once across all workers (``@podium.flow(concurrency=N)``)."""
        return {name: fl.concurrency for name, fl in self.flows().items() if fl.concurrency is not None}

    def capped(self, flow: str) -> bool:
        """True if runs of ``flow`` are limited across workers (by the flow's or its queue's limit): only
        the claim query, which counts the runs of all workers, may take them."""
        fl = self.flows().get(flow)
        if fl is None:
            return False
        return fl.concurrency is not None or fl.queue in self.queue_limits

    def flows(self) -> dict[str, Flow[Any, Any]]:
        """The flows this worker executes: those registered here, restricted to ``flows`` and ``queues``."""
        known = registered()
        if self._flows is None and self.queues is None:
            return known
        return {
            k: v
            for k, v in known.items()
            if (self._flows is None or k in self._flows) and (self.queues is None or v.queue in self.queues)
        }

    # -- signals from the client --------------------------------------------------------------
    def poke(self, run_id: str | None = None) -> None:
        """Something became runnable (maybe ``run_id``): look now instead of at the next poll."""
        if run_id is not None:
            self._targets.append(run_id)
        if self._wake is not None:
            self._wake.set()

    def _notified(self, flow: str | None) -> None:
        """The store says a run of ``flow`` became runnable or got a timer (None: maybe anything did)."""
        if flow is None or self._flows is None or flow in self._flows:
            self.poke()

    def notify_inbox(self, run_id: str) -> None:
        """An inbox event for ``run_id`` was stored by this process."""
        ex = self.executions.get(run_id)
        if ex is not None:
            asyncio.get_running_loop().create_task(ex.refresh())
        else:
            self.poke(run_id)

    async def take(self, run_id: str) -> bool:
        """Claim and start one specific run now if it is runnable and this worker knows its flow."""
        if self._stopping or run_id in self.executions or len(self.executions) >= self.settings.concurrency:
            return False
        if self.limits() or self.queue_limits:  # capped runs are taken only by the claim query
            run = await self.store.get_run(run_id)
            if run is None or self.capped(run.flow) or run.queue in self.queue_limits:
                self.poke()
                return False
        now = self.clock()
        run = await self.store.claim_run(
            run_id, self.owner, now=now, lease_until=now + self.settings.lease_seconds
        )
        if run is None:
            return False
        await self._launch(run)
        return True

    def lease_new(self, flow: str) -> tuple[str, float] | None:
        """``(owner, lease_until)`` to create a new run already claimed by this worker, or None if this
        worker cannot take it now. Saves a claim transaction per run started in this process."""
        if self._stopping or len(self.executions) >= self.settings.concurrency or flow not in self.flows():
            return None
        if self.capped(flow):  # the claim query decides, counting the runs of all workers
            return None
        return self.owner, self.clock() + self.settings.lease_seconds

    async def adopt(self, run: RunRecord, events: list[Event]) -> None:
        """Start executing a run this worker created already claimed (see ``lease_new``)."""
        await self._launch(run, events)

    # -- loops --------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            try:
                timeout = await self._claim_once()
            except Exception as exc:  # the store failed (locked, disk full, ...): keep the loop, retry later
                self.log_store_error(exc)
                timeout = self.settings.poll_seconds
            if timeout is None or self._targets:
                continue
            try:
                async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _claim_once(self) -> float | None:
        """Claim what is runnable now; how long to wait before looking again (None: look at once)."""
        names = list(self.flows())
        while self._targets:
            run_id = self._targets.pop(0)
            run = await self.store.get_run(run_id)
            if run is not None and run.flow in names:
                await self.take(run_id)
        capacity = self.settings.concurrency - len(self.executions)
        if capacity > 0 and names:
            now = self.clock()
            caps = self.limits()
            until = now + self.settings.lease_seconds
            if self.queue_limits:
                runs = await self.store.claim(
                    self.owner,
                    names,
                    now=now,
                    lease_until=until,
                    limit=capacity,
                    limits=caps,
                    queues=self.queue_limits,
                )
            elif caps:
                runs = await self.store.claim(
                    self.owner, names, now=now, lease_until=until, limit=capacity, limits=caps
                )
            else:  # no keyword: stores written before limits existed keep working
                runs = await self.store.claim(self.owner, names, now=now, lease_until=until, limit=capacity)
            for run in runs:
                await self._launch(run)
            self._backlog = len(runs) == capacity
            if runs and len(runs) == capacity:
                await asyncio.sleep(0)
                return None
        timeout = self.settings.poll_seconds
        due = await self.store.next_wakeup(names) if names and capacity > 0 else None
        if due is not None:
            timeout = min(timeout, max(0.0, due - self.clock()) + 0.001)
        return timeout

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            if not self.executions:
                continue
            held = list(self.executions)
            try:
                seqs = await self.store.heartbeat(
                    self.owner, held, lease_until=self.clock() + self.settings.lease_seconds
                )
            except Exception as exc:
                self.log_store_error(exc)
                continue
            for run_id in held:
                ex = self.executions.get(run_id)
                if ex is None:
                    continue
                if run_id not in seqs:
                    if ex.ending or ex.suspending:
                        continue  # it let go of the lease itself while the heartbeat was under way
                    if ex.stop_reason is None:
                        log.warning("lost the lease of run %s; another worker has it", run_id)
                    ex.stop("lease_lost")
                elif seqs[run_id] != ex.seen_inbox:
                    asyncio.get_running_loop().create_task(ex.refresh())

    async def _gc_loop(self) -> None:
        """Retention in the background: this worker's flows, every ``[storage] gc_interval``."""
        from .retention import collect_garbage

        st = self.settings.storage
        while True:
            await asyncio.sleep(st.gc_interval)
            retention = {name: fl.retention for name, fl in self.flows().items()}
            tenants = self.settings.tenant_retention
            if st.retention is None and not tenants and all(v is None for v in retention.values()):
                continue
            try:
                done = await collect_garbage(
                    self.store,
                    now=self.clock(),
                    retention=retention,
                    default=st.retention,
                    only_known=True,
                    tenants=tenants,
                )
            except Exception as exc:
                self.log_store_error(exc)
                continue
            if done.payloads:
                log.info(
                    "retention: %d runs released, %d payloads (%d bytes) deleted",
                    *(done.runs, done.payloads, done.bytes),
                )

    # -- executions ---------------------------------------------------------------------------
    async def _launch(self, run: RunRecord, events: list[Event] | None = None) -> None:
        current = self.executions.get(run.id)
        if current is not None:
            if current.stop_reason is not None or current.suspending:  # leaving: start afresh once it is gone
                self._relaunch[run.id] = run
            return  # else our own run, re-claimed after a late heartbeat: keep the one we have
        flow = self.flows().get(run.flow)
        if flow is None:  # raced with a registry change; let the lease lapse for another worker
            return
        if events is None:
            events = await self.store.load_events(run.id)
        ex = Execution(self, run, flow, events)
        self.executions[run.id] = ex
        task = asyncio.get_running_loop().create_task(ex.execute(), name=f"podium-run-{run.id}")
        self._tasks[run.id] = task
        task.add_done_callback(functools.partial(self._done, run.id))

    def _done(self, run_id: str, task: asyncio.Task[str]) -> None:
        ex = self.executions.pop(run_id, None)
        self._tasks.pop(run_id, None)
        again = self._relaunch.pop(run_id, None)
        if again is not None and not self._stopping:  # claimed again while the old execution unwound
            asyncio.get_running_loop().create_task(self._launch(again))
        outcome = "cancelled" if task.cancelled() else None
        if outcome is None:
            exc = task.exception()
            if exc is not None:
                log.error("run %s: the engine failed: %r", run_id, exc, exc_info=exc)
                outcome = "error"
            else:
                outcome = task.result()
        self.finished += 1
        if (
            ex is not None
            and ex.run.parent_id is not None
            and outcome in ("completed", "failed", "cancelled")
        ):
            self.poke(ex.run.parent_id)
        if outcome in ("suspend", "lease_lost", "store", "error") and not self._stopping:
            self.poke()  # it may be runnable again already (or must be retried)
        elif outcome == "continued" and not self._stopping:
            self.poke(run_id)  # continue-as-new: its next generation is runnable now
        elif self._backlog and not self._stopping:
            self.poke()  # a slot is free and runs may be waiting for one: claim now, not at the next poll
        if self._on_finish is not None:
            self._on_finish(run_id, outcome)

    async def start_child(
        self,
        parent: RunRecord,
        sid: str,
        flow: Flow[Any, Any],
        input: Any,
        depth: int = 1,
        pins: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """Create (idempotently) the child run of ``parent`` at position ``sid``, ``depth`` levels below
        its root run, with the parent's ``pins``."""
        value = flow.validate_input(input)
        data = flow.dump_input(value)
        now = self.clock()
        run = RunRecord(
            id=new_id(),
            flow=flow.name,
            status=RunStatus.PENDING,
            input=data,
            key=f"{parent.id}/{sid}",
            parent_id=parent.id,
            parent_step=sid,
            created_at=now,
            updated_at=now,
            deadline=None if flow.timeout is None else now + flow.timeout,
            priority=parent.priority,
            queue=flow.queue,
            tenant=parent.tenant,
            subject=parent.subject,
        )
        start: dict[str, Any] = {"input": data, "depth": depth, "version": flow.version}
        if pins:
            start["pins"] = dict(pins)
        first = Event(run.id, "start", "", flow.name, start, now)
        rec, _ = await self.store.create_run(run, first)
        return rec

    async def cancel_run(self, run_id: str) -> None:
        """Cancel one run (a child whose parent no longer waits for it) and, if idle, its children."""
        now = self.clock()
        try:
            idle = await request_cancel(self.store, Event(run_id, "cancel", "", None, None, now), now)
        except InvalidStateError:
            return  # it finished meanwhile
        if idle:
            await cancel_children(self.store, run_id, now)
        else:
            self.notify_inbox(run_id)

    async def cancel_children(self, run_id: str) -> None:
        """Cancel the unfinished child runs of a run that ended (and, for idle ones, their children)."""
        await cancel_children(self.store, run_id, self.clock())

    def log_store_error(self, exc: BaseException) -> None:
        if isinstance(exc, StoreError | OSError):
            log.warning("store error (runs will be retried): %s", exc)
        else:
            log.error("journal commit failed (runs will be retried): %r", exc, exc_info=exc)


async def cancel_children(store: Store, run_id: str, now: float) -> None:
    """Ask every unfinished child of ``run_id`` to cancel. Idle children are cancelled at once (and so,
    recursively, their children); running ones are cancelled by their worker, which cascades further."""
    live = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING]
    for child in await store.list_runs(parent_id=run_id, status=live, limit=1000):
        try:
            idle = await request_cancel(store, Event(child.id, "cancel", "", None, None, now), now)
        except InvalidStateError:
            continue  # it finished meanwhile
        if idle:
            await cancel_children(store, child.id, now)


async def request_cancel(store: Store, request: Event, now: float) -> bool:
    """Ask a run to cancel (``request`` is its ``cancel`` event). True if it was idle and is cancelled now.

    An idle run (pending, waiting) with nothing to compensate ends at once, its request and its end in one
    transaction, so no worker claims it in between (with PostgreSQL, one could). Otherwise the request is
    delivered, for the run's worker to act on; ``InvalidStateError`` if the run has finished.
    """
    if await undo_free(store, request.run_id) and await store.cancel_idle(
        request.run_id, now=now, request=request
    ):
        return True
    await store.deliver(request, now=now)
    # It may have gone idle since (its worker suspended it): end it now rather than at its next claim.
    return await undo_free(store, request.run_id) and await store.cancel_idle(request.run_id, now=now)


async def undo_free(store: Store, run_id: str) -> bool:
    """True if no completed step of the run declared a compensation. Otherwise a cancelled run is ended
    by a worker, not at once, so that those compensations run first."""
    return not any(
        e.kind == "step" and isinstance(e.data, dict) and e.data.get("undo")
        for e in await store.load_events(run_id)
    )
