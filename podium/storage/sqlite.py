"""The default store: one SQLite file in WAL mode, safe for several worker processes.

Every commit is durable (``synchronous=FULL``): a finished step is on disk before the flow moves on.
Writes use ``BEGIN IMMEDIATE`` so concurrent processes serialize on the database's write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidStateError, RunNotFoundError, SignalRefusedError, StoreError
from ..types import RunStatus
from . import payload_rows, stream_rows
from .audit import SQLiteAudit
from .base import (
    Event,
    Gate,
    Outcome,
    RunRecord,
    StreamChunk,
    Transition,
    Write,
)
from .erasure import SQLiteErasure
from .payloads import STRAY_MARGIN, Collected, Encoder, PayloadOptions, Usage, delete_blobs, has_refs
from .prompt_rows import SQLitePrompts
from .sqlite_datasets import SQLiteDatasets
from .sqlite_keyed import SQLiteKeyed
from .sqlite_rows import _EVENT_COLS, _RUN_COLS, _dump, _event, _run
from .sqlite_schedules import SQLiteSchedules

_RUNNABLE = (
    "status IN ('pending', 'waiting', 'running') AND (status = 'pending' "
    "OR (status = 'waiting' AND wake_at <= :now) OR (status = 'running' AND lease_until < :now))"
)
_TERMINAL_STATUS = {
    Transition.COMPLETE: RunStatus.COMPLETED,
    Transition.FAIL: RunStatus.FAILED,
    Transition.CANCEL: RunStatus.CANCELLED,
}


def path_from_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` to a path."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"not a SQLite URL: {url!r} (expected sqlite:///PATH)")
    rest = url[len("sqlite:///") :]
    if not rest:
        raise ConfigError(f"SQLite URL {url!r} has no path")
    return Path(rest)


class SQLiteStore(SQLiteDatasets, SQLiteAudit, SQLitePrompts, SQLiteSchedules, SQLiteKeyed, SQLiteErasure):
    """Runs and journals in one SQLite file. ``SQLiteStore("path/to/podium.db")``."""

    durable = True

    def __init__(self, path: str | Path, *, payloads: PayloadOptions | None = None) -> None:
        self.path = Path(path)
        self.payloads = payloads or PayloadOptions()
        """Large values of journal rows are stored once by hash (see ``podium.storage.payloads``)."""
        self._db: sqlite3.Connection | None = None
        self._enc = Encoder(self.payloads)
        self._now = 0.0  # the latest time a caller passed in: payloads' created_at (stores read no clock)
        self.version = 0
        """The schema version after ``open`` (the number of the last migration applied)."""

    @classmethod
    def from_url(cls, url: str, *, payloads: PayloadOptions | None = None) -> SQLiteStore:
        return cls(path_from_url(url), payloads=payloads)

    # -- connection ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        self._db = db
        self._migrate()

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the SQLite store is not open")
        return self._db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc
        enc = self._enc = Encoder(self.payloads)
        try:
            yield db
            payload_rows.sqlite_write(db, enc, self._now)  # with the rows that reference them
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                db.execute("ROLLBACK")
                raise StoreError(f"SQLite commit failed: {exc}") from exc

    def _migrate(self) -> None:
        files = sorted(
            (
                f
                for f in resources.files("podium.storage").joinpath("migrations").iterdir()
                if f.name.endswith(".sqlite.sql")
            ),
            key=lambda f: f.name,
        )
        with self._tx() as db:
            # Which migrations ran: the table podium_migrations (a database from before it existed ran every
            # one up to PRAGMA user_version). A migration missing from it runs, whatever its number: branches
            # developed side by side may land numbers out of order.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute("CREATE TABLE IF NOT EXISTS podium_migrations (version INTEGER PRIMARY KEY)")
            applied = {r[0] for r in db.execute("SELECT version FROM podium_migrations")}
            if not applied and version:
                applied = {int(f.name.split("_", 1)[0]) for f in files}
                applied = {n for n in applied if n <= version}
                db.executemany("INSERT INTO podium_migrations VALUES (?)", [(n,) for n in applied])
            for f in files:
                number = int(f.name.split("_", 1)[0])
                if number not in applied:
                    text = "\n".join(
                        ln for ln in f.read_text().splitlines() if not ln.lstrip().startswith("--")
                    )
                    for statement in text.split(";"):  # comments may hold a ";"; statements may not
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO podium_migrations VALUES (?)", (number,))
                    applied.add(number)
                    version = max(version, number)
                    db.execute(f"PRAGMA user_version={version}")
            self.version = version

    # -- payloads -----------------------------------------------------------------------------
    def _runs(self, rows: Sequence[Sequence[Any]]) -> list[RunRecord]:
        """Rows as runs, their input and output references resolved."""
        runs = [_run(r) for r in rows]
        hit = [run for run, r in zip(runs, rows, strict=True) if has_refs(r[4]) or has_refs(r[5])]
        if hit:
            values = payload_rows.sqlite_resolve(
                self.db, self.payloads, [v for run in hit for v in (run.input, run.output)]
            )
            for k, run in enumerate(hit):
                run.input, run.output = values[2 * k], values[2 * k + 1]
        return runs

    def _events(self, rows: Sequence[Sequence[Any]]) -> list[Event]:
        """Rows as events, their data's references resolved (only the payloads these events reference)."""
        events = [_event(r) for r in rows]
        hit = [e for e, r in zip(events, rows, strict=True) if has_refs(r[5])]
        if hit:
            values = payload_rows.sqlite_resolve(self.db, self.payloads, [e.data for e in hit])
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
        with self._tx() as db:
            done = payload_rows.sqlite_collect(
                db,
                ended_before=ended_before,
                flows=flows,
                exclude=exclude,
                tenants=tenants,
                exclude_tenants=exclude_tenants,
            )
            stream_rows.sqlite_forget(db, ended_before)
            strays = payload_rows.sqlite_strays(db, self.payloads.blobs, ended_before - STRAY_MARGIN)
        delete_blobs(self.payloads.blobs, strays)
        delete_blobs(self.payloads.blobs, done.files)  # after the commit: a crash leaves a file, not a hole
        return done

    async def storage_usage(self, *, now: float) -> list[Usage]:
        return payload_rows.sqlite_usage(self.db, now)

    # -- token streams ------------------------------------------------------------------------
    async def stream_begin(
        self, run_id: str, step: str, *, now: float, owner: str | None = None
    ) -> int | None:
        with self._tx() as db:
            if not stream_rows.sqlite_held(db, run_id, owner):
                return None
            return stream_rows.sqlite_begin(db, run_id, step, now)

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
        with self._tx() as db:
            if not stream_rows.sqlite_held(db, run_id, owner):
                return False
            stream_rows.sqlite_append(db, run_id, step, epoch, offset, text, now)
            return True

    async def stream_read(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[StreamChunk]:
        return stream_rows.sqlite_read(self.db, run_id, after, limit)

    # -- runs ---------------------------------------------------------------------------------
    async def create_run(self, run: RunRecord, first: Event) -> tuple[RunRecord, bool]:
        with self._tx() as db:
            return self._create(db, run, first)

    def _create(self, db: sqlite3.Connection, run: RunRecord, first: Event) -> tuple[RunRecord, bool]:
        if run.key is not None:
            row = db.execute(f"SELECT {_RUN_COLS} FROM runs WHERE key = ?", (run.key,)).fetchone()
            if row is not None:
                return self._runs([row])[0], False
        try:
            db.execute(
                f"INSERT INTO runs ({_RUN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.id,
                    run.flow,
                    run.status.value,
                    run.key,
                    self._enc.dump(run.input, run.id),
                    self._enc.dump(run.output, run.id),
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
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise InvalidStateError(f"run id {run.id} exists already") from exc
        self._insert(db, [first], run.created_at)
        return run, True

    async def create_runs(self, items: Sequence[tuple[RunRecord, Event]]) -> list[tuple[RunRecord, bool]]:
        with self._tx() as db:
            return [self._create(db, run, first) for run, first in items]

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = self.db.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else self._runs([row])[0]

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
            where.append("tenant = ?")
            args.append(tenant)
        if status is not None:
            where.append(f"status IN ({','.join('?' * len(status))})")
            args.extend(s.value for s in status)
        if flow is not None:
            where.append("flow = ?")
            args.append(flow)
        if parent_id is not None:
            where.append("parent_id = ?")
            args.append(parent_id)
        if before is not None:
            where.append("(created_at, id) < (SELECT created_at, id FROM runs WHERE id = ?)")
            args.append(before)
        sql = f"SELECT {_RUN_COLS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(limit)
        return self._runs(self.db.execute(sql, args).fetchall())

    async def events_after(self, after: int, *, limit: int = 500) -> list[Event]:
        rows = self.db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return self._events(rows.fetchall())

    async def load_events(self, run_id: str, *, after: int = 0) -> list[Event]:
        rows = self.db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after)
        )
        return self._events(rows.fetchall())

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
        names = {f"f{i}": f for i, f in enumerate(flows)}
        among = f"flow IN ({','.join(':' + k for k in names)}) AND {_RUNNABLE}"
        caps = {f: n for f, n in (limits or {}).items() if f in flows}
        qcaps = dict(queues or {})
        if not caps and not qcaps:
            pick = f"SELECT id FROM runs WHERE {among} ORDER BY priority DESC, created_at LIMIT :limit"
        else:
            # Per capped flow, then per capped queue among the runs its flow lets through: no more than the
            # cap less the runs of that flow (queue) holding a live lease.
            pick = (
                "SELECT q.id FROM (SELECT f.id, f.queue, f.priority, f.created_at, row_number() OVER "
                "(PARTITION BY f.queue ORDER BY f.priority DESC, f.created_at) AS qn FROM "
                "(SELECT id, flow, queue, priority, created_at, row_number() OVER "
                f"(PARTITION BY flow ORDER BY priority DESC, created_at) AS rn FROM runs WHERE {among}) f "
                "LEFT JOIN (SELECT key AS flow, value AS cap FROM json_each(:caps)) l ON l.flow = f.flow "
                "WHERE l.cap IS NULL OR f.rn <= l.cap - (SELECT count(*) FROM runs b WHERE b.flow = f.flow "
                "AND b.status = 'running' AND b.lease_until >= :now)) q "
                "LEFT JOIN (SELECT key AS queue, value AS cap FROM json_each(:qcaps)) m ON m.queue = q.queue "
                "WHERE m.cap IS NULL OR q.qn <= m.cap - (SELECT count(*) FROM runs b WHERE b.queue = q.queue "
                "AND b.status = 'running' AND b.lease_until >= :now) "
                "ORDER BY q.priority DESC, q.created_at LIMIT :limit"
            )
        sql = (
            "UPDATE runs SET status = 'running', lease_owner = :owner, lease_until = :until, "
            f"wake_at = NULL, updated_at = :now, claims = claims + 1 WHERE id IN ({pick}) "
            f"RETURNING {_RUN_COLS}"
        )
        params = {
            "owner": owner,
            "until": lease_until,
            "now": now,
            "limit": limit,
            "caps": _dump(caps),
            "qcaps": _dump(qcaps),
        }
        with self._tx() as db:
            rows = db.execute(sql, {**params, **names})
            runs = self._runs(rows.fetchall())
        runs.sort(key=lambda r: (-r.priority, r.created_at))
        return runs

    async def claim_run(self, run_id: str, owner: str, *, now: float, lease_until: float) -> RunRecord | None:
        sql = (
            "UPDATE runs SET status = 'running', lease_owner = :owner, lease_until = :until, "
            f"wake_at = NULL, updated_at = :now, claims = claims + 1 WHERE id = :id AND {_RUNNABLE} "
            f"RETURNING {_RUN_COLS}"
        )
        with self._tx() as db:
            row = db.execute(sql, {"owner": owner, "until": lease_until, "now": now, "id": run_id}).fetchone()
        return None if row is None else self._runs([row])[0]

    def _insert(self, db: sqlite3.Connection, events: Sequence[Event], now: float) -> int:
        for e in events:
            if not e.at:
                e.at = now
        sql = "INSERT OR IGNORE INTO events (run_id, kind, step, name, data, at) VALUES (?,?,?,?,?,?)"
        dump = self._enc.dump
        if len(events) == 1:
            e = events[0]
            data = dump(e.data, e.run_id, keep_root=True)
            self._now = max(self._now, e.at)
            return db.execute(sql, (e.run_id, e.kind, e.step, e.name, data, e.at)).rowcount
        cur = db.executemany(
            sql,
            [
                (e.run_id, e.kind, e.step, e.name, dump(e.data, e.run_id, keep_root=True), e.at)
                for e in events
            ],
        )
        return cur.rowcount

    def _insert_all(self, db: sqlite3.Connection, events: Sequence[Event], now: float) -> bool:
        """Insert all of ``events`` or none of them (False when one exists already)."""
        if len(events) == 1:
            return self._insert(db, events, now) == 1
        db.execute("SAVEPOINT events")
        if self._insert(db, events, now) != len(events):
            db.execute("ROLLBACK TO events")
            db.execute("RELEASE events")
            return False
        db.execute("RELEASE events")
        return True

    def _finish(
        self, db: sqlite3.Connection, run_id: str, status: RunStatus, output: Any, error: Any, now: float
    ) -> None:
        row = db.execute(
            "UPDATE runs SET status = ?, output = ?, error = ?, ended_at = ?, updated_at = ?, "
            "lease_owner = NULL, lease_until = NULL, wake_at = NULL WHERE id = ? "
            "RETURNING parent_id, parent_step, flow",
            (status.value, self._enc.dump(output, run_id), _dump(error), now, now, run_id),
        ).fetchone()
        if row is not None and row[0] is not None and row[1] is not None:
            parent = db.execute("SELECT status FROM runs WHERE id = ?", (row[0],)).fetchone()
            if parent is not None and not RunStatus(parent[0]).terminal:  # a finished parent needs no news
                data = {"run_id": run_id, "status": status.value, "output": output, "error": error}
                self._deliver(db, Event(row[0], "child_done", row[1], name=row[2], data=data), now)

    async def commit(
        self, owner: str, writes: Sequence[Write], *, now: float, lease_until: float
    ) -> list[Outcome]:
        return self.commit_sync(owner, writes, now=now, lease_until=lease_until)

    def commit_sync(
        self, owner: str, writes: Sequence[Write], *, now: float, lease_until: float
    ) -> list[Outcome]:
        """``commit`` without a coroutine: SQLite never waits, so the engine may call this directly."""
        outcomes: list[Outcome] = []
        with self._tx() as db:
            for w in writes:
                # A read, not a write: heartbeats extend leases, commits only check them.
                held = db.execute(
                    "SELECT 1 FROM runs WHERE id = ? AND lease_owner = ? AND status = 'running'",
                    (w.run_id, owner),
                ).fetchone()
                if held is None:
                    outcomes.append(Outcome.LEASE_LOST)
                    continue
                if w.transition is Transition.CONTINUE:
                    self._continue(db, w, now)
                if w.events and not self._insert_all(db, w.events, now):
                    outcomes.append(Outcome.LEASE_LOST)  # someone else journaled this position
                    continue
                t = w.transition
                if t in _TERMINAL_STATUS:
                    self._finish(db, w.run_id, _TERMINAL_STATUS[t], w.output, w.error, now)
                elif t is Transition.SUSPEND:
                    changed = db.execute(
                        "UPDATE runs SET status = 'waiting', wake_at = ?, lease_owner = NULL, "
                        "lease_until = NULL WHERE id = ? AND inbox_seq = ?",
                        (w.wake_at, w.run_id, w.seen_inbox),
                    ).rowcount
                    if not changed:
                        outcomes.append(Outcome.INBOX_CHANGED)
                        continue
                elif t is Transition.RELEASE:
                    db.execute(
                        "UPDATE runs SET status = 'pending', lease_owner = NULL, lease_until = NULL "
                        "WHERE id = ?",
                        (w.run_id,),
                    )
                outcomes.append(Outcome.OK)
        return outcomes

    def _continue(self, db: sqlite3.Connection, w: Write, now: float) -> None:
        """Continue-as-new: drop the journal but for unread signals and a cancel, take the new input,
        and make the run runnable again."""
        gone = list(w.consumed)
        marks = ",".join("?" * len(gone))
        db.execute("DELETE FROM events WHERE run_id = ? AND kind NOT IN ('signal', 'cancel')", (w.run_id,))
        if gone:
            db.execute(f"DELETE FROM events WHERE run_id = ? AND seq IN ({marks})", (w.run_id, *gone))
        db.execute(
            "UPDATE runs SET input = ?, status = 'pending', lease_owner = NULL, lease_until = NULL, "
            "wake_at = NULL, updated_at = ? WHERE id = ?",
            (self._enc.dump(w.output, w.run_id), now, w.run_id),
        )

    async def heartbeat(self, owner: str, run_ids: Collection[str], *, lease_until: float) -> dict[str, int]:
        if not run_ids:
            return {}
        ids = list(run_ids)
        marks = ",".join("?" * len(ids))
        with self._tx() as db:
            rows = db.execute(
                f"UPDATE runs SET lease_until = ? WHERE lease_owner = ? AND status = 'running' "
                f"AND id IN ({marks}) RETURNING id, inbox_seq",
                (lease_until, owner, *ids),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- inbox --------------------------------------------------------------------------------
    def _deliver(
        self, db: sqlite3.Connection, event: Event, now: float, gate: Gate | None = None
    ) -> Event | None:
        row = db.execute("SELECT status FROM runs WHERE id = ?", (event.run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run with id {event.run_id!r}")
        if RunStatus(row[0]).terminal:
            raise InvalidStateError(f"run {event.run_id} is {row[0]}")
        if gate is not None:
            marks = ",".join("?" * len(gate.closed))
            open_ = db.execute(
                "SELECT 1 FROM events o WHERE o.run_id = ? AND o.kind = ? AND o.name = ? AND NOT EXISTS "
                "(SELECT 1 FROM events c WHERE c.run_id = o.run_id AND c.step = o.step "
                f"AND c.kind IN ({marks})) LIMIT 1",
                (event.run_id, gate.opened, gate.name, *gate.closed),
            ).fetchone()
            if open_ is None:
                raise SignalRefusedError(f"run {event.run_id}: no open {gate.opened} {gate.name!r}")
        if not self._insert(db, [event], now):
            return None
        event.seq = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        db.execute(
            "UPDATE runs SET inbox_seq = inbox_seq + 1, updated_at = ?, "
            "wake_at = CASE WHEN status = 'waiting' THEN NULL ELSE wake_at END, "
            "status = CASE WHEN status = 'waiting' THEN 'pending' ELSE status END WHERE id = ?",
            (now, event.run_id),
        )
        return event

    async def deliver(self, event: Event, *, now: float, gate: Gate | None = None) -> Event | None:
        with self._tx() as db:
            return self._deliver(db, event, now, gate)

    async def cancel_idle(self, run_id: str, *, now: float, request: Event | None = None) -> bool:
        with self._tx() as db:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row[0] not in ("pending", "waiting"):
                return False
            if request is not None:
                self._insert(db, [request], now)
            self._insert(db, [Event(run_id, "end", "", data={"status": "cancelled"})], now)
            error = {"type": "Cancelled", "message": "cancelled", "retryable": False}
            self._finish(db, run_id, RunStatus.CANCELLED, None, error, now)
            return True

    async def next_wakeup(self, flows: Collection[str]) -> float | None:
        if not flows:
            return None
        names = list(flows)
        marks = ",".join("?" * len(names))
        row = self.db.execute(
            f"SELECT MIN(CASE WHEN status = 'waiting' THEN wake_at ELSE lease_until END) FROM runs "
            f"WHERE status IN ('waiting', 'running') AND flow IN ({marks})",
            names,
        ).fetchone()
        return None if row is None else row[0]

    async def pending_approvals(self, *, limit: int = 100) -> list[tuple[RunRecord, Event]]:
        cols = ", ".join(f"r.{c.strip()}" for c in _RUN_COLS.split(","))
        ecols = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLS.split(","))
        rows = self.db.execute(
            f"SELECT {cols}, {ecols} FROM events e JOIN runs r ON r.id = e.run_id "
            "WHERE e.kind = 'approval' AND r.status IN ('pending', 'running', 'waiting') "
            "AND NOT EXISTS (SELECT 1 FROM events d WHERE d.run_id = e.run_id "
            "AND d.kind IN ('decision', 'withdrawn') "
            "AND d.step = e.step) ORDER BY e.seq LIMIT ?",
            (limit,),
        ).fetchall()
        n = len(_RUN_COLS.split(","))
        return list(zip(self._runs([r[:n] for r in rows]), self._events([r[n:] for r in rows]), strict=True))
