"""The schedules part of ``Client``: add, list, pause, resume and delete cron schedules of flows."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .policies.access import DEFAULT_TENANT, check_tenant
from .records import Schedule
from .storage.base import ScheduleRecord
from .triggers import cron as _cron
from .workflow.flow import Flow, resolve_flow

if TYPE_CHECKING:
    from .engine.worker import Worker
    from .storage.base import Store


class SchedulesMixin:
    """Cron schedules that start runs (a part of ``Client``)."""

    if TYPE_CHECKING:
        store: Store
        clock: Callable[[], float]
        worker: Worker | None

        def _check_open(self) -> None: ...

    async def add_schedule(
        self,
        flow: Flow[Any, Any] | str,
        cron: str,
        input: Any = None,
        *,
        name: str | None = None,
        tz: str = "UTC",
        missed: str = "skip",
        tenant: str = DEFAULT_TENANT,
    ) -> Schedule:
        """Start a run of ``flow`` with ``input`` at every occurrence of ``cron`` (read in time zone
        ``tz``). Any worker that runs the flow fires it; each occurrence starts exactly one run, with key
        ``schedule:NAME:TIME``.

        ``name`` defaults to the flow's name. ``missed`` says what happens to occurrences that fell due while
        no worker ran: ``"skip"`` them (default), run ``"once"`` for the latest, or ``"catchup"`` on each
        (the latest 100). Adding a name that exists replaces that schedule's definition and starts it afresh
        from now (its pause is kept); adding the same definition again changes nothing, so code can declare
        its schedules at every start. Its runs start in ``tenant``.
        """
        self._check_open()
        fl = resolve_flow(flow)
        sname = fl.name if name is None else name
        _cron.check(sname, cron, tz, missed)
        check_tenant(tenant)
        data = fl.dump_input(fl.validate_input(input))
        expr = _cron.normalize(cron)
        now = self.clock()
        old = await self.store.schedule_get(sname)
        definition = (fl.name, expr, tz, data, missed, tenant)
        if old is not None and (old.flow, old.cron, old.tz, old.input, old.missed, old.tenant) == definition:
            return Schedule._of(old)  # declared again as it is: keep its next occurrence
        rec = ScheduleRecord(
            name=sname,
            flow=fl.name,
            cron=expr,
            tz=tz,
            input=data,
            missed=missed,
            paused=old is not None and old.paused,
            next_at=_cron.next_after(expr, tz, now),
            last_at=None if old is None else old.last_at,
            created_at=now,
            updated_at=now,
            tenant=tenant,
        )
        stored = await self.store.schedule_put(rec)
        self._poke_scheduler()
        return Schedule._of(stored)

    async def schedules(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        self._check_open()
        return [Schedule._of(s) for s in await self.store.schedule_list()]

    async def get_schedule(self, name: str) -> Schedule:
        """One schedule; ``UsageError`` if there is none of that name."""
        self._check_open()
        rec = await self.store.schedule_get(name)
        if rec is None:
            raise UsageError(f"no schedule named {name!r}")
        return Schedule._of(rec)

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop firing a schedule (runs it started already go on). Idempotent."""
        self._check_open()
        rec = await self.store.schedule_set_paused(name, True, now=self.clock())
        if rec is None:
            raise UsageError(f"no schedule named {name!r}")
        return Schedule._of(rec)

    async def resume_schedule(self, name: str) -> Schedule:
        """Fire a paused schedule again, from its next occurrence after now: occurrences that fell while
        it was paused do not run. Resuming a schedule that is not paused changes nothing."""
        current = await self.get_schedule(name)
        if not current.paused:
            return current
        now = self.clock()
        rec = await self.store.schedule_set_paused(
            name, False, now=now, next_at=_cron.next_after(current.cron, current.tz, now)
        )
        if rec is None:
            raise UsageError(f"no schedule named {name!r}")
        self._poke_scheduler()
        return Schedule._of(rec)

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; True if it existed. Runs it started already go on."""
        self._check_open()
        return await self.store.schedule_delete(name)

    def _poke_scheduler(self) -> None:
        scheduler = getattr(self.worker, "scheduler", None)  # the worker's (podium.triggers.schedule)
        if scheduler is not None:
            scheduler.poke()
