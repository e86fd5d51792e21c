"""The PostgreSQL store (``podium[postgres]``, psycopg 3): many workers on many hosts share one database.

``PODIUM_DATABASE_URL=postgresql://user@host:5432/dbname`` (or ``postgres://``; any libpq URL, so
``?options=-csearch_path%3Dmyschema`` puts Podium's tables in a schema of their own).

Semantics are those of ``SQLiteStore``, statement for statement; what differs is how writers are kept apart:

* **Row locks instead of one write lock.** Every transaction that appends to a run's journal first locks that
  run's row (``SELECT ... FOR UPDATE``); lease fencing, the inbox check of a suspend and the uniqueness
  pre-check of a commit are therefore decided under the lock. Within one run, journal ``seq`` order is commit
  order, so ``load_events(after=...)`` never misses an event that commits late.
* **Claiming** is ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)``: concurrent workers take
  disjoint runs without waiting for each other.
* **Round trips.** A commit batch is one transaction in two round trips (pipeline mode): lock the runs and
  check the positions, then write everything and ``COMMIT``. Single statements run in autocommit mode.
* **The global feed** (``events_after``) must not skip an event whose transaction drew a lower ``seq`` but
  committed later. Writers hold a shared advisory lock while they insert events; the feed briefly takes it
  exclusively, which waits for the writers in flight, and reads the sequence's high-water mark: every event
  at or below it is committed (or never will be).
* **Deadlocks** (a child's ``child_done`` locks its parent's row, which another worker's batch may hold) are
  detected by the server; the losing transaction is retried a few times.

Migrations (``migrations/NNNN_*.postgres.sql``) are applied on first use in one transaction that holds an
advisory lock, so processes starting at once apply each exactly once; ``podium db migrate`` does it ahead.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..errors import ConfigError, InvalidStateError, RunNotFoundError, SignalRefusedError
from ..types import RunStatus
from . import payload_rows, stream_rows
from .audit import PostgresAudit
from .base import (
    Event,
    Gate,
    Outcome,
    RunRecord,
    Transition,
    Write,
)
from .erasure import PostgresErasure
from .payloads import STRAY_MARGIN, Collected, Encoder, PayloadOptions, Usage, delete_blobs, has_refs
from .postgres_conn import PostgresConnection
from .postgres_conn import migration_files as migration_files  # re-exported: `podium db migrate` and tests
from .postgres_datasets import PostgresDatasets
from .postgres_keyed import PostgresKeyed
from .postgres_prompts import PostgresPrompts
from .postgres_schedules import PostgresSchedules
from .postgres_streams import PostgresStreams
from .sqlite_rows import _EVENT_COLS, _RUN_COLS, _dump, _event, _run

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:  # pragma: no cover - exercised by a test that hides psycopg
    raise ConfigError(
        "a postgresql:// database URL needs psycopg 3 and psycopg-pool: pip install podium[postgres]"
    ) from exc

_RUNNABLE = (
    "status IN ('pending', 'waiting', 'running') AND (status = 'pending' "
    "OR (status = 'waiting' AND wake_at <= %(now)s) OR (status = 'running' AND lease_until < %(now)s))"
)
_TERMINAL_STATUS = {
    Transition.COMPLETE: RunStatus.COMPLETED,
    Transition.FAIL: RunStatus.FAILED,
    Transition.CANCEL: RunStatus.CANCELLED,
}
_LIVE = "('pending', 'running', 'waiting')"

_INSERT_EVENTS = (
    "INSERT INTO events (run_id, kind, step, name, data, at) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::float8[]) "
    "ON CONFLICT DO NOTHING"
)
# A run ends: release it, and append child_done to its parent's journal (waking the parent) unless the
# parent finished already. The parent's row is locked before its event is inserted (seq order = commit order).
_FINISH = (
    "WITH fin AS (UPDATE runs SET status = %(status)s, output = %(output)s, error = %(error)s, "
    "ended_at = %(now)s, updated_at = %(now)s, lease_owner = NULL, lease_until = NULL, wake_at = NULL "
    "WHERE id = %(id)s RETURNING parent_id, parent_step, flow), "
    "par AS (SELECT p.id, fin.parent_step, fin.flow FROM fin JOIN runs p ON p.id = fin.parent_id "
    f"WHERE fin.parent_step IS NOT NULL AND p.status IN {_LIVE} FOR UPDATE OF p), "
    "ins AS (INSERT INTO events (run_id, kind, step, name, data, at) "
    "SELECT id, 'child_done', parent_step, flow, %(data)s, %(now)s FROM par "
    "ON CONFLICT DO NOTHING RETURNING run_id) "
    "UPDATE runs SET inbox_seq = inbox_seq + 1, updated_at = %(now)s, "
    "wake_at = CASE WHEN status = 'waiting' THEN NULL ELSE wake_at END, "
    "status = CASE WHEN status = 'waiting' THEN 'pending' ELSE status END "
    "WHERE id IN (SELECT run_id FROM ins)"
)
_CREATE = (
    f"WITH r AS (INSERT INTO runs ({_RUN_COLS}) VALUES "
    f"({','.join(['%s'] * 22)}) ON CONFLICT DO NOTHING RETURNING id) "
    "INSERT INTO events (run_id, kind, step, name, data, at) SELECT %s, %s, %s, %s, %s, %s FROM r "
    "ON CONFLICT DO NOTHING RETURNING run_id"
)


def _event_arrays(events: Sequence[Event], enc: Encoder | None = None) -> tuple[list[Any], ...]:
    data = (
        [_dump(e.data) for e in events]
        if enc is None
        else [enc.dump(e.data, e.run_id, keep_root=True) for e in events]
    )
    return (
        [e.run_id for e in events],
        [e.kind for e in events],
        [e.step for e in events],
        [e.name for e in events],
        data,
        [e.at for e in events],
    )


def _run_params(run: RunRecord, enc: Encoder) -> tuple[Any, ...]:
    return (
        run.id,
        run.flow,
        run.status.value,
        run.key,
        enc.dump(run.input, run.id),
        enc.dump(run.output, run.id),
        _dump(run.error),
        run.parent_id,
        run.parent_step,
        run.created_at,
        run.updated_at,
        run.ended_at,
        run.lease_owner,
        run.lease_until,
        run.wake_at,
        run.deadline,
        run.inbox_seq,
        run.claims,
        run.priority,
        run.queue,
        run.tenant,
        run.subject,
    )


def _finish_params(
    run_id: str, status: RunStatus, output: Any, error: Any, now: float, enc: Encoder
) -> dict[str, Any]:
    data = {"run_id": run_id, "status": status.value, "output": output, "error": error}
    return {
        "id": run_id,
        "status": status.value,
        "output": enc.dump(output, run_id),
        "error": _dump(error),
        # the parent's child_done: the payload is referenced by the child (the parent reads it while the
        # child's row exists, and retention never releases an unfinished run's payloads)
        "data": enc.dump(data, run_id, keep_root=True),
        "now": now,
    }


class PostgresStore(
    PostgresConnection,
    PostgresDatasets,
    PostgresAudit,
    PostgresPrompts,
    PostgresSchedules,
    PostgresKeyed,
    PostgresStreams,
    PostgresErasure,
):
    """Runs and journals in PostgreSQL. ``PostgresStore("postgresql://user@host/db")``."""

    durable = True

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        payloads: PayloadOptions | None = None,
    ) -> None:
        self.url = url
        self.payloads = payloads or PayloadOptions()
        """Large values of journal rows are stored once by hash (see ``podium.storage.payloads``)."""
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout  # waiting longer for a connection is a StoreError (the server is down)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._feed_lock = 0
        self.channel = ""
        """The NOTIFY channel of this schema (``podium:<schema>``), set by ``open``."""
        self.version = 0
        """The schema version after ``open`` (the number of the last migration applied)."""

    @classmethod
    def from_url(cls, url: str, *, payloads: PayloadOptions | None = None) -> PostgresStore:
        return cls(url, payloads=payloads)

    # -- payloads -----------------------------------------------------------------------------
    async def _write_payloads(self, conn: psycopg.AsyncConnection[Any], enc: Encoder, now: float) -> None:
        for sql, params in payload_rows.pg_statements(enc, now):
            await conn.execute(sql, params)

    async def _runs(self, rows: Sequence[Sequence[Any]]) -> list[RunRecord]:
        """Rows as runs, their input and output references resolved."""
        runs = [_run(r) for r in rows]
        hit = [run for run, r in zip(runs, rows, strict=True) if has_refs(r[4]) or has_refs(r[5])]
        if hit:
            async with self._conn() as conn:
                values = await payload_rows.pg_resolve(
                    conn, self.payloads, [v for run in hit for v in (run.input, run.output)]
                )
            for k, run in enumerate(hit):
                run.input, run.output = values[2 * k], values[2 * k + 1]
        return runs

    async def _events(self, rows: Sequence[Sequence[Any]]) -> list[Event]:
        """Rows as events, their data's references resolved (only the payloads these events reference)."""
        events = [_event(r) for r in rows]
        hit = [e for e, r in zip(events, rows, strict=True) if has_refs(r[5])]
        if hit:
            async with self._conn() as conn:
                values = await payload_rows.pg_resolve(conn, self.payloads, [e.data for e in hit])
            for e, v in zip(hit, values, strict=True):
                e.data = v
        return events

    async def collect_payloads(
        self,
        *,
        ended_before: float,
        flows: Collection[str] | None = None,
        exclude: Collection[str] = (),
        tenants: Collection[str] | None = None,
        exclude_tenants: Collection[str] = (),
    ) -> Collected:
        async def tx(conn: psycopg.AsyncConnection[Any]) -> Collected:
            async with conn.transaction():
                # Exclusive: no writer (they hold it shared) is between referencing a payload and committing.
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._feed_lock,))
                done = await payload_rows.pg_collect(
                    conn,
                    ended_before=ended_before,
                    flows=flows,
                    exclude=exclude,
                    tenants=tenants,
                    exclude_tenants=exclude_tenants,
                )
                await conn.execute(stream_rows.PG_FORGET, (ended_before,))
                return done

        done = await self._retry(tx)
        blobs = self.payloads.blobs
        delete_blobs(blobs, done.files)  # after the commit: a crash leaves a file, not a hole
        if blobs is not None:  # files no row names, older than any commit in flight (crash leftovers)
            async with self._conn() as conn:
                strays = await payload_rows.pg_strays(conn, blobs, ended_before - STRAY_MARGIN)
            delete_blobs(blobs, strays)
        return done

    async def storage_usage(self, *, now: float) -> list[Usage]:
        async with self._conn() as conn:
            return await payload_rows.pg_usage(conn, now)

    # -- runs ---------------------------------------------------------------------------------
    async def create_run(self, run: RunRecord, first: Event) -> tuple[RunRecord, bool]:
        return (await self.create_runs([(run, first)]))[0]

    async def create_runs(self, items: Sequence[tuple[RunRecord, Event]]) -> list[tuple[RunRecord, bool]]:
        if not items:
            return []
        for run, first in items:
            if not first.at:
                first.at = run.created_at

        async def tx(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, bool]]:
            out: list[tuple[Any, bool]] = []
            enc = Encoder(self.payloads)
            async with conn.pipeline(), conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (self._feed_lock,))
                curs = []
                for run, e in items:
                    data = enc.dump(e.data, e.run_id, keep_root=True)
                    params = (*_run_params(run, enc), e.run_id, e.kind, e.step, e.name, data, e.at)
                    curs.append(await conn.execute(_CREATE, params))
                await self._write_payloads(conn, enc, items[0][0].created_at)
                for (run, _), cur in zip(items, curs, strict=True):
                    if await cur.fetchone() is not None:
                        out.append((run, True))
                        continue
                    row = None
                    if run.key is not None:  # the key was used already (or, rarely, the id)
                        found = await conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE key = %s", (run.key,))
                        row = await found.fetchone()
                    if row is None:
                        raise InvalidStateError(f"run id {run.id} exists already")
                    out.append((row, False))
            return out

        out = await self._retry(tx)
        found = await self._runs([r for r, _ in out if not isinstance(r, RunRecord)])
        return [(r if isinstance(r, RunRecord) else found.pop(0), created) for r, created in out]

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._one(f"SELECT {_RUN_COLS} FROM runs WHERE id = %s", (run_id,))
        return None if row is None else (await self._runs([row]))[0]

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
        where: list[str] = []
        args: list[Any] = []
        if tenant is not None:
            where.append("tenant = %s")
            args.append(tenant)
        if status is not None:
            where.append("status = ANY(%s)")
            args.append([s.value for s in status])
        if flow is not None:
            where.append("flow = %s")
            args.append(flow)
        if parent_id is not None:
            where.append("parent_id = %s")
            args.append(parent_id)
        if before is not None:
            where.append("(created_at, id) < (SELECT created_at, id FROM runs WHERE id = %s)")
            args.append(before)
        sql = f"SELECT {_RUN_COLS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
        args.append(limit)
        return await self._runs(await self._all(sql, args))

    async def load_events(self, run_id: str, *, after: int = 0) -> list[Event]:
        rows = await self._all(
            f"SELECT {_EVENT_COLS} FROM events WHERE run_id = %s AND seq > %s ORDER BY seq", (run_id, after)
        )
        return await self._events(rows)

    async def events_after(self, after: int, *, limit: int = 500) -> list[Event]:
        async with self._conn() as conn:
            async with conn.pipeline():
                async with conn.transaction():  # waits for every writer in flight (see the module's doc)
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._feed_lock,))
                    cur = await conn.execute("SELECT last_value, is_called FROM events_seq_seq")
                row = await cur.fetchone()
            high = int(row[0]) if row is not None and row[1] else 0
            cur = await conn.execute(
                f"SELECT {_EVENT_COLS} FROM events WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
                (after, high, limit),
            )
            rows = await cur.fetchall()
        return await self._events(rows)

    # -- workers ------------------------------------------------------------------------------
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
        if not flows:
            return []
        caps = {f: n for f, n in (limits or {}).items() if f in flows}
        qcaps = dict(queues or {})
        params = {
            "owner": owner,
            "until": lease_until,
            "now": now,
            "limit": limit,
            "flows": list(flows),
            "cap_flows": list(caps),
            "caps": list(caps.values()),
            "cap_queues": list(qcaps),
            "qcaps": list(qcaps.values()),
        }
        update = (
            "UPDATE runs SET status = 'running', lease_owner = %(owner)s, lease_until = %(until)s, "
            "wake_at = NULL, updated_at = %(now)s, claims = claims + 1 WHERE id IN ("
        )
        if not caps and not qcaps:
            rows = await self._all(
                f"{update}SELECT id FROM runs WHERE flow = ANY(%(flows)s) AND {_RUNNABLE} "
                "ORDER BY priority DESC, created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                f"RETURNING {_RUN_COLS}",
                params,
            )
        else:
            # Capped flows and queues: claimers take turns (one advisory lock per schema), so each counts the
            # live leases of the others' committed claims; a row locked by someone else is skipped (fewer
            # taken). Per capped flow, then per capped queue among the runs its flow lets through.
            sql = (
                f"{update}SELECT id FROM runs WHERE id = ANY(ARRAY("
                "SELECT q.id FROM (SELECT f.id, f.queue, f.priority, f.created_at, row_number() OVER "
                "(PARTITION BY f.queue ORDER BY f.priority DESC, f.created_at) AS qn FROM "
                "(SELECT id, flow, queue, priority, created_at, row_number() OVER "
                "(PARTITION BY flow ORDER BY priority DESC, created_at) AS rn FROM runs "
                f"WHERE flow = ANY(%(flows)s) AND {_RUNNABLE}) f "
                "LEFT JOIN unnest(%(cap_flows)s::text[], %(caps)s::int[]) AS l(flow, cap) ON l.flow = f.flow "
                "WHERE l.cap IS NULL OR f.rn <= l.cap - (SELECT count(*) FROM runs b WHERE b.flow = f.flow "
                "AND b.status = 'running' AND b.lease_until >= %(now)s)) q "
                "LEFT JOIN unnest(%(cap_queues)s::text[], %(qcaps)s::int[]) AS m(queue, cap) "
                "ON m.queue = q.queue "
                "WHERE m.cap IS NULL OR q.qn <= m.cap - (SELECT count(*) FROM runs b WHERE b.queue = q.queue "
                "AND b.status = 'running' AND b.lease_until >= %(now)s) "
                "ORDER BY q.priority DESC, q.created_at LIMIT %(limit)s)) FOR UPDATE SKIP LOCKED) "
                f"RETURNING {_RUN_COLS}"
            )

            async def tx(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended('podium.cap:' || current_schema(), 0))"
                    )
                    cur = await conn.execute(sql, params)
                    return await cur.fetchall()

            rows = await self._retry(tx)
        runs = await self._runs(rows)
        runs.sort(key=lambda r: (-r.priority, r.created_at))
        return runs

    async def claim_run(self, run_id: str, owner: str, *, now: float, lease_until: float) -> RunRecord | None:
        sql = (
            "UPDATE runs SET status = 'running', lease_owner = %(owner)s, lease_until = %(until)s, "
            f"wake_at = NULL, updated_at = %(now)s, claims = claims + 1 WHERE id = %(id)s AND {_RUNNABLE} "
            f"RETURNING {_RUN_COLS}"
        )
        row = await self._one(sql, {"owner": owner, "until": lease_until, "now": now, "id": run_id})
        return None if row is None else (await self._runs([row]))[0]

    async def commit(
        self, owner: str, writes: Sequence[Write], *, now: float, lease_until: float
    ) -> list[Outcome]:
        if not writes:
            return []
        for w in writes:
            for e in w.events:
                if not e.at:
                    e.at = now
        return await self._retry(lambda conn: self._commit(conn, owner, writes, now))

    async def _commit(
        self, conn: psycopg.AsyncConnection[Any], owner: str, writes: Sequence[Write], now: float
    ) -> list[Outcome]:
        """The whole batch in one round trip, if every lease holds and no position is journaled already
        (nearly always); otherwise that transaction aborts itself and ``_commit_checked`` redoes it."""
        ids = sorted({w.run_id for w in writes})
        suspends: dict[int, Any] = {}
        enc = Encoder(self.payloads)
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (self._feed_lock,))
                await conn.execute(
                    "SELECT podium_check(count(*) = %s) FROM (SELECT id FROM runs WHERE id = ANY(%s) "
                    "AND lease_owner = %s AND status = 'running' ORDER BY id FOR UPDATE) held",
                    (len(ids), ids, owner),
                )
                for w in writes:
                    if w.transition is Transition.CONTINUE:
                        await self._continue(conn, w, now, enc)
                events = [e for w in writes for e in w.events]
                if events:  # no ON CONFLICT: a position journaled already aborts the transaction
                    await conn.execute(
                        _INSERT_EVENTS.removesuffix(" ON CONFLICT DO NOTHING"), _event_arrays(events, enc)
                    )
                for i, w in enumerate(writes):
                    cur = await self._transition(conn, w, now, enc)
                    if cur is not None:
                        suspends[i] = cur
                await self._write_payloads(conn, enc, now)
                await conn.execute("COMMIT")
                outcomes = [Outcome.OK] * len(writes)
                for i, cur in suspends.items():
                    outcomes[i] = Outcome.OK if await cur.fetchone() is not None else Outcome.INBOX_CHANGED
                return outcomes
        except psycopg.Error as exc:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.execute("ROLLBACK")
            if exc.sqlstate not in ("PD001", "23505"):  # not a failed check, nor a unique violation
                raise
        return await self._commit_checked(conn, owner, writes, now)

    async def _transition(
        self, conn: psycopg.AsyncConnection[Any], w: Write, now: float, enc: Encoder
    ) -> Any:
        """Queue ``w``'s status change; for a suspend, the cursor that tells whether it took."""
        t = w.transition
        if t in _TERMINAL_STATUS:
            params = _finish_params(w.run_id, _TERMINAL_STATUS[t], w.output, w.error, now, enc)
            await conn.execute(_FINISH, params)
        elif t is Transition.SUSPEND:
            return await conn.execute(
                "UPDATE runs SET status = 'waiting', wake_at = %s, lease_owner = NULL, "
                "lease_until = NULL WHERE id = %s AND inbox_seq = %s RETURNING id",
                (w.wake_at, w.run_id, w.seen_inbox),
            )
        elif t is Transition.RELEASE:
            await conn.execute(
                "UPDATE runs SET status = 'pending', lease_owner = NULL, lease_until = NULL WHERE id = %s",
                (w.run_id,),
            )
        return None

    async def _commit_checked(
        self, conn: psycopg.AsyncConnection[Any], owner: str, writes: Sequence[Write], now: float
    ) -> list[Outcome]:
        """The batch in two round trips: lock and check first, then write what may be written."""
        ids = sorted({w.run_id for w in writes})  # one lock order for every batch: fewer deadlocks
        probe = [e for w in writes if w.transition is not Transition.CONTINUE for e in w.events]
        outcomes: list[Outcome | None] = []
        suspends: dict[int, Any] = {}
        enc = Encoder(self.payloads)
        async with conn.pipeline():
            async with conn.transaction():
                # Round trip 1: lock the runs this worker still holds, and find positions journaled already.
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (self._feed_lock,))
                held_cur = await conn.execute(
                    "SELECT id FROM runs WHERE id = ANY(%s) AND lease_owner = %s AND status = 'running' "
                    "ORDER BY id FOR UPDATE",
                    (ids, owner),
                )
                taken_cur = None
                if probe:
                    taken_cur = await conn.execute(
                        "SELECT e.run_id, e.kind, e.step FROM events e JOIN "
                        "unnest(%s::text[], %s::text[], %s::text[]) AS p(run_id, kind, step) "
                        "ON e.run_id = p.run_id AND e.kind = p.kind AND e.step = p.step",
                        _event_arrays(probe)[:3],
                    )
                held = {r[0] for r in await held_cur.fetchall()}
                taken = set() if taken_cur is None else {tuple(r) for r in await taken_cur.fetchall()}
                # Round trip 2: everything else, and COMMIT.
                ok: list[Write] = []
                for w in writes:
                    if w.run_id not in held:
                        outcomes.append(Outcome.LEASE_LOST)
                    elif w.transition is not Transition.CONTINUE and any(
                        (e.run_id, e.kind, e.step) in taken for e in w.events
                    ):
                        outcomes.append(Outcome.LEASE_LOST)  # someone else journaled this position
                    else:
                        outcomes.append(None)
                        ok.append(w)
                for w in ok:
                    if w.transition is Transition.CONTINUE:
                        await self._continue(conn, w, now, enc)
                events = [e for w in ok for e in w.events]
                if events:
                    await conn.execute(_INSERT_EVENTS, _event_arrays(events, enc))
                for i, w in enumerate(writes):
                    if outcomes[i] is None:
                        cur = await self._transition(conn, w, now, enc)
                        if cur is not None:
                            suspends[i] = cur
                await self._write_payloads(conn, enc, now)
            for i, cur in suspends.items():  # the sync that fetches these also carries the COMMIT
                outcomes[i] = Outcome.OK if await cur.fetchone() is not None else Outcome.INBOX_CHANGED
        return [Outcome.OK if o is None else o for o in outcomes]

    async def _continue(self, conn: psycopg.AsyncConnection[Any], w: Write, now: float, enc: Encoder) -> None:
        """Continue-as-new: drop the journal but for unread signals and a cancel, take the new input,
        and make the run runnable again."""
        await conn.execute(
            "DELETE FROM events WHERE run_id = %s AND (kind NOT IN ('signal', 'cancel') OR seq = ANY(%s))",
            (w.run_id, list(w.consumed)),
        )
        await conn.execute(
            "UPDATE runs SET input = %s, status = 'pending', lease_owner = NULL, lease_until = NULL, "
            "wake_at = NULL, updated_at = %s WHERE id = %s",
            (enc.dump(w.output, w.run_id), now, w.run_id),
        )

    async def heartbeat(self, owner: str, run_ids: Collection[str], *, lease_until: float) -> dict[str, int]:
        if not run_ids:
            return {}
        rows = await self._all(
            "UPDATE runs SET lease_until = %s WHERE lease_owner = %s AND status = 'running' "
            "AND id = ANY(%s) RETURNING id, inbox_seq",
            (lease_until, owner, list(run_ids)),
        )
        return {r[0]: r[1] for r in rows}

    # -- inbox --------------------------------------------------------------------------------
    async def deliver(self, event: Event, *, now: float, gate: Gate | None = None) -> Event | None:
        if not event.at:
            event.at = now

        async def tx(conn: psycopg.AsyncConnection[Any]) -> Event | None:
            enc = Encoder(self.payloads)
            async with conn.pipeline(), conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (self._feed_lock,))
                run_cur = await conn.execute(
                    "SELECT status FROM runs WHERE id = %s FOR UPDATE", (event.run_id,)
                )
                gate_cur = None
                if gate is not None:
                    gate_cur = await conn.execute(
                        "SELECT 1 FROM events o WHERE o.run_id = %s AND o.kind = %s AND o.name = %s "
                        "AND NOT EXISTS (SELECT 1 FROM events c WHERE c.run_id = o.run_id "
                        "AND c.step = o.step AND c.kind = ANY(%s)) LIMIT 1",
                        (event.run_id, gate.opened, gate.name, list(gate.closed)),
                    )
                row = await run_cur.fetchone()
                if row is None:
                    raise RunNotFoundError(f"no run with id {event.run_id!r}")
                if RunStatus(row[0]).terminal:
                    raise InvalidStateError(f"run {event.run_id} is {row[0]}")
                if gate is not None and gate_cur is not None and await gate_cur.fetchone() is None:
                    raise SignalRefusedError(f"run {event.run_id}: no open {gate.opened} {gate.name!r}")
                cur = await conn.execute(
                    "WITH ins AS (INSERT INTO events (run_id, kind, step, name, data, at) "
                    "VALUES (%(run)s, %(kind)s, %(step)s, %(name)s, %(data)s, %(at)s) "
                    "ON CONFLICT DO NOTHING RETURNING seq), "
                    "upd AS (UPDATE runs SET inbox_seq = inbox_seq + 1, updated_at = %(now)s, "
                    "wake_at = CASE WHEN status = 'waiting' THEN NULL ELSE wake_at END, "
                    "status = CASE WHEN status = 'waiting' THEN 'pending' ELSE status END "
                    "WHERE id = %(run)s AND EXISTS (SELECT 1 FROM ins)) "
                    "SELECT seq FROM ins",
                    {
                        "run": event.run_id,
                        "kind": event.kind,
                        "step": event.step,
                        "name": event.name,
                        "data": enc.dump(event.data, event.run_id, keep_root=True),
                        "at": event.at,
                        "now": now,
                    },
                )
                await self._write_payloads(conn, enc, now)
                stored = await cur.fetchone()
            if stored is None:
                return None
            event.seq = int(stored[0])
            return event

        return await self._retry(tx)

    async def cancel_idle(self, run_id: str, *, now: float, request: Event | None = None) -> bool:
        if request is not None and not request.at:
            request.at = now

        async def tx(conn: psycopg.AsyncConnection[Any]) -> bool:
            async with conn.pipeline(), conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (self._feed_lock,))
                cur = await conn.execute("SELECT status FROM runs WHERE id = %s FOR UPDATE", (run_id,))
                row = await cur.fetchone()
                if row is None or row[0] not in ("pending", "waiting"):
                    return False
                end = Event(run_id, "end", "", data={"status": "cancelled"}, at=now)
                events = [end] if request is None else [request, end]
                enc = Encoder(self.payloads)
                await conn.execute(_INSERT_EVENTS, _event_arrays(events, enc))
                error = {"type": "Cancelled", "message": "cancelled", "retryable": False}
                params = _finish_params(run_id, RunStatus.CANCELLED, None, error, now, enc)
                await conn.execute(_FINISH, params)
                await self._write_payloads(conn, enc, now)
            return True

        return await self._retry(tx)

    async def next_wakeup(self, flows: Collection[str]) -> float | None:
        if not flows:
            return None
        row = await self._one(
            "SELECT MIN(CASE WHEN status = 'waiting' THEN wake_at ELSE lease_until END) FROM runs "
            "WHERE status IN ('waiting', 'running') AND flow = ANY(%s)",
            (list(flows),),
        )
        return None if row is None or row[0] is None else float(row[0])

    async def pending_approvals(self, *, limit: int = 100) -> list[tuple[RunRecord, Event]]:
        cols = ", ".join(f"r.{c.strip()}" for c in _RUN_COLS.split(","))
        ecols = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLS.split(","))
        rows = await self._all(
            f"SELECT {cols}, {ecols} FROM events e JOIN runs r ON r.id = e.run_id "
            f"WHERE e.kind = 'approval' AND r.status IN {_LIVE} "
            "AND NOT EXISTS (SELECT 1 FROM events d WHERE d.run_id = e.run_id "
            "AND d.kind IN ('decision', 'withdrawn') AND d.step = e.step) ORDER BY e.seq LIMIT %s",
            (limit,),
        )
        n = len(_RUN_COLS.split(","))
        runs = await self._runs([r[:n] for r in rows])
        return list(zip(runs, await self._events([r[n:] for r in rows]), strict=True))
