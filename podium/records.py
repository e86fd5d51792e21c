"""What the control plane hands back: runs, journal entries, approvals waiting, API keys, schedules and
replay reports, as frozen values (``podium.Client`` returns them; ``podium`` exports them)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .policies.access import DEFAULT_TENANT, Principal
from .storage.base import KeyRecord, RunRecord, ScheduleRecord
from .triggers import cron as _cron
from .types import JSON, RunStatus


@dataclass(frozen=True, slots=True)
class Run:
    """A run as the client sees it."""

    id: str
    flow: str
    status: RunStatus
    input: JSON
    output: JSON
    error: dict[str, Any] | None
    key: str | None
    parent_id: str | None
    created_at: float
    updated_at: float
    ended_at: float | None
    wake_at: float | None
    queue: str = "default"
    """The queue of the run's flow (``@podium.flow(queue=...)``)."""
    priority: int = 0
    """Runnable runs are claimed highest priority first."""
    tenant: str = DEFAULT_TENANT

    @classmethod
    def _of(cls, r: RunRecord) -> Run:
        return cls(
            r.id,
            r.flow,
            r.status,
            r.input,
            r.output,
            r.error,
            r.key,
            r.parent_id,
            r.created_at,
            r.updated_at,
            r.ended_at,
            r.wake_at,
            r.queue,
            r.priority,
            r.tenant,
        )


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One event of a run's journal."""

    seq: int
    kind: str
    position: str
    name: str | None
    data: JSON
    at: float


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Whether a run's journal replays against the current code (``Client.check_replay``)."""

    run_id: str
    flow: str
    status: RunStatus
    ok: bool
    problem: str | None
    """What differs: a nondeterminism (with the position), another outcome or output."""
    position: str | None
    recorded_version: str | None
    """The flow's code version the run started with (``Flow.version``), if journaled."""
    current_version: str


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One event of the feed of all runs (``Client.feed``)."""

    seq: int
    run_id: str
    kind: str
    position: str
    name: str | None
    data: JSON
    at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key of the HTTP API (its secret is never stored, only a hash). ``tenant`` is the tenant it
    acts in (None: every tenant); after ``expires_at`` it no longer authenticates."""

    id: str
    name: str
    role: str
    created_at: float
    revoked_at: float | None
    tenant: str | None = None
    expires_at: float | None = None

    @classmethod
    def _of(cls, k: KeyRecord) -> ApiKey:
        return cls(k.id, k.name, k.role, k.created_at, k.revoked_at, k.tenant, k.expires_at)

    @property
    def principal(self) -> Principal:
        """Who acts with this key."""
        return Principal(self.name, self.role, self.tenant, self.id)


def _hash_key(secret: str) -> str:
    # Keys are 256 random bits: a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """An approval a flow is waiting for."""

    run_id: str
    flow: str
    name: str
    position: str
    payload: JSON
    requested_at: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule that starts runs of ``flow`` (see ``Client.add_schedule``).

    ``next_at`` is the next occurrence to fire (None: the cron never falls due again); ``last_at`` the
    latest occurrence fired. Times are seconds since the epoch.
    """

    name: str
    flow: str
    cron: str
    tz: str
    input: JSON
    missed: str
    paused: bool
    next_at: float | None
    last_at: float | None
    created_at: float
    updated_at: float
    tenant: str = DEFAULT_TENANT
    """The tenant its runs start in."""

    @classmethod
    def _of(cls, s: ScheduleRecord) -> Schedule:
        next_at = None if s.next_at == _cron.NEVER else s.next_at
        fields = (s.name, s.flow, s.cron, s.tz, s.input, s.missed, s.paused)
        return cls(*fields, next_at, s.last_at, s.created_at, s.updated_at, s.tenant)
