"""An in-memory store: fast, for tests and for flows that need no durability."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InvalidStateError, RunNotFoundError, SignalRefusedError, StoreError
from ..types import RunStatus
from .audit import MemoryAudit
from .base import (
    Event,
    Gate,
    KeyRecord,
    Outcome,
    PromptLabelRecord,
    PromptMove,
    PromptRecord,
    RunRecord,
    ScheduleFire,
    SchedulePlan,
    ScheduleRecord,
    StreamChunk,
    Transition,
    Write,
)
from .erasure import MemoryErasure
from .memory_datasets import MemoryDatasets
from .payload_rows import usage
from .payloads import DEFAULT_THRESHOLD, Collected, Usage, expire, json_size

_TERMINAL_STATUS = {
    Transition.COMPLETE: RunStatus.COMPLETED,
    Transition.FAIL: RunStatus.FAILED,
    Transition.CANCEL: RunStatus.CANCELLED,
}


class MemoryStore(MemoryDatasets, MemoryAudit, MemoryErasure):
    """Keeps runs and journals in dictionaries. Nothing survives the process."""

    durable = False

    def __init__(self, *, json_results: bool = False) -> None:
        # json_results: keep step results in JSON form and rebuild them on replay, exactly as a durable
        # store does (used to replay recorded journals).
        self.durable = json_results
        self._runs: dict[str, RunRecord] = {}
        self._events: dict[str, list[Event]] = {}
        self._unique: set[tuple[str, str, str]] = set()
        self._keys: dict[str, str] = {}
        self._pending: dict[str, None] = {}  # insertion-ordered set of pending run ids
        self._seq = itertools.count(1)
        self._cache: dict[str, list[Any]] = {}
        self._spend: dict[tuple[str, str], float] = {}
        self._schedules: dict[str, ScheduleRecord] = {}
        self._api_keys: list[KeyRecord] = []
        self._fires: dict[tuple[str, float], _Claim] = {}  # claimed, not yet started schedule occurrences
        self._init_datasets()
        self._collected: set[str] = set()  # runs whose payloads retention released
        self._chunks: dict[str, list[StreamChunk]] = {}  # token streams by run
        self._chunk_ids = itertools.count(1)
        self.threshold = DEFAULT_THRESHOLD
        self._audit_init()
        self._prompts: dict[str, list[PromptRecord]] = {}
        self._labels: dict[tuple[str, str], PromptLabelRecord] = {}
        self._moves: list[PromptMove] = []
        self._splits: dict[str, dict[str, int]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _append(self, event: Event, now: float) -> bool:
        ident = (event.run_id, event.kind, event.step)
        if ident in self._unique:
            return False
        self._unique.add(ident)
        event.seq = next(self._seq)
        if not event.at:
            event.at = now
        self._events[event.run_id].append(event)
        return True

    def _set_status(self, run: RunRecord, status: RunStatus) -> None:
        if status is RunStatus.PENDING:
            self._pending[run.id] = None
        else:
            self._pending.pop(run.id, None)
        run.status = status

    async def create_run(self, run: RunRecord, first: Event) -> tuple[RunRecord, bool]:
        if run.key is not None and run.key in self._keys:
            return self._runs[self._keys[run.key]], False
        if run.id in self._runs:
            raise InvalidStateError(f"run id {run.id} exists already")
        self._runs[run.id] = run
        self._events[run.id] = []
        if run.key is not None:
            self._keys[run.key] = run.id
        self._set_status(run, run.status)
        self._append(first, run.created_at)
        return run, True

    async def create_runs(self, items: Sequence[tuple[RunRecord, Event]]) -> list[tuple[RunRecord, bool]]:
        return [await self.create_run(run, first) for run, first in items]

    async def get_run(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    async def list_runs(
        self,
        *,
        status: Collection[RunStatus] | None = None,
        flow: str | None = None,
        parent_id: str | None = None,
        limit: int = 50,
        before: str | None = None,
        tenant: str | None = None,
    ) -> list[RunRecord]:
        rows = sorted(self._runs.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        if before is not None and before in self._runs:
            b = self._runs[before]
            rows = [r for r in rows if (r.created_at, r.id) < (b.created_at, b.id)]
        out = [
            r
            for r in rows
            if (status is None or r.status in status)
            and (flow is None or r.flow == flow)
            and (parent_id is None or r.parent_id == parent_id)
            and (tenant is None or r.tenant == tenant)
        ]
        return out[:limit]

    async def events_after(self, after: int, *, limit: int = 500) -> list[Event]:
        found = [e for events in self._events.values() for e in events if e.seq > after]
        found.sort(key=lambda e: e.seq)
        return found[:limit]

    async def key_add(self, key: KeyRecord) -> None:
        if any(k.hash == key.hash or k.id == key.id for k in self._api_keys):
            raise StoreError("an API key with this id or hash exists already")
        self._api_keys.append(replace(key))

    async def key_find(self, hash: str) -> KeyRecord | None:
        for k in self._api_keys:
            if k.hash == hash and k.revoked_at is None:
                return replace(k)
        return None

    async def key_list(self) -> list[KeyRecord]:
        return [replace(k) for k in self._api_keys]

    async def key_revoke(self, key_id: str, *, now: float) -> bool:
        for k in self._api_keys:
            if k.id == key_id and k.revoked_at is None:
                k.revoked_at = now
                return True
        return False

    async def collect_payloads(
        self,
        *,
        ended_before: float,
        flows: Collection[str] | None = None,
        exclude: Collection[str] = (),
        tenants: Collection[str] | None = None,
        exclude_tenants: Collection[str] = (),
    ) -> Collected:
        # No payload table here (values are shared in memory, never copied): retention drops the large
        # values of a finished run's journal in place, keeping its skeleton, as the durable stores do.
        done = Collected()
        for run in self._runs.values():
            if (
                run.id in self._collected
                or not run.status.terminal
                or run.ended_at is None
                or run.ended_at >= ended_before
                or (flows is not None and run.flow not in flows)
                or run.flow in exclude
                or (tenants is not None and run.tenant not in tenants)
                or run.tenant in exclude_tenants
            ):
                continue
            parent = self._runs.get(run.parent_id) if run.parent_id else None
            if parent is not None and not parent.status.terminal:
                continue
            self._collected.add(run.id)
            self._chunks.pop(run.id, None)
            done.runs += 1
            for e in self._events.get(run.id, []):
                before = json_size(e.data)
                e.data = expire(e.data, self.threshold)
                freed = before - json_size(e.data)
                if freed > 0:
                    done.payloads += 1
                    done.bytes += freed
            run.input = expire(run.input, self.threshold, keep_root=False)
            run.output = expire(run.output, self.threshold, keep_root=False)
        return done

    async def storage_usage(self, *, now: float) -> list[Usage]:
        rows = [
            (run.flow, run.created_at, 1, sum(json_size(e.data) for e in self._events.get(run.id, [])))
            for run in self._runs.values()
        ]
        return usage(now, rows, [])

    def _holds(self, run_id: str, owner: str | None) -> bool:
        run = self._runs.get(run_id)
        return owner is None or (
            run is not None and run.lease_owner == owner and run.status is RunStatus.RUNNING
        )

    async def stream_begin(
        self, run_id: str, step: str, *, now: float, owner: str | None = None
    ) -> int | None:
        if not self._holds(run_id, owner):
            return None
        epochs = [c.epoch for c in self._chunks.get(run_id, []) if c.step == step]
        if not epochs:
            return 1
        epoch = max(epochs) + 1
        self._chunks.setdefault(run_id, []).append(
            StreamChunk(next(self._chunk_ids), run_id, step, epoch, 0, None, now)
        )
        return epoch

    async def stream_append(
        self,
        run_id: str,
        step: str,
        epoch: int,
        offset: int,
        text: str,
        *,
        now: float,
        owner: str | None = None,
    ) -> bool:
        if not self._holds(run_id, owner):
            return False
        chunk = StreamChunk(next(self._chunk_ids), run_id, step, epoch, offset, text, now)
        self._chunks.setdefault(run_id, []).append(chunk)
        return True

    async def stream_read(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[StreamChunk]:
        return [c for c in self._chunks.get(run_id, []) if c.id > after][:limit]

    # -- prompt registry ----------------------------------------------------------------------
    async def prompt_push(self, prompt: PromptRecord) -> tuple[PromptRecord, bool]:
        versions = self._prompts.setdefault(prompt.name, [])
        for p in versions:
            if p.hash == prompt.hash:
                return replace(p), False
        stored = replace(
            prompt,
            version=len(versions) + 1,
            variables=list(prompt.variables),
            params=dict(prompt.params),
            metadata=dict(prompt.metadata),
        )
        versions.append(stored)
        return replace(stored), True

    async def prompt_get(self, name: str, version: int) -> PromptRecord | None:
        versions = self._prompts.get(name, [])
        return replace(versions[version - 1]) if 1 <= version <= len(versions) else None

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        return [replace(p) for p in self._prompts.get(name, [])]

    async def prompt_latest(self) -> list[PromptRecord]:
        return [replace(self._prompts[n][-1]) for n in sorted(self._prompts)]

    async def prompt_labels(self, name: str) -> list[PromptLabelRecord]:
        return [replace(v) for (n, _), v in sorted(self._labels.items()) if n == name]

    async def prompt_label(self, name: str, label: str) -> PromptLabelRecord | None:
        found = self._labels.get((name, label))
        return None if found is None else replace(found)

    async def prompt_move(
        self, name: str, label: str, version: int, *, now: float, rollback: bool = False
    ) -> PromptLabelRecord:
        old = self._labels.get((name, label))
        rec = PromptLabelRecord(name, label, version, 1 if old is None else old.rev + 1, now)
        self._labels[(name, label)] = rec
        self._moves.append(
            PromptMove(name, label, None if old is None else old.version, version, rollback, now)
        )
        return replace(rec)

    async def prompt_moves(self, name: str, label: str) -> list[PromptMove]:
        return [replace(m) for m in self._moves if m.name == name and m.label == label]

    async def prompt_split_put(self, name: str, arms: Mapping[str, int] | None, *, now: float) -> None:
        if arms is None:
            self._splits.pop(name, None)
        else:
            self._splits[name] = dict(arms)

    async def prompt_split(self, name: str) -> dict[str, int] | None:
        found = self._splits.get(name)
        return None if found is None else dict(found)

    async def load_events(self, run_id: str, *, after: int = 0) -> list[Event]:
        events = self._events.get(run_id, [])
        if after:
            return [e for e in events if e.seq > after]
        return list(events)

    def _runnable(self, run: RunRecord, now: float) -> bool:
        if run.status is RunStatus.PENDING:
            return True
        if run.status is RunStatus.WAITING:
            return run.wake_at is not None and run.wake_at <= now
        if run.status is RunStatus.RUNNING:
            return run.lease_until is not None and run.lease_until < now
        return False

    def _take(self, run: RunRecord, owner: str, now: float, lease_until: float) -> RunRecord:
        self._set_status(run, RunStatus.RUNNING)
        run.lease_owner = owner
        run.lease_until = lease_until
        run.wake_at = None
        run.updated_at = now
        run.claims += 1
        return run

    async def claim(
        self,
        owner: str,
        flows: Collection[str],
        *,
        now: float,
        lease_until: float,
        limit: int,
        limits: Mapping[str, int] | None = None,
        queues: Mapping[str, int] | None = None,
    ) -> list[RunRecord]:
        caps = {f: n for f, n in (limits or {}).items() if f in flows}
        qcaps = dict(queues or {})
        if caps or qcaps:  # free slots per capped flow and queue: its cap less its runs holding a live lease
            for run in self._runs.values():
                if run.status is RunStatus.RUNNING and (run.lease_until or 0) >= now:
                    if run.flow in caps:
                        caps[run.flow] -= 1
                    if run.queue in qcaps:
                        qcaps[run.queue] -= 1
        ready = [self._runs[run_id] for run_id in self._pending if self._runs[run_id].flow in flows]
        ready += [
            run
            for run in self._runs.values()
            if run.status is not RunStatus.PENDING and run.flow in flows and self._runnable(run, now)
        ]
        ready.sort(key=lambda r: (-r.priority, r.created_at))  # stable: insertion order breaks ties
        out: list[RunRecord] = []
        for run in ready:
            if len(out) >= limit:
                break
            if (run.flow in caps and caps[run.flow] <= 0) or (run.queue in qcaps and qcaps[run.queue] <= 0):
                continue
            if run.flow in caps:
                caps[run.flow] -= 1
            if run.queue in qcaps:
                qcaps[run.queue] -= 1
            out.append(self._take(run, owner, now, lease_until))
        return out

    async def claim_run(self, run_id: str, owner: str, *, now: float, lease_until: float) -> RunRecord | None:
        run = self._runs.get(run_id)
        if run is None or not self._runnable(run, now):
            return None
        return self._take(run, owner, now, lease_until)

    def _finish(self, run: RunRecord, status: RunStatus, now: float) -> None:
        self._set_status(run, status)
        run.ended_at = now
        run.updated_at = now
        run.lease_owner = None
        run.lease_until = None
        run.wake_at = None
        parent = None if run.parent_id is None else self._runs.get(run.parent_id)
        if parent is not None and run.parent_step is not None and not parent.status.terminal:
            self._deliver(
                Event(
                    parent.id,
                    "child_done",
                    run.parent_step,
                    name=run.flow,
                    data={"run_id": run.id, "status": status.value, "output": run.output, "error": run.error},
                ),
                now,
            )

    async def commit(
        self, owner: str, writes: Sequence[Write], *, now: float, lease_until: float
    ) -> list[Outcome]:
        return self.commit_sync(owner, writes, now=now, lease_until=lease_until)

    def commit_sync(
        self, owner: str, writes: Sequence[Write], *, now: float, lease_until: float
    ) -> list[Outcome]:
        """``commit`` without a coroutine (the engine's fast path for stores that never wait)."""
        outcomes: list[Outcome] = []
        for w in writes:
            run = self._runs.get(w.run_id)
            if run is None or run.lease_owner != owner or run.status is not RunStatus.RUNNING:
                outcomes.append(Outcome.LEASE_LOST)
                continue
            if w.transition is Transition.CONTINUE:
                self._continue(run, w, now)
            if w.events:
                idents = [(e.run_id, e.kind, e.step) for e in w.events]
                if not self._unique.isdisjoint(idents):
                    outcomes.append(Outcome.LEASE_LOST)  # someone else journaled this position: write nothing
                    continue
                self._unique.update(idents)
                journal, seq = self._events[w.run_id], self._seq
                for e in w.events:
                    e.seq = next(seq)
                    if not e.at:
                        e.at = now
                    journal.append(e)
            t = w.transition
            if t is Transition.NONE:
                pass
            elif t in _TERMINAL_STATUS:
                run.output = w.output
                run.error = w.error
                self._finish(run, _TERMINAL_STATUS[t], now)
            elif t is Transition.SUSPEND:
                if run.inbox_seq != w.seen_inbox:
                    outcomes.append(Outcome.INBOX_CHANGED)
                    continue
                self._set_status(run, RunStatus.WAITING)
                run.wake_at = w.wake_at
                run.lease_owner = None
                run.lease_until = None
            elif t is Transition.RELEASE:
                self._set_status(run, RunStatus.PENDING)
                run.lease_owner = None
                run.lease_until = None
            outcomes.append(Outcome.OK)
        return outcomes

    def _continue(self, run: RunRecord, w: Write, now: float) -> None:
        gone = set(w.consumed)
        old = self._events[run.id]
        kept = [e for e in old if e.kind in ("signal", "cancel") and e.seq not in gone]
        self._events[run.id] = kept
        for e in old:
            self._unique.discard((e.run_id, e.kind, e.step))
        self._unique.update((e.run_id, e.kind, e.step) for e in kept)
        run.input = w.output
        self._set_status(run, RunStatus.PENDING)
        run.lease_owner = None
        run.lease_until = None
        run.wake_at = None
        run.updated_at = now

    async def heartbeat(self, owner: str, run_ids: Collection[str], *, lease_until: float) -> dict[str, int]:
        out: dict[str, int] = {}
        for run_id in run_ids:
            run = self._runs.get(run_id)
            if run is not None and run.lease_owner == owner and run.status is RunStatus.RUNNING:
                run.lease_until = lease_until
                out[run_id] = run.inbox_seq
        return out

    def _deliver(self, event: Event, now: float, gate: Gate | None = None) -> Event | None:
        run = self._runs.get(event.run_id)
        if run is None:
            raise RunNotFoundError(f"no run with id {event.run_id!r}")
        if run.status.terminal:
            raise InvalidStateError(f"run {run.id} is {run.status.value}")
        if gate is not None:
            events = self._events[run.id]
            closed = {e.step for e in events if e.kind in gate.closed}
            if not any(
                e.kind == gate.opened and e.name == gate.name and e.step not in closed for e in events
            ):
                raise SignalRefusedError(f"run {run.id}: no open {gate.opened} {gate.name!r}")
        if not self._append(event, now):
            return None
        run.inbox_seq += 1
        run.updated_at = now
        if run.status is RunStatus.WAITING:
            self._set_status(run, RunStatus.PENDING)
            run.wake_at = None
        return event

    async def deliver(self, event: Event, *, now: float, gate: Gate | None = None) -> Event | None:
        return self._deliver(event, now, gate)

    async def cancel_idle(self, run_id: str, *, now: float, request: Event | None = None) -> bool:
        run = self._runs.get(run_id)
        if run is None or run.status not in (RunStatus.PENDING, RunStatus.WAITING):
            return False
        if request is not None:
            self._append(request, now)
        self._append(Event(run_id, "end", "", data={"status": "cancelled"}), now)
        run.error = {"type": "Cancelled", "message": "cancelled", "retryable": False}
        self._finish(run, RunStatus.CANCELLED, now)
        return True

    async def next_wakeup(self, flows: Collection[str]) -> float | None:
        times = [
            t
            for r in self._runs.values()
            if r.flow in flows
            for t in (
                r.wake_at if r.status is RunStatus.WAITING else None,
                r.lease_until if r.status is RunStatus.RUNNING else None,
            )
            if t is not None
        ]
        return min(times) if times else None

    async def pending_approvals(self, *, limit: int = 100) -> list[tuple[RunRecord, Event]]:
        out: list[tuple[RunRecord, Event]] = []
        for run in self._runs.values():
            if run.status.terminal:
                continue
            events = self._events[run.id]
            decided = {e.step for e in events if e.kind in ("decision", "withdrawn")}
            out.extend((run, e) for e in events if e.kind == "approval" and e.step not in decided)
        out.sort(key=lambda pair: pair[1].seq)
        return out[:limit]

    async def cache_get(self, key: str) -> Any:
        entry = self._cache.get(key)
        return None if entry is None else entry[0]

    async def cache_put(self, key: str, value: Any, *, now: float) -> None:
        self._cache.setdefault(key, [value])

    async def cache_scan(self, prefix: str, *, limit: int = 10_000) -> list[tuple[str, Any]]:
        return [(k, v[0]) for k, v in self._cache.items() if k.startswith(prefix)][:limit]

    async def spend_add(self, flow: str, day: str, cost: float) -> None:
        self._spend[(flow, day)] = self._spend.get((flow, day), 0.0) + cost

    async def spend_get(self, flow: str, day: str) -> float:
        return self._spend.get((flow, day), 0.0)

    # -- schedules ----------------------------------------------------------------------------
    async def schedule_put(self, schedule: ScheduleRecord) -> ScheduleRecord:
        old = self._schedules.get(schedule.name)
        stored = replace(schedule, created_at=old.created_at if old is not None else schedule.created_at)
        self._schedules[schedule.name] = stored
        return replace(stored)

    async def schedule_get(self, name: str) -> ScheduleRecord | None:
        s = self._schedules.get(name)
        return None if s is None else replace(s)

    async def schedule_list(self) -> list[ScheduleRecord]:
        return [replace(self._schedules[name]) for name in sorted(self._schedules)]

    async def schedule_delete(self, name: str) -> bool:
        for key in [k for k in self._fires if k[0] == name]:
            del self._fires[key]
        return self._schedules.pop(name, None) is not None

    async def schedule_set_paused(
        self, name: str, paused: bool, *, now: float, next_at: float | None = None
    ) -> ScheduleRecord | None:
        s = self._schedules.get(name)
        if s is None:
            return None
        s.paused = paused
        if next_at is not None:
            s.next_at = next_at
        s.updated_at = now
        return replace(s)

    async def schedule_claim_due(
        self,
        owner: str,
        flows: Collection[str],
        *,
        now: float,
        lease_until: float,
        limit: int,
        plan: SchedulePlan,
    ) -> list[ScheduleFire]:
        out: list[ScheduleFire] = []
        expired = sorted(
            (c for c in self._fires.values() if c.lease_until < now and c.fire.flow in flows),
            key=lambda c: c.fire.at,
        )
        for claim in expired[:limit]:
            claim.owner, claim.lease_until = owner, lease_until
            out.append(replace(claim.fire))
        due = sorted(
            (s for s in self._schedules.values() if not s.paused and s.next_at <= now and s.flow in flows),
            key=lambda s: s.next_at,
        )
        for s in due[:limit]:
            times, next_at = plan(replace(s), now)
            s.next_at = next_at
            s.updated_at = now
            if times:
                s.last_at = max(times)
            for t in times:
                fire = ScheduleFire(s.name, s.flow, s.input, t, s.tenant)
                self._fires.setdefault((s.name, t), _Claim(fire, owner, lease_until))
                out.append(replace(fire))
        return out

    async def schedule_fired(self, fires: Sequence[ScheduleFire]) -> None:
        for f in fires:
            self._fires.pop((f.name, f.at), None)

    async def schedule_next_at(self, flows: Collection[str]) -> float | None:
        times = [s.next_at for s in self._schedules.values() if not s.paused and s.flow in flows]
        times.extend(c.lease_until for c in self._fires.values() if c.fire.flow in flows)
        return min(times) if times else None


@dataclass(slots=True)
class _Claim:
    fire: ScheduleFire
    owner: str
    lease_until: float
