"""The Store protocol: what the engine and the client need from persistence.

A store keeps two things: **runs** (one row per run: flow, status, input, output, lease) and each run's
**journal** (an append-only, ordered list of events). It knows no flow semantics; it guarantees:

* ``create_run`` is idempotent on ``key``;
* an event is unique per ``(run_id, kind, step)``, so an inbox event (signal, decision, cancel) sent twice
  is stored once;
* a worker's writes to a run are fenced by its lease: a worker that lost the lease writes nothing;
* a run that receives an inbox event while ``waiting`` becomes ``pending`` (runnable) in the same
  transaction; a worker can only suspend a run if no inbox event arrived since it last looked.

Every time is a float of seconds since the epoch passed in by the caller, so stores never read a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..types import JSON, RunStatus
from .audit import AuditCheckpoint, AuditDraft, AuditRecord
from .payloads import Collected, Usage

if TYPE_CHECKING:
    from .erasure import Erased


@dataclass(slots=True)
class RunRecord:
    """One run's row."""

    id: str
    flow: str
    status: RunStatus
    input: JSON
    key: str | None = None
    output: JSON = None
    error: dict[str, Any] | None = None
    parent_id: str | None = None
    parent_step: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    ended_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    wake_at: float | None = None
    deadline: float | None = None
    inbox_seq: int = 0
    claims: int = 0
    priority: int = 0
    """Runnable runs are claimed highest priority first, then oldest first."""
    queue: str = "default"
    """The queue of the run's flow when it was created; a queue's runs at once may be capped."""
    tenant: str = "default"
    """The tenant the run belongs to (child runs inherit it); principals of other tenants never see it."""
    subject: str | None = None
    """The data subject (a person) whose data the run holds, if any (child runs inherit it): what
    ``Client.erase_subject`` erases."""


@dataclass(slots=True)
class Event:
    """One journal entry. ``step`` is the position in the flow ('' for run-level events)."""

    run_id: str
    kind: str
    step: str
    name: str | None = None
    data: JSON = None
    at: float = 0.0
    seq: int = 0


@dataclass(slots=True)
class StreamChunk:
    """A piece of a streaming step's text (``Store.stream_append``), or, with ``text`` None, a reset: the step
    streams again from the start (epoch ``epoch``), so a reader drops what it showed of earlier epochs."""

    id: int
    run_id: str
    step: str
    epoch: int
    offset: int
    """Where ``text`` starts within this epoch's text (characters)."""
    text: str | None
    at: float = 0.0


class Transition(enum.Enum):
    """What a worker's commit does to the run's row besides appending events."""

    NONE = "none"
    COMPLETE = "completed"
    FAIL = "failed"
    CANCEL = "cancelled"
    SUSPEND = "waiting"
    RELEASE = "pending"
    CONTINUE = "continue"  # continue-as-new: a fresh journal with a new input (``Write.output``)


@dataclass(slots=True)
class Write:
    """A worker's write to one run: events to append and an optional status transition."""

    run_id: str
    events: list[Event] = field(default_factory=list)
    transition: Transition = Transition.NONE
    output: JSON = None
    error: dict[str, Any] | None = None
    wake_at: float | None = None
    seen_inbox: int = 0
    consumed: tuple[int, ...] = ()
    """CONTINUE: the signals (by seq) already received. The journal is dropped but for the other
    signals and a cancel, which carry over to the run's next generation."""


@dataclass(frozen=True, slots=True)
class Gate:
    """A condition ``deliver`` checks in its transaction: the run's journal holds an event of kind
    ``opened`` named ``name`` with no event of a kind in ``closed`` at the same position. ("The run is
    inside milestone M", "the run waits for signal S".)"""

    opened: str
    closed: tuple[str, ...]
    name: str


class Outcome(enum.Enum):
    """The result of one ``Write``."""

    OK = "ok"
    LEASE_LOST = "lease_lost"
    INBOX_CHANGED = "inbox_changed"  # a suspend was refused: new inbox events arrived; run stays held


class Store(Protocol):
    """Persistence for runs and journals. Implementations: memory, SQLite (PostgreSQL follows)."""

    durable: bool
    """True when step results are kept in JSON form (as every store that outlives the process must);
    the engine then converts results to JSON when journaling and rebuilds them on replay."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_run(self, run: RunRecord, first: Event) -> tuple[RunRecord, bool]:
        """Insert ``run`` with its first journal event; on a ``key`` already used, return that run.

        Returns ``(run, created)``.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

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
        """Newest first; ``before`` is a run id to page from (exclusive); ``tenant`` keeps that tenant's."""
        ...

    async def load_events(self, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's journal in order, optionally only events with ``seq > after``."""
        ...

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
        """Take up to ``limit`` runnable runs of the given flows: pending ones, waiting ones whose
        ``wake_at`` has passed, and running ones whose lease expired; highest ``priority`` first, then
        oldest. ``limits`` caps, per flow, the runs running at once (live leases) across all workers;
        ``queues`` caps, per queue (``RunRecord.queue``), the runs running at once across all workers and
        all flows. A run is taken only if both its flow and its queue have a free slot."""
        ...

    async def claim_run(self, run_id: str, owner: str, *, now: float, lease_until: float) -> RunRecord | None:
        """Take one specific run if it is runnable."""
        ...

    async def commit(
        self, owner: str, writes: Sequence[Write], *, now: float, lease_until: float
    ) -> list[Outcome]:
        """Apply a worker's writes in one transaction (group commit), each fenced by the lease.

        Terminal transitions release the lease, set output/error, and append ``child_done`` to the
        parent's journal (waking it). ``SUSPEND`` sets ``waiting`` with ``wake_at`` unless the run's
        ``inbox_seq`` differs from ``seen_inbox``.
        """
        ...

    async def heartbeat(self, owner: str, run_ids: Collection[str], *, lease_until: float) -> dict[str, int]:
        """Extend the lease of runs still held by ``owner``; returns their current ``inbox_seq``."""
        ...

    async def deliver(self, event: Event, *, now: float, gate: Gate | None = None) -> Event | None:
        """Append an inbox event (signal, decision, cancel) from outside the run.

        Raises ``RunNotFoundError`` or ``InvalidStateError`` (run finished). Returns ``None`` when an
        event with the same ``(run_id, kind, step)`` exists already (a duplicate), else the stored event.
        Bumps ``inbox_seq``; a ``waiting`` run becomes ``pending``. With a ``gate`` that does not hold,
        raises ``SignalRefusedError`` and stores nothing.
        """
        ...

    async def cancel_idle(self, run_id: str, *, now: float, request: Event | None = None) -> bool:
        """Cancel the run at once if no worker holds it (pending or waiting). True if it did.

        ``request`` (the ``cancel`` event asking for it) is journaled in the same transaction, unless one is
        there already: no worker can claim the run between the request and its end.
        """
        ...

    async def next_wakeup(self, flows: Collection[str]) -> float | None:
        """The earliest time a waiting run's timer falls due or a held run's lease expires."""
        ...

    async def pending_approvals(self, *, limit: int = 100) -> list[tuple[RunRecord, Event]]:
        """Approval requests of waiting or running runs that have no decision yet, oldest first."""
        ...

    async def cache_get(self, key: str) -> JSON:
        """A cached value, or None."""
        ...

    async def cache_put(self, key: str, value: JSON, *, now: float) -> None:
        """Store ``value`` under ``key`` (the first writer wins)."""
        ...

    async def cache_scan(self, prefix: str, *, limit: int = 10_000) -> list[tuple[str, JSON]]:
        """Entries whose key starts with ``prefix`` (newest last)."""
        ...

    async def spend_add(self, flow: str, day: str, cost: float) -> None:
        """Add ``cost`` dollars to ``flow``'s spending on ``day`` (``YYYY-MM-DD``, UTC)."""
        ...

    async def spend_get(self, flow: str, day: str) -> float:
        """Dollars ``flow`` spent on ``day``."""
        ...

    async def schedule_put(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Insert or replace the schedule named ``schedule.name`` (``created_at`` of a replaced one is kept).

        Occurrences already claimed (see ``schedule_claim_due``) are not affected.
        """
        ...

    async def schedule_get(self, name: str) -> ScheduleRecord | None: ...

    async def schedule_list(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        ...

    async def schedule_delete(self, name: str) -> bool:
        """Delete a schedule and its claimed but unstarted occurrences. True if it existed."""
        ...

    async def schedule_set_paused(
        self, name: str, paused: bool, *, now: float, next_at: float | None = None
    ) -> ScheduleRecord | None:
        """Pause or resume a schedule (``next_at``, if given, is its new next occurrence). None if unknown."""
        ...

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
        """Claim, in one transaction, the occurrences of ``flows``' schedules that a worker must start now.

        1. Occurrences claimed earlier whose claim expired (their worker died before starting them) are
           claimed again by ``owner``.
        2. For each unpaused schedule with ``next_at <= now`` (at most ``limit``), ``plan(schedule, now)``
           gives the occurrences to fire and the new ``next_at``; ``next_at`` is advanced only if it is still
           the one read (compare-and-set), and the occurrences are recorded as claimed by ``owner`` until
           ``lease_until`` in the same transaction.

        A caller starts a run for each returned occurrence, then calls ``schedule_fired``. Two workers never
        claim the same occurrence while its claim holds; a crash after claiming loses nothing.
        """
        ...

    async def schedule_fired(self, fires: Sequence[ScheduleFire]) -> None:
        """Forget claimed occurrences whose runs were started."""
        ...

    async def schedule_next_at(self, flows: Collection[str]) -> float | None:
        """When a worker running ``flows`` must look at schedules next: the earliest ``next_at`` of an
        unpaused schedule, or the earliest expiry of a claimed occurrence. None if there is nothing."""
        ...

    async def create_runs(self, items: Sequence[tuple[RunRecord, Event]]) -> list[tuple[RunRecord, bool]]:
        """``create_run`` for each ``(run, first)`` pair, in one transaction (all or none)."""
        ...

    async def events_after(self, after: int, *, limit: int = 500) -> list[Event]:
        """Journal events of all runs with ``seq > after``, in order (a live feed of everything)."""
        ...

    async def key_add(self, key: KeyRecord) -> None:
        """Store a new API key (its hash must be unique)."""
        ...

    async def key_find(self, hash: str) -> KeyRecord | None:
        """The API key with this hash, unless revoked."""
        ...

    async def key_list(self) -> list[KeyRecord]:
        """Every API key, revoked ones included, oldest first."""
        ...

    async def key_revoke(self, key_id: str, *, now: float) -> bool:
        """Revoke a key; False if there is no such (unrevoked) key."""
        ...

    async def dataset_create(self, dataset: DatasetRecord) -> bool:
        """Create a dataset; False (and nothing changed) if one of that name exists."""
        ...

    async def dataset_get(self, name: str) -> DatasetRecord | None:
        """The dataset with its current ``version`` and number of ``items``, or None."""
        ...

    async def dataset_list(self) -> list[DatasetRecord]:
        """Every dataset, by name."""
        ...

    async def dataset_append(self, name: str, items: Sequence[ItemRecord], *, now: float) -> int | None:
        """Append item revisions in one transaction (all or none); each gets the dataset's next version.

        Returns the dataset's new version, or None if there is no such dataset.
        """
        ...

    async def dataset_items(self, name: str, *, version: int | None = None) -> list[ItemRecord]:
        """The newest revision of each item at or below ``version`` (default: the latest), in the order
        items were first added."""
        ...

    async def feedback_add(self, feedback: FeedbackRecord) -> bool:
        """Store a feedback record; False if one with its id exists already (the first one is kept)."""
        ...

    async def feedback_list(self, *, run_id: str | None = None, limit: int = 100) -> list[FeedbackRecord]:
        """Feedback records (of one run, or all), newest first."""
        ...

    async def eval_put(self, record: EvalRecord) -> None:
        """Insert or replace the evaluation ``record.id``."""
        ...

    async def eval_get(self, eval_id: str) -> EvalRecord | None: ...

    async def eval_list(self, *, dataset: str | None = None, limit: int = 50) -> list[EvalRecord]:
        """Evaluations (of one dataset, or all), newest first."""
        ...

    async def eval_results_put(self, results: Sequence[EvalResultRecord]) -> None:
        """Insert or replace results, each keyed by ``(eval_id, variant, item_id)``, in one transaction."""
        ...

    async def eval_results(self, eval_id: str) -> list[EvalResultRecord]:
        """The evaluation's results, by variant, then oldest first."""
        ...

    async def collect_payloads(
        self,
        *,
        ended_before: float,
        flows: Collection[str] | None = None,
        exclude: Collection[str] = (),
        tenants: Collection[str] | None = None,
        exclude_tenants: Collection[str] = (),
    ) -> Collected:
        """Retention: release the payloads of runs that finished before ``ended_before`` (of ``flows`` if
        given, never of ``exclude``; of ``tenants`` if given, never of ``exclude_tenants``), then delete
        every payload no run references. The runs and their journals stay (steps, timings, statuses); a
        released value reads as ``{"expired_payload": ..., "bytes": N}``. A payload that an unfinished run
        references is never deleted."""
        ...

    async def storage_usage(self, *, now: float) -> list[Usage]:
        """Journal and payload bytes by flow and by age of run (``podium stats``)."""
        ...

    async def stream_begin(
        self, run_id: str, step: str, *, now: float, owner: str | None = None
    ) -> int | None:
        """Start streaming text for ``step``: its epoch (1 the first time; later ones, after a retry or a
        takeover, are announced by a reset chunk). With ``owner``, fenced by the lease: None (and nothing
        written) unless ``owner`` holds the running run."""
        ...

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
        """Add a chunk of streamed text (``offset``: characters of this epoch before it). With ``owner``,
        fenced by the lease: False (and nothing written) unless ``owner`` holds the running run."""
        ...

    async def stream_read(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[StreamChunk]:
        """The run's stream chunks with ``id > after``, in order."""

    # -- erasure (podium/storage/erasure.py) -----------------------------------------------------
    async def runs_of_subject(self, subject: str) -> list[RunRecord]:
        """Every run whose data subject is ``subject``, in any status."""
        ...

    async def erase_runs(self, run_ids: Sequence[str]) -> Erased:
        """Erase the input, output, error, journal data, token stream and payloads of those of ``run_ids``
        that are finished, keeping their skeleton; runs not finished are left alone."""
        ...

    # -- the audit trail (podium/storage/audit.py) ----------------------------------------------
    async def audit_append(self, drafts: Sequence[AuditDraft]) -> list[AuditRecord]:
        """Append entries to the hash chain, in order, atomically; the stored records."""
        ...

    async def audit_scan(self, after: int = 0, *, limit: int = 10_000) -> list[AuditRecord]:
        """Entries with ``seq > after``, in order."""
        ...

    async def audit_erase(self, subject: str) -> int:
        """Erase the payloads of ``subject``'s entries (their hashes stay); how many were erased."""
        ...

    async def audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        """Store a signed checkpoint (replacing one at the same ``seq``)."""
        ...

    async def audit_checkpoints(self) -> list[AuditCheckpoint]:
        """Every checkpoint, by ``seq``."""
        ...

    # -- prompt registry (podium.management.prompts gives these their meaning) --------------------
    async def prompt_push(self, prompt: PromptRecord) -> tuple[PromptRecord, bool]:
        """Store a new version of ``prompt.name`` numbered one past the latest (``prompt.version`` is
        ignored), in one transaction; if a version with the same ``hash`` exists, return it instead.

        Returns ``(version, created)``.
        """
        ...

    async def prompt_get(self, name: str, version: int) -> PromptRecord | None: ...

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        """Every version of ``name``, oldest first."""
        ...

    async def prompt_latest(self) -> list[PromptRecord]:
        """The latest version of every prompt, by name."""
        ...

    async def prompt_labels(self, name: str) -> list[PromptLabelRecord]:
        """The labels of ``name``, by label."""
        ...

    async def prompt_label(self, name: str, label: str) -> PromptLabelRecord | None: ...

    async def prompt_move(
        self, name: str, label: str, version: int, *, now: float, rollback: bool = False
    ) -> PromptLabelRecord:
        """Point ``label`` at ``version`` (creating the label), bump its ``rev`` and record the move, in one
        transaction."""
        ...

    async def prompt_moves(self, name: str, label: str) -> list[PromptMove]:
        """The moves of one label, oldest first."""
        ...

    async def prompt_split_put(self, name: str, arms: Mapping[str, int] | None, *, now: float) -> None:
        """Store the split of ``name``'s traffic over arms (ordered), or remove it (``None``)."""
        ...

    async def prompt_split(self, name: str) -> dict[str, int] | None:
        """The split of ``name``'s traffic (in the order stored), or None."""
        ...


@dataclass(slots=True)
class ScheduleRecord:
    """One cron schedule's row. The store keeps the cron text but never interprets it.

    ``next_at`` is the schedule's next occurrence that no worker has claimed yet; ``last_at`` the latest
    occurrence claimed so far. ``missed`` is the policy for occurrences missed while no worker ran.
    """

    name: str
    flow: str
    cron: str
    tz: str = "UTC"
    input: JSON = None
    missed: str = "skip"
    paused: bool = False
    next_at: float = 0.0
    last_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    tenant: str = "default"
    """The tenant its runs start in."""


@dataclass(slots=True)
class ScheduleFire:
    """One claimed occurrence: start a run of ``flow`` with ``input`` in ``tenant`` for the schedule's time
    ``at``."""

    name: str
    flow: str
    input: JSON
    at: float
    tenant: str = "default"


@dataclass(slots=True)
class KeyRecord:
    """An API key of the HTTP API: its ``role`` and a hash of the secret (never the secret itself).

    ``tenant`` is the one tenant it acts in (None: every tenant, a platform key); after ``expires_at`` (if
    set) it no longer authenticates."""

    id: str
    name: str
    role: str
    hash: str
    created_at: float = 0.0
    revoked_at: float | None = None
    tenant: str | None = None
    expires_at: float | None = None


@dataclass(slots=True)
class DatasetRecord:
    """A named dataset. ``version`` counts the item revisions appended so far; ``items`` its items."""

    name: str
    description: str = ""
    created_at: float = 0.0
    version: int = 0
    items: int = 0


@dataclass(slots=True)
class ItemRecord:
    """One revision of a dataset item: ``input``, the ``expected`` output (or None), free ``metadata`` and
    where it came from (``source``: run id, step, model, prompt). ``version`` is set by the store."""

    id: str
    input: JSON
    expected: JSON = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    version: int = 0
    created_at: float = 0.0


@dataclass(slots=True)
class FeedbackRecord:
    """A person's feedback on one step's output, linked to the model and prompt that produced it.

    ``kind``: ``rating`` (a score and/or comment), ``correction`` (a corrected output) or ``approval`` (an
    approval decided with an edited payload: ``original`` is what the flow proposed)."""

    id: str
    run_id: str
    step: str
    kind: str
    step_name: str | None = None
    score: int | None = None
    comment: str | None = None
    original: JSON = None
    correction: JSON = None
    model: str | None = None
    served_by: str | None = None
    prompt: dict[str, Any] | None = None
    dataset: str | None = None
    item_id: str | None = None
    author: str | None = None
    created_at: float = 0.0


@dataclass(slots=True)
class EvalRecord:
    """One evaluation: ``flow`` run for each item of ``dataset`` (at ``dataset_version``) and variant.

    ``variants`` maps a variant's name to its run pins; ``scorers`` are the scorers' names; ``summary``
    holds per-variant aggregates once the evaluation finished (``status`` ``running`` -> ``finished``)."""

    id: str
    dataset: str
    dataset_version: int
    flow: str
    variants: dict[str, dict[str, str]]
    scorers: list[str]
    status: str = "running"
    created_at: float = 0.0
    finished_at: float | None = None
    summary: JSON = None


@dataclass(slots=True)
class EvalResultRecord:
    """The outcome of one item under one variant: the run, its output, scores (None: not applicable),
    dollars and seconds; ``error`` when the run failed."""

    eval_id: str
    variant: str
    item_id: str
    run_id: str | None
    output: JSON
    scores: dict[str, float | None]
    cost: float = 0.0
    latency: float = 0.0
    error: str | None = None
    created_at: float = 0.0


SchedulePlan = Callable[[ScheduleRecord, float], tuple[list[float], float]]
"""``plan(schedule, now) -> (occurrence times to fire, new next_at)``: the cron arithmetic and the missed-run
policy, which live above the store (``podium.triggers.cron``)."""


@dataclass(slots=True)
class PromptRecord:
    """One immutable version of a named prompt template."""

    name: str
    version: int
    hash: str
    template: str
    system: str | None = None
    variables: list[str] = field(default_factory=list)
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(slots=True)
class PromptLabelRecord:
    """A label of a prompt and the version it points at; ``rev`` counts its moves (1 after the first)."""

    name: str
    label: str
    version: int
    rev: int = 0
    updated_at: float = 0.0


@dataclass(slots=True)
class PromptMove:
    """One move of a label (``from_version`` is None when the label was created)."""

    name: str
    label: str
    from_version: int | None
    to_version: int
    rollback: bool = False
    at: float = 0.0
