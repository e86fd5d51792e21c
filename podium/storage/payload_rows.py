"""The SQL side of content-addressed payloads (``payloads.py``), for SQLite and PostgreSQL.

Each function runs inside the caller's transaction: payloads and references are written in the same one as
the journal rows that point at them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from .payloads import (
    Collected,
    Encoder,
    PayloadOptions,
    Resolver,
    Usage,
    age_label,
    blob_files,
    decompress,
    read_blob,
)

_TERMINAL = "('completed', 'failed', 'cancelled')"
# A finished run's references are released unless its parent is unfinished (the parent's journal holds the
# child's output in its child_done event, which may reference the child's payloads); references of a run that
# does not exist (its creation lost to an idempotency key) go too.
_RELEASE = (
    "DELETE FROM payload_refs WHERE run_id IN (SELECT c.id FROM runs c WHERE c.ended_at IS NOT NULL "
    f"AND c.status IN {_TERMINAL} AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.id = c.parent_id "
    f"AND p.status NOT IN {_TERMINAL})"
)
_ORPHAN = "NOT EXISTS (SELECT 1 FROM runs o WHERE o.id = payload_refs.run_id)"


# -- SQLite ---------------------------------------------------------------------------------------
def sqlite_write(db: sqlite3.Connection, enc: Encoder, now: float) -> None:
    """Insert ``enc``'s new payloads (compressing only those not stored yet) and its references."""
    if enc.new:
        hashes = list(enc.new)
        have: set[str] = set()
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            rows = db.execute(
                f"SELECT hash FROM payloads WHERE hash IN ({','.join('?' * len(part))})", part
            ).fetchall()
            have.update(r[0] for r in rows)
        fresh = [enc.new[h].pack(enc.options) for h in hashes if h not in have]
        if fresh:
            db.executemany(
                "INSERT OR IGNORE INTO payloads (hash, size, stored, codec, in_file, data, created_at) "
                "VALUES (?,?,?,?,?,?,?)",
                [
                    (p.hash, p.size, p.stored, p.codec, int(p.in_file), None if p.in_file else p.data, now)
                    for p in fresh
                ],
            )
        enc.new = {}
    if enc.refs:
        db.executemany("INSERT OR IGNORE INTO payload_refs (run_id, hash) VALUES (?, ?)", sorted(enc.refs))
        enc.refs = set()


def sqlite_resolve(db: sqlite3.Connection, options: PayloadOptions, values: Sequence[Any]) -> list[Any]:
    """``values`` with their references replaced by payloads (only the payloads they reference are read)."""
    r = Resolver(values)
    while wanted := r.wanted():
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT hash, codec, in_file, data FROM payloads WHERE hash IN ({marks})"
            rows = db.execute(sql, part).fetchall()
            r.add({h: _raw(options, h, codec, in_file, data) for h, codec, in_file, data in rows})
            r.done(part)
    return [r.apply(v) for v in values]


def _raw(options: PayloadOptions, sha: str, codec: str, in_file: Any, data: bytes | None) -> bytes | None:
    if in_file:
        data = read_blob(options.blobs, sha)
    return None if data is None else decompress(codec, bytes(data))


def _scope(
    flows: Collection[str] | None,
    exclude: Collection[str],
    mark: str,
    tenants: Collection[str] | None = None,
    exclude_tenants: Collection[str] = (),
) -> tuple[str, list[Any]]:
    sql, args = "", list[Any]()
    if tenants is not None:
        sql += f" AND tenant IN ({','.join([mark] * len(tenants))})" if tenants else " AND 1 = 0"
        args.extend(tenants)
    if exclude_tenants:
        sql += f" AND tenant NOT IN ({','.join([mark] * len(exclude_tenants))})"
        args.extend(exclude_tenants)
    if flows is not None:
        sql += f" AND flow IN ({','.join([mark] * len(flows))})" if flows else " AND 1 = 0"
        args.extend(flows)
    if exclude:
        sql += f" AND flow NOT IN ({','.join([mark] * len(exclude))})"
        args.extend(exclude)
    return sql, args


def sqlite_strays(db: sqlite3.Connection, root: Any, before: float) -> list[str]:
    """Blob files older than ``before`` whose hash no payload row has (their temp files are removed here)."""
    hashes, temps = blob_files(root, before)
    for t in temps:
        t.unlink(missing_ok=True)
    have: set[str] = set()
    for i in range(0, len(hashes), 500):
        part = hashes[i : i + 500]
        marks = ",".join("?" * len(part))
        have.update(r[0] for r in db.execute(f"SELECT hash FROM payloads WHERE hash IN ({marks})", part))
    return [h for h in hashes if h not in have]


async def pg_strays(conn: Any, root: Any, before: float) -> list[str]:
    hashes, temps = blob_files(root, before)
    for t in temps:
        t.unlink(missing_ok=True)
    if not hashes:
        return []
    cur = await conn.execute("SELECT hash FROM payloads WHERE hash = ANY(%s)", (hashes,))
    have = {r[0] for r in await cur.fetchall()}
    return [h for h in hashes if h not in have]


def sqlite_collect(
    db: sqlite3.Connection,
    *,
    ended_before: float,
    flows: Collection[str] | None,
    exclude: Collection[str],
    tenants: Collection[str] | None = None,
    exclude_tenants: Collection[str] = (),
) -> Collected:
    scope, args = _scope(flows, exclude, "?", tenants, exclude_tenants)
    runs = db.execute(
        f"{_RELEASE} AND ended_at < ?{scope}) OR {_ORPHAN} RETURNING run_id",
        (ended_before, *args),
    ).fetchall()
    # payload_refs has no index on hash (one B-tree less to write per commit): the subquery is read once,
    # into a temporary index, per collection.
    gone = db.execute(
        "DELETE FROM payloads WHERE hash NOT IN (SELECT hash FROM payload_refs) "
        "RETURNING hash, stored, in_file"
    ).fetchall()
    return Collected(
        runs=len({r[0] for r in runs}),
        payloads=len(gone),
        bytes=sum(int(g[1]) for g in gone),
        files=[g[0] for g in gone if g[2]],
    )


_USAGE = (
    "SELECT r.flow, r.created_at, 1, "
    "coalesce((SELECT sum(length(CAST(e.data AS BLOB))) FROM events e WHERE e.run_id = r.id), 0) FROM runs r"
)
_PAYLOAD_USAGE = (
    "SELECT r.flow, r.created_at, p.stored, p.size, p.hash FROM payload_refs x "
    "JOIN runs r ON r.id = x.run_id JOIN payloads p ON p.hash = x.hash"
)


def usage(now: float, runs: Sequence[Sequence[Any]], payloads: Sequence[Sequence[Any]]) -> list[Usage]:
    """Fold ``_USAGE`` and ``_PAYLOAD_USAGE`` rows into one ``Usage`` per flow and age."""
    out: dict[tuple[str, str], Usage] = {}
    for flow, created, n, journal in runs:
        key = (flow, age_label(now - float(created)))
        u = out.setdefault(key, Usage(flow=key[0], age=key[1]))
        u.runs += int(n)
        u.journal_bytes += int(journal)
    seen: set[tuple[str, str, str]] = set()
    for flow, created, stored, size, sha in payloads:
        key = (flow, age_label(now - float(created)))
        if (*key, sha) in seen:  # shared by runs of one flow and age: count it once there
            continue
        seen.add((*key, sha))
        u = out.setdefault(key, Usage(flow=key[0], age=key[1]))
        u.payloads += 1
        u.payload_bytes += int(stored)
        u.payload_raw_bytes += int(size)
    return sorted(out.values(), key=lambda u: (u.flow, u.age))


def sqlite_usage(db: sqlite3.Connection, now: float) -> list[Usage]:
    return usage(now, db.execute(_USAGE).fetchall(), db.execute(_PAYLOAD_USAGE).fetchall())


# -- PostgreSQL -----------------------------------------------------------------------------------
PG_INSERT_PAYLOADS = (
    "INSERT INTO payloads (hash, size, stored, codec, in_file, data, created_at) "
    "SELECT * FROM unnest(%s::text[], %s::int8[], %s::int8[], %s::text[], %s::bool[], %s::bytea[], "
    "%s::float8[]) ON CONFLICT DO NOTHING"
)
PG_INSERT_REFS = (
    "INSERT INTO payload_refs (run_id, hash) SELECT * FROM unnest(%s::text[], %s::text[]) "
    "ON CONFLICT DO NOTHING"
)


def pg_statements(enc: Encoder, now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements that write ``enc``'s payloads and references (queued in the caller's transaction).
    Every payload is sent (``ON CONFLICT DO NOTHING``): one that garbage collection deleted a moment ago is
    thus stored again, never left missing."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    if enc.new:
        ps = [p.pack(enc.options) for p in enc.new.values()]
        out.append(
            (
                PG_INSERT_PAYLOADS,
                (
                    [p.hash for p in ps],
                    [p.size for p in ps],
                    [p.stored for p in ps],
                    [p.codec for p in ps],
                    [p.in_file for p in ps],
                    [None if p.in_file else p.data for p in ps],
                    [now] * len(ps),
                ),
            )
        )
    if enc.refs:
        refs = sorted(enc.refs)
        out.append((PG_INSERT_REFS, ([r[0] for r in refs], [r[1] for r in refs])))
    return out


PG_SELECT_PAYLOADS = "SELECT hash, codec, in_file, data FROM payloads WHERE hash = ANY(%s)"


async def pg_resolve(conn: Any, options: PayloadOptions, values: Sequence[Any]) -> list[Any]:
    r = Resolver(values)
    while wanted := r.wanted():
        cur = await conn.execute(PG_SELECT_PAYLOADS, (wanted,))
        rows = await cur.fetchall()
        r.add({h: _raw(options, h, codec, in_file, data) for h, codec, in_file, data in rows})
        r.done(wanted)
    return [r.apply(v) for v in values]


async def pg_collect(
    conn: Any,
    *,
    ended_before: float,
    flows: Collection[str] | None,
    exclude: Collection[str],
    tenants: Collection[str] | None = None,
    exclude_tenants: Collection[str] = (),
) -> Collected:
    scope, args = _scope(flows, exclude, "%s", tenants, exclude_tenants)
    cur = await conn.execute(
        f"{_RELEASE} AND ended_at < %s{scope}) OR {_ORPHAN} RETURNING run_id",
        (ended_before, *args),
    )
    runs = await cur.fetchall()
    cur = await conn.execute(
        "DELETE FROM payloads p WHERE NOT EXISTS (SELECT 1 FROM payload_refs r WHERE r.hash = p.hash) "
        "RETURNING hash, stored, in_file"
    )
    gone = await cur.fetchall()
    return Collected(
        runs=len({r[0] for r in runs}),
        payloads=len(gone),
        bytes=sum(int(g[1]) for g in gone),
        files=[g[0] for g in gone if g[2]],
    )


async def pg_usage(conn: Any, now: float) -> list[Usage]:
    cur = await conn.execute(_USAGE.replace("length(CAST(e.data AS BLOB))", "octet_length(e.data)"))
    runs = await cur.fetchall()
    cur = await conn.execute(_PAYLOAD_USAGE)
    return usage(now, runs, await cur.fetchall())
